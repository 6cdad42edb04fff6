/// Where a token starts in the statement text: 1-based line and column (in characters of the
/// line, UTF-8 bytes counted as one each), and the byte offset.
public struct SQLPosition: Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var offset: Int

    public init(line: Int, column: Int, offset: Int) {
        self.line = line
        self.column = column
        self.offset = offset
    }

    /// ksqlDB's form: `line 1:8`.
    public var description: String { "line \(line):\(column)" }
}

/// A statement that cannot be read: where, and why. Its `description` reads like ksqlDB's
/// (`line 1:1: Syntax Error: ...`), which clients show as it is.
public struct SQLSyntaxError: Error, Hashable, Sendable, CustomStringConvertible {
    public var position: SQLPosition
    public var message: String

    public init(_ message: String, at position: SQLPosition) {
        self.position = position
        self.message = message
    }

    public var description: String { "\(position): Syntax Error: \(message)" }
}

/// One lexical token of the SQL subset.
public struct SQLToken: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// A bare word: a keyword or an identifier (compared case-insensitively; `text` is uppercased,
        /// as ksqlDB folds unquoted identifiers).
        case word
        /// A back-quoted or double-quoted identifier, case kept.
        case quotedIdentifier
        /// A single-quoted string, `''` unescaped.
        case string
        /// An integer literal (digits only).
        case integer
        /// A number with a fraction or an exponent.
        case decimal
        /// An operator or punctuation: `( ) , ; . [ ] * + - / % = <> != < <= > >= ->`.
        case symbol
        /// The end of the input.
        case end
    }

    public var kind: Kind
    public var text: String
    public var position: SQLPosition
    /// The byte offset just past the token.
    public var endOffset: Int

    /// Whether this is the bare word `keyword` (given in upper case).
    func isWord(_ keyword: String) -> Bool { kind == .word && text == keyword }
    func isSymbol(_ symbol: String) -> Bool { kind == .symbol && text == symbol }

    /// How an error names the token.
    var quoted: String {
        switch kind {
        case .end: "the end of the statement"
        case .string: "'\(text)'"
        case .quotedIdentifier: "`\(text)`"
        default: "'\(text)'"
        }
    }
}
