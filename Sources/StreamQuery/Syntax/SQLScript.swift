/// A request's SQL text split into statements at `;` outside quotes and comments, each parsed on
/// its own, so a failure names the statement it is in (`statementText` in ksqlDB's errors) and the
/// statements before it can still run.
public enum SQLScript {
    /// One statement of a script: its text (from its first token through its `;`) and what it parsed to.
    public struct Piece: Sendable {
        public var text: String
        public var result: Result<SQLStatement, SQLSyntaxError>
    }

    /// The statements of `text` in order. A text that cannot even be split (an unclosed quote or
    /// comment, a stray character) ends with one failed piece holding the rest of the text.
    public static func statements(_ text: String) -> [Piece] {
        let bytes = Array(text.utf8)
        do {
            return try split(bytes, tokens: SQLLexer.tokens(text))
        } catch {
            // The statements before the failing one still stand (when they lex on their own).
            let start = failingStatementStart(bytes, error)
            let rest = Piece(text: String(decoding: bytes[start...], as: UTF8.self), result: .failure(error))
            let before = String(decoding: bytes[..<start], as: UTF8.self)
            guard let tokens = try? SQLLexer.tokens(before) else { return [Piece(text: text, result: .failure(error))] }
            return split(Array(before.utf8), tokens: tokens) + [rest]
        }
    }

    private static func split(_ bytes: [UInt8], tokens: [SQLToken]) -> [Piece] {
        var pieces: [Piece] = []
        var start = tokens.startIndex
        while tokens[start].kind != .end {
            if tokens[start].isSymbol(";") {  // an empty statement
                start += 1
                continue
            }
            var end = start
            while tokens[end].kind != .end && !tokens[end].isSymbol(";") { end += 1 }
            let last = tokens[end].kind == .end ? end - 1 : end
            let from = tokens[start].position.offset, to = tokens[last].endOffset
            let statementText = String(decoding: bytes[from..<to], as: UTF8.self)
            // The statement's tokens, then an end token (the `;` itself is not parsed).
            var slice = Array(tokens[start..<end])
            slice.append(SQLToken(kind: .end, text: "", position: tokens[end].position, endOffset: tokens[end].endOffset))
            var parser = SQLParser(slice[...])
            let result: Result<SQLStatement, SQLSyntaxError>
            do {
                let statement = try parser.statement()
                try parser.expectEnd()
                result = .success(statement)
            } catch {
                result = .failure(error)
            }
            pieces.append(Piece(text: statementText, result: result))
            if tokens[end].kind == .end { break }
            start = end + 1
        }
        return pieces
    }

    /// Where the statement a lexing failure is in starts: after the last `;` before the failure
    /// outside quotes (comments are not told apart here; the lexer's own pass checks the prefix).
    private static func failingStatementStart(_ bytes: [UInt8], _ error: SQLSyntaxError) -> Int {
        // The failing statement starts after the last `;` before the error, outside quotes: scan
        // again up to the error with a tolerant pass.
        var i = 0, statementStart = 0, quote: UInt8?
        while i < min(error.position.offset, bytes.count) {
            let c = bytes[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "`") || c == UInt8(ascii: "\"") {
                quote = c
            } else if c == UInt8(ascii: ";") {
                statementStart = i + 1
            }
            i += 1
        }
        while statementStart < bytes.count, bytes[statementStart] == 0x20 || bytes[statementStart] == 0x0A || bytes[statementStart] == 0x09 || bytes[statementStart] == 0x0D {
            statementStart += 1
        }
        return statementStart
    }
}
