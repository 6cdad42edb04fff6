/// A strict RFC 8259 pull reader over bytes: the caller walks objects and arrays member by member,
/// decodes the strings and integers it wants and keeps any other value as the exact bytes it was
/// sent as (its span). Nothing is built that the caller did not ask for, so a body of a million
/// records can be counted and refused at a limit without a tree of it ever existing.
///
/// Every method either advances past exactly one syntactic piece or throws; none of them traps on
/// any input (depth is bounded by ``maxDepth``; indices are checked before every read).
struct JSONReader {
    /// Nesting deeper than this is refused.
    static let maxDepth = 64

    /// Why the bytes are not the JSON expected, with the byte offset where reading stopped.
    struct Malformed: Error, Hashable {
        var offset: Int
        var message: String
    }

    private let bytes: [UInt8]
    private(set) var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The bytes of `span` as sent.
    func slice(_ span: Range<Int>) -> ArraySlice<UInt8> { bytes[span] }

    /// Reads on from `offset` (a position this reader passed before, such as a span's start).
    mutating func seek(to offset: Int) { index = min(max(offset, 0), bytes.count) }

    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private func fail(_ message: String) -> Malformed { Malformed(offset: index, message: message) }

    mutating func skipSpace() {
        while index < bytes.count {
            let c = bytes[index]
            guard c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D else { return }
            index += 1
        }
    }

    /// Only whitespace is left.
    mutating func end() throws(Malformed) {
        skipSpace()
        guard index == bytes.count else { throw fail("unexpected bytes after the JSON value") }
    }

    /// What the next value is, without consuming it.
    enum Kind { case object, array, string, number, bool, null }

    mutating func nextKind() throws(Malformed) -> Kind {
        skipSpace()
        guard let c = peek else { throw fail("the JSON ends early") }
        switch c {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        default: throw fail("not a JSON value")
        }
    }

    // MARK: Containers

    /// Consumes `{`.
    mutating func beginObject() throws(Malformed) {
        skipSpace()
        guard peek == UInt8(ascii: "{") else { throw fail("expected an object") }
        index += 1
    }

