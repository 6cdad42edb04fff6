/// The query of a request-target (`a=1&b&=x`) as name/value pairs in order, percent-decoded (`+` as
/// a space, as HTML forms send it). Total over every input: an empty name, a pair without `=`, a
/// malformed or non-UTF-8 escape are all taken as written, never a trap. The first occurrence of a
/// name wins in ``first(_:)`` (a repeated `async=false&async=true` cannot flip a decision later).
public struct QueryString: Sendable, Hashable {
    public var pairs: [(name: String, value: String)]

    /// Splits `target` (`/path?query`) into its path and its query.
    public static func split(target: String) -> (path: Substring, query: QueryString) {
        guard let mark = target.firstIndex(of: "?") else { return (target[...], QueryString(pairs: [])) }
        return (target[..<mark], QueryString(target[target.index(after: mark)...]))
    }

    public init(pairs: [(name: String, value: String)]) { self.pairs = pairs }

    public init(_ query: Substring) {
        pairs = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if let eq = pair.firstIndex(of: "=") {
                pairs.append((Self.decode(pair[..<eq]), Self.decode(pair[pair.index(after: eq)...])))
            } else {
                pairs.append((Self.decode(pair), ""))
            }
        }
    }

    /// The value of the first pair named `name`.
    public func first(_ name: String) -> String? { pairs.first { $0.name == name }?.value }

    public static func == (a: QueryString, b: QueryString) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for p in pairs {
            hasher.combine(p.name)
            hasher.combine(p.value)
        }
    }

    /// Percent-decoding that keeps a malformed escape as written; bytes that do not form UTF-8 are
    /// replaced (U+FFFD), so the result is always a valid String.
    static func decode(_ text: Substring) -> String {
        let utf8 = Array(text.utf8)
        guard utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return String(text) }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while i < utf8.count {
            let c = utf8[i]
            if c == UInt8(ascii: "%"), i + 2 < utf8.count, let h = hex(utf8[i + 1]), let l = hex(utf8[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
