/// Turns SQL text into tokens: words, quoted identifiers, strings with `''` escapes, numbers and
/// operators; `--` line comments and `/* */` block comments are skipped. Every token knows its line
/// and column, so a parse error can point at it.
public enum SQLLexer {
    /// The longest text read at all; a longer one is refused before any work (a query is not a
    /// bulk upload, and every later stage is linear in it).
    public static let maxBytes = 1 << 20

    /// The tokens of `text`, ending with one `.end` token.
    public static func tokens(_ text: String) throws(SQLSyntaxError) -> [SQLToken] {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxBytes else {
            throw SQLSyntaxError("the text is longer than \(maxBytes) bytes", at: SQLPosition(line: 1, column: 1, offset: 0))
        }
        var scanner = Scanner(bytes)
        var out: [SQLToken] = []
        while let token = try scanner.next() { out.append(token) }
        out.append(SQLToken(kind: .end, text: "", position: scanner.position, endOffset: bytes.count))
        return out
    }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var line = 1
        var lineStart = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var position: SQLPosition { SQLPosition(line: line, column: i - lineStart + 1, offset: i) }

        private func peek(_ k: Int = 0) -> UInt8? { i + k < bytes.count ? bytes[i + k] : nil }

        private mutating func advance() {
            if bytes[i] == UInt8(ascii: "\n") {
                line += 1
                lineStart = i + 1
            }
            i += 1
        }

        /// Skips blanks and comments.
        private mutating func skipTrivia() throws(SQLSyntaxError) {
            while let c = peek() {
                if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0C {
                    advance()
                } else if c == UInt8(ascii: "-") && peek(1) == UInt8(ascii: "-") {
                    while let d = peek(), d != 0x0A { advance() }
                } else if c == UInt8(ascii: "/") && peek(1) == UInt8(ascii: "*") {
                    let start = position
                    advance(); advance()
                    while true {
                        guard let d = peek() else { throw SQLSyntaxError("the comment is not closed", at: start) }
                        if d == UInt8(ascii: "*") && peek(1) == UInt8(ascii: "/") { advance(); advance(); break }
                        advance()
                    }
                } else {
                    return
                }
            }
        }

        mutating func next() throws(SQLSyntaxError) -> SQLToken? {
            try skipTrivia()
            guard let c = peek() else { return nil }
            let start = position
            func token(_ kind: SQLToken.Kind, _ text: String) -> SQLToken {
                SQLToken(kind: kind, text: text, position: start, endOffset: i)
            }
            if Self.isWordStart(c) {
                while let d = peek(), Self.isWordPart(d) { advance() }
                return token(.word, String(decoding: bytes[start.offset..<i], as: UTF8.self).uppercased())
            }
            if Self.isDigit(c) || (c == UInt8(ascii: ".") && peek(1).map(Self.isDigit) == true) {
                return try number(start)
            }
            switch c {
            case UInt8(ascii: "'"):
                return token(.string, try quoted(UInt8(ascii: "'"), start, what: "string"))
            case UInt8(ascii: "`"):
                return token(.quotedIdentifier, try quoted(UInt8(ascii: "`"), start, what: "quoted identifier"))
            case UInt8(ascii: "\""):
                return token(.quotedIdentifier, try quoted(UInt8(ascii: "\""), start, what: "quoted identifier"))
            default:
                break
            }
            for symbol in Self.twoByteSymbols where peek() == symbol.0 && peek(1) == symbol.1 {
                advance(); advance()
                return token(.symbol, String(decoding: [symbol.0, symbol.1], as: UTF8.self))
            }
            if Self.oneByteSymbols.contains(c) {
                advance()
                return token(.symbol, String(decoding: [c], as: UTF8.self))
            }
            throw SQLSyntaxError("unexpected character \(Self.describe(c))", at: start)
        }

        /// A quoted run up to its closing `quote`; a doubled quote stands for one.
        private mutating func quoted(_ quote: UInt8, _ start: SQLPosition, what: String) throws(SQLSyntaxError) -> String {
            advance()
            var content: [UInt8] = []
            while true {
                guard let d = peek() else { throw SQLSyntaxError("the \(what) is not closed", at: start) }
                if d == quote {
                    if peek(1) == quote {
                        content.append(quote)
                        advance(); advance()
                        continue
                    }
                    advance()
                    break
                }
                content.append(d)
                advance()
            }
            if quote != UInt8(ascii: "'") && content.isEmpty { throw SQLSyntaxError("an identifier cannot be empty", at: start) }
            return String(decoding: content, as: UTF8.self)
        }

        private mutating func number(_ start: SQLPosition) throws(SQLSyntaxError) -> SQLToken {
            var decimal = false
            while let d = peek(), Self.isDigit(d) { advance() }
            if peek() == UInt8(ascii: "."), peek(1).map(Self.isDigit) == true || start.offset == i {
                decimal = true
                advance()
                while let d = peek(), Self.isDigit(d) { advance() }
            }
            if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
                var k = 1
                if let sign = peek(1), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { k = 2 }
                if peek(k).map(Self.isDigit) == true {
                    decimal = true
                    for _ in 0..<k { advance() }
                    while let d = peek(), Self.isDigit(d) { advance() }
                }
            }
            if let d = peek(), Self.isWordStart(d) {
                throw SQLSyntaxError("a number runs into a word", at: start)
            }
            let text = String(decoding: bytes[start.offset..<i], as: UTF8.self)
            return SQLToken(kind: decimal ? .decimal : .integer, text: text, position: start, endOffset: i)
        }

        static let twoByteSymbols: [(UInt8, UInt8)] = [
            (UInt8(ascii: "<"), UInt8(ascii: ">")), (UInt8(ascii: "!"), UInt8(ascii: "=")), (UInt8(ascii: "<"), UInt8(ascii: "=")),
            (UInt8(ascii: ">"), UInt8(ascii: "=")), (UInt8(ascii: "-"), UInt8(ascii: ">")), (UInt8(ascii: "|"), UInt8(ascii: "|")),
        ]
        static let oneByteSymbols: Set<UInt8> = Set("(),;.[]*+-/%=<>:".utf8)

        static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        static func isWordStart(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x40 || c == 0x24 }
        static func isWordPart(_ c: UInt8) -> Bool { isWordStart(c) || isDigit(c) }

        static func describe(_ c: UInt8) -> String {
            c >= 0x21 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "0x\(String(c, radix: 16, uppercase: true))"
        }
    }
}
