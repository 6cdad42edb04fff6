/// A JSON document as a tree, numbers kept as their text (so a DECIMAL column reads them exactly),
/// object members in the order written. Parsing is bounded for hostile input: nesting stops at
/// ``maxDepth`` with an error, and the work is linear in the bytes.
public indirect enum JSONNode: Hashable, Sendable {
    case null
    case boolean(Bool)
    /// A number as written (`-12.50`, `1e3`).
    case number(String)
    case string(String)
    case array([JSONNode])
    case object([(key: String, value: JSONNode)])

    public static let maxDepth = 64

    public struct Malformed: Error, Hashable, Sendable, CustomStringConvertible {
        public var offset: Int
        public var message: String
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// The document in `bytes` (one value, blanks around it allowed).
    public static func parse(_ bytes: some Collection<UInt8>) throws(Malformed) -> JSONNode {
        var parser = Parser(Array(bytes))
        parser.skipBlanks()
        let node = try parser.value(depth: 0)
        parser.skipBlanks()
        guard parser.i == parser.bytes.count else { throw Malformed(offset: parser.i, message: "text after the value") }
        return node
    }

    /// The member `name` of an object, matched exactly first and then ignoring ASCII case (as
    /// ksqlDB matches JSON fields to columns).
    public func member(_ name: String) -> JSONNode? {
        guard case .object(let members) = self else { return nil }
        if let exact = members.last(where: { $0.key == name }) { return exact.value }
        let upper = name.uppercased()
        return members.last { $0.key.uppercased() == upper }?.value
    }

    public static func == (a: JSONNode, b: JSONNode) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.boolean(let x), .boolean(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.elementsEqual(y) { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .boolean(let b): hasher.combine(b)
        case .number(let n): hasher.combine(n)
        case .string(let s): hasher.combine(s)
        case .array(let items): hasher.combine(items)
        case .object(let members):
            for m in members {
                hasher.combine(m.key)
                hasher.combine(m.value)
            }
        }
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        func fail(_ message: String) -> Malformed { Malformed(offset: i, message: message) }

        mutating func skipBlanks() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        }

        mutating func value(depth: Int) throws(Malformed) -> JSONNode {
            guard depth < JSONNode.maxDepth else { throw fail("nested more than \(JSONNode.maxDepth) levels deep") }
            guard i < bytes.count else { throw fail("a value is missing") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(key: String, value: JSONNode)] = []
                skipBlanks()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipBlanks()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("a member name must be a string") }
                    let key = try string()
                    skipBlanks()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("':' expected") }
                    i += 1
                    skipBlanks()
                    members.append((key, try value(depth: depth + 1)))
                    skipBlanks()
                    guard i < bytes.count else { throw fail("the object is not closed") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "}") else { throw fail("',' or '}' expected") }
                    i += 1
                    return .object(members)
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONNode] = []
                skipBlanks()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipBlanks()
                    items.append(try value(depth: depth + 1))
                    skipBlanks()
                    guard i < bytes.count else { throw fail("the array is not closed") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "]") else { throw fail("',' or ']' expected") }
                    i += 1
                    return .array(items)
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .boolean(true))
            case UInt8(ascii: "f"): return try literal("false", .boolean(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            default:
                return .number(try number())
            }
        }

        mutating func literal(_ word: StaticString, _ node: JSONNode) throws(Malformed) -> JSONNode {
            let text = word.withUTF8Buffer { Array($0) }
            guard bytes.count - i >= text.count, Array(bytes[i..<i + text.count]) == text else { throw fail("unknown literal") }
            i += text.count
            return node
        }

        /// RFC 8259's number grammar; the text as written.
        mutating func number() throws(Malformed) -> String {
            let start = i
            func digits() -> Int {
                let from = i
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
                return i - from
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw fail("a value is expected") }
            if bytes[i] == UInt8(ascii: "0") { i += 1 } else { _ = digits() }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { throw fail("digits expected after '.'") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail("digits expected in the exponent") }
            }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        /// A string with its escapes undone; invalid UTF-8 and lone surrogates become U+FFFD.
        mutating func string() throws(Malformed) -> String {
            let start = i
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < bytes.count else { throw Malformed(offset: start, message: "the string is not closed") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                guard c >= 0x20 else { throw fail("a control character in a string") }
                guard c == UInt8(ascii: "\\") else { out.append(c); i += 1; continue }
                guard i + 1 < bytes.count else { throw fail("an escape is cut off") }
                let e = bytes[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let low = try hex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            i = save
                        }
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8))
                default:
                    throw fail("an unknown escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws(Malformed) -> UInt32 {
            guard bytes.count - i >= 4 else { throw fail("\\u needs four hex digits") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("\\u needs four hex digits")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }
    }
}
