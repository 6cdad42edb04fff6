/// Appends JSON text to a byte buffer without building intermediate objects (the push and produce
/// bodies are on the hot path).
struct JSONWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func raw(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    /// A decimal integer, written digit by digit (no `String` made for it).
    mutating func int<T: SignedInteger & FixedWidthInteger>(_ n: T) {
        let value = Int64(n)
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        // The magnitude is unsigned, so Int64.min has one too.
        var rest = value.magnitude
        let start = bytes.count
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes[start...].reverse()
    }

    mutating func bool(_ b: Bool) { b ? raw("true") : raw("false") }

    /// A JSON string of `text`, escaped.
    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { string(utf8: $0) }
    }

    /// A JSON string of UTF-8 bytes; invalid sequences become U+FFFD so the output is always valid.
    mutating func string(utf8 input: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        for c in input {
            switch c {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0..<0x20:
                raw("\\u00")
                bytes.append(Self.hex[Int(c >> 4)])
                bytes.append(Self.hex[Int(c & 0xF)])
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A JSON string of bytes that may not be UTF-8: repaired first.
    mutating func string(lossy raw: [UInt8]) {
        string(String(decoding: raw, as: UTF8.self))
    }

    /// A JSON string holding `data` in standard base64.
    mutating func base64(_ data: [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        Base64.encode(data, into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// `text` as a quoted, escaped JSON string.
    static func quoted(_ text: String) -> String {
        var w = JSONWriter(capacity: text.utf8.count + 2)
        w.string(text)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

/// JSON text helpers for the drivers (one escaper for every body the sidecar writes).
public enum JSONText {
    /// `text` as a quoted, escaped JSON string.
    public static func quoted(_ text: String) -> String { JSONWriter.quoted(text) }

    /// A light-mesh error body, `{"error":{"code","message"}}` and a newline: the one writer of that
    /// shape (produce refusals and the listeners' own errors).
    public static func lightMeshError(code: String, message: String) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"error\":{\"code\":")
        w.string(code)
        w.raw(",\"message\":")
        w.string(message)
        w.raw("}}\n")
        return w.bytes
    }

    /// A Confluent v2 / Strimzi error body, `{"error_code","message"}`: the one writer of that shape
    /// (produce refusals, pull consumer and metadata refusals).
    public static func kafkaError(code: Int, message: String) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"error_code\":")
        w.int(code)
        w.raw(",\"message\":")
        w.string(message)
        w.raw("}")
        return w.bytes
    }
}

/// Standard base64 (RFC 4648 section 4, with padding).
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    static func encode(_ data: [UInt8], into out: inout [UInt8]) {
        var i = 0
        while i + 2 < data.count {
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = data.count - i
        if rest == 1 {
            let n = UInt32(data[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(UInt8(ascii: "=")); out.append(UInt8(ascii: "="))
        } else if rest == 2 {
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(UInt8(ascii: "="))
        }
    }

    static func encode(_ data: [UInt8]) -> String {
        var out: [UInt8] = []
        encode(data, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes standard base64 (padding required when the length is not a multiple of 4); `nil` when malformed.
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        return decode(Array(text.utf8)[...], into: &out) ? out : nil
    }

    /// Decodes standard base64 from `input` onto the end of `out`; `false` when malformed (then `out`
    /// is as it was).
    static func decode(_ input: ArraySlice<UInt8>, into out: inout [UInt8]) -> Bool {
        guard input.count % 4 == 0 else { return false }
        let before = out.count
        out.reserveCapacity(before + input.count / 4 * 3)
        var i = input.startIndex
        while i < input.endIndex {
            let last = i + 4 == input.endIndex
            var n: UInt32 = 0
            var pad = 0
            for k in 0..<4 {
                let c = input[i + k]
                n <<= 6
                if c == UInt8(ascii: "=") && last && k >= 2 {
                    pad += 1
                    continue
                }
                let v = reverse[Int(c)]
                guard pad == 0, v != 0xFF else {
                    out.removeSubrange(before...)
                    return false
                }
                n |= UInt32(v)
            }
            out.append(UInt8(n >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return true
    }
}