    /// The next member's name (its `:` consumed), or `nil` after the closing `}`. `first` is true
    /// for the first call after ``beginObject()``.
    mutating func nextMember(first: Bool) throws(Malformed) -> String? {
        skipSpace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return nil
        }
        if !first {
            guard peek == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
            index += 1
            skipSpace()
        }
        guard peek == UInt8(ascii: "\"") else { throw fail("expected a member name") }
        let name = try string()
        skipSpace()
        guard peek == UInt8(ascii: ":") else { throw fail("expected ':'") }
        index += 1
        return name
    }

    /// Consumes `[`.
    mutating func beginArray() throws(Malformed) {
        skipSpace()
        guard peek == UInt8(ascii: "[") else { throw fail("expected an array") }
        index += 1
    }

    /// `true` when another element follows (its `,` consumed), `false` after the closing `]`.
    mutating func nextElement(first: Bool) throws(Malformed) -> Bool {
        skipSpace()
        if peek == UInt8(ascii: "]") {
            index += 1
            return false
        }
        if !first {
            guard peek == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
            index += 1
        }
        return true
    }

    // MARK: Values

    /// Skips one whole value, validating it, and returns its span (no surrounding whitespace).
    mutating func skipValue(depth: Int = 0) throws(Malformed) -> Range<Int> {
        guard depth < Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth)") }
        let kind = try nextKind()
        let start = index
        switch kind {
        case .object:
            try beginObject()
            var first = true
            while try nextMember(first: first) != nil {
                first = false
                _ = try skipValue(depth: depth + 1)
            }
        case .array:
            try beginArray()
            var first = true
            while try nextElement(first: first) {
                first = false
                _ = try skipValue(depth: depth + 1)
            }
        case .string: try skipString()
        case .number: try number()
        case .bool: if !literal("true") && !literal("false") { throw fail("not a JSON value") }
        case .null: if !literal("null") { throw fail("not a JSON value") }
        }
        return start..<index
    }

    /// Consumes `null` if it is next.
    mutating func null() -> Bool {
        skipSpace()
        return literal("null")
    }

    /// A boolean.
    mutating func bool() throws(Malformed) -> Bool {
        skipSpace()
        if literal("true") { return true }
        if literal("false") { return false }
        throw fail("expected true or false")
    }

    /// An integer written without fraction or exponent, in `range`.
    mutating func integer(in range: ClosedRange<Int64>) throws(Malformed) -> Int64 {
        skipSpace()
        let start = index
        var negative = false
        if peek == UInt8(ascii: "-") { negative = true; index += 1 }
        guard let first = peek, isDigit(first) else { throw fail("expected an integer") }
        var value: Int64 = 0
        while let c = peek, isDigit(c) {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(c - 0x30))
            guard !o1, !o2 else { throw Malformed(offset: start, message: "the integer is out of range") }
            value = s
            index += 1
        }
        if first == UInt8(ascii: "0") && index - start > (negative ? 2 : 1) { throw Malformed(offset: start, message: "leading zeros") }
        if let c = peek, c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            throw Malformed(offset: start, message: "expected an integer")
        }
        if negative { value = -value }
        guard range.contains(value) else { throw Malformed(offset: start, message: "\(value) is out of range") }
        return value
    }

    /// A string, decoded: escapes resolved, valid UTF-8, no lone surrogates.
    mutating func string() throws(Malformed) -> String {
        skipSpace()
        guard peek == UInt8(ascii: "\"") else { throw fail("expected a string") }
        let start = index + 1
        try skipString()
        let raw = bytes[start..<(index - 1)]
        if !raw.contains(UInt8(ascii: "\\")) { return String(decoding: raw, as: UTF8.self) }  // validated UTF-8
        return String(decoding: try unescape(raw, at: start), as: UTF8.self)
    }

    /// A string's UTF-8 bytes, unescaped: what ``string()`` reads, without making a `String` of it
    /// (a record's key or value goes to Kafka as bytes).
    mutating func stringBytes() throws(Malformed) -> [UInt8] {
        skipSpace()
        guard peek == UInt8(ascii: "\"") else { throw fail("expected a string") }
        let start = index + 1
        try skipString()
        let raw = bytes[start..<(index - 1)]
        if !raw.contains(UInt8(ascii: "\\")) { return Array(raw) }  // validated UTF-8
        return try unescape(raw, at: start)
    }

    /// A string's raw content: the span between its quotes (validated) and whether it holds escapes.
    /// Without escapes the span's bytes are the string's UTF-8 as they stand, and nothing is copied.
    mutating func stringContent() throws(Malformed) -> (span: Range<Int>, escaped: Bool) {
        skipSpace()
        guard peek == UInt8(ascii: "\"") else { throw fail("expected a string") }
        let start = index + 1
        let escaped = try skipString()
        return (start..<(index - 1), escaped)
    }

    /// The UTF-8 of a string whose raw content is `span` (from ``stringContent()``), escapes resolved.
    func unescaped(_ span: Range<Int>) throws(Malformed) -> [UInt8] {
        try unescape(bytes[span], at: span.lowerBound)
    }

    private func unescape(_ raw: ArraySlice<UInt8>, at offset: Int) throws(Malformed) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        func hex4(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<4 {
                let c = raw[at + k]
                v = v << 4 | UInt32(c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10)
            }
            return v
        }
        while i < raw.endIndex {
            let c = raw[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(i)
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 6 <= raw.endIndex, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") else {
                        throw Malformed(offset: offset, message: "a lone surrogate in a string")
                    }
                    let low = hex4(i + 2)
                    guard (0xDC00...0xDFFF).contains(low) else { throw Malformed(offset: offset, message: "a lone surrogate in a string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw Malformed(offset: offset, message: "a lone surrogate in a string")
                }
                guard let u = Unicode.Scalar(scalar) else { throw Malformed(offset: offset, message: "not a Unicode scalar") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: out.append(e)  // " \ /
            }
        }
        return out
    }

    // MARK: Scanning

    private mutating func literal(_ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        guard index + n <= bytes.count else { return false }
        for k in 0..<n where bytes[index + k] != text.utf8Start[k] { return false }
        index += n
        return true
    }

    /// A string: no raw control characters, only the escapes JSON defines, valid UTF-8. Returns
    /// whether it held an escape.
    @discardableResult
    private mutating func skipString() throws(Malformed) -> Bool {
        index += 1
        var escaped = false
        while let c = peek {
            // The common run first: printable ASCII other than `"` and `\`, in a tight loop.
            if c >= 0x20 && c < 0x80 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") {
                index = bytes.withUnsafeBufferPointer { b in
                    var i = index + 1
                    while i < b.count, b[i] >= 0x20, b[i] < 0x80, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\") { i += 1 }
                    return i
                }
                continue
            }
            switch c {
            case UInt8(ascii: "\""):
                index += 1
                return escaped
            case UInt8(ascii: "\\"):
                escaped = true
                index += 1
                guard let e = peek else { throw fail("the string ends early") }
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    for _ in 0..<4 {
                        guard let h = peek, isHex(h) else { throw fail("a malformed \\u escape") }
                        index += 1
                    }
                default:
                    throw fail("an unknown escape")
                }
            case 0..<0x20:
                throw fail("a control character in a string")
            case 0x20..<0x80:
                index += 1
            default:
                guard utf8Sequence(c) else { throw fail("invalid UTF-8 in a string") }
            }
        }
        throw fail("the string ends early")
    }

    /// One multi-byte UTF-8 sequence starting with `lead` (no overlongs, no surrogates, <= U+10FFFF).
    private mutating func utf8Sequence(_ lead: UInt8) -> Bool {
        let count: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: count = 1
        case 0xE0: count = 2; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: count = 2
        case 0xED: count = 2; high = 0x9F
        case 0xF0: count = 3; low = 0x90
        case 0xF1...0xF3: count = 3
        case 0xF4: count = 3; high = 0x8F
        default: return false
        }
        guard index + count < bytes.count else { return false }
        for k in 1...count {
            let b = bytes[index + k]
            let (lo, hi) = k == 1 ? (low, high) : (UInt8(0x80), UInt8(0xBF))
            guard b >= lo && b <= hi else { return false }
        }
        index += count + 1
        return true
    }

    private func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }

    private func isDigit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func number() throws(Malformed) {
        if peek == UInt8(ascii: "-") { index += 1 }
        guard isDigit(peek) else { throw fail("a malformed number") }
        if peek == UInt8(ascii: "0") { index += 1 } else { while isDigit(peek) { index += 1 } }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard isDigit(peek) else { throw fail("a malformed number") }
            while isDigit(peek) { index += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard isDigit(peek) else { throw fail("a malformed number") }
            while isDigit(peek) { index += 1 }
        }
    }
}

/// Decides whether a record value can be embedded in a push body as JSON as it is. Anything it
/// accepts is exactly one complete JSON value, so an embedded value can never end the envelope's
/// string or object early (no field injection).
enum JSONValidator {
    static func isValid(_ bytes: [UInt8]) -> Bool {
        var reader = JSONReader(bytes)
        do {
            _ = try reader.skipValue()
            try reader.end()
            return true
        } catch {
            return false
        }
    }
}
