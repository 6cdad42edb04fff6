/// A recursive-descent parser of the SQL subset over the lexer's tokens. Statements here;
/// queries, expressions and types in the extensions beside this file.
///
/// Hostile input is bounded: the text by ``SQLLexer/maxBytes``, nesting (parentheses, CASE,
/// subscripts, types) by ``maxDepth``, so a deep `((((...` is an error, never a stack overflow.
public struct SQLParser {
    /// The deepest nesting of expressions and types taken.
    public static let maxDepth = 64

    var tokens: ArraySlice<SQLToken>
    var index: Int
    var depth = 0

    init(_ tokens: ArraySlice<SQLToken>) {
        self.tokens = tokens
        index = tokens.startIndex
    }

    /// One statement (a trailing `;` allowed).
    public static func parse(_ text: String) throws(SQLSyntaxError) -> SQLStatement {
        let tokens = try SQLLexer.tokens(text)
        var parser = SQLParser(tokens[...])
        let statement = try parser.statement()
        _ = parser.takeSymbol(";")
        try parser.expectEnd()
        return statement
    }

    // MARK: Cursor

    var current: SQLToken { tokens[index] }
    func peek(_ k: Int) -> SQLToken { index + k < tokens.endIndex ? tokens[index + k] : tokens[tokens.endIndex - 1] }

    mutating func advance() -> SQLToken {
        let token = tokens[index]
        if token.kind != .end && index + 1 < tokens.endIndex { index += 1 }
        return token
    }

    /// Takes the bare word `keyword` if it is next.
    mutating func takeWord(_ keyword: String) -> Bool {
        guard current.isWord(keyword) else { return false }
        _ = advance()
        return true
    }

    mutating func takeSymbol(_ symbol: String) -> Bool {
        guard current.isSymbol(symbol) else { return false }
        _ = advance()
        return true
    }

    mutating func expectWord(_ keyword: String) throws(SQLSyntaxError) {
        guard takeWord(keyword) else { throw unexpected(expecting: keyword) }
    }

    mutating func expectSymbol(_ symbol: String) throws(SQLSyntaxError) {
        guard takeSymbol(symbol) else { throw unexpected(expecting: "'\(symbol)'") }
    }

    func expectEnd() throws(SQLSyntaxError) {
        guard current.kind == .end else { throw unexpected(expecting: "the end of the statement") }
    }

    func unexpected(expecting what: String) -> SQLSyntaxError {
        SQLSyntaxError("expected \(what) but found \(current.quoted)", at: current.position)
    }

    /// Enters one level of nesting; refuses past ``maxDepth``.
    mutating func nest() throws(SQLSyntaxError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw SQLSyntaxError("nested more than \(Self.maxDepth) levels deep", at: current.position) }
    }

    mutating func unnest() { depth -= 1 }

    /// Words that end or join clauses, never taken as a bare identifier or alias.
    static let reserved: Set<String> = [
        "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "WINDOW", "EMIT", "LIMIT", "PARTITION", "JOIN", "LEFT", "RIGHT",
        "INNER", "FULL", "OUTER", "ON", "AS", "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "CASE", "WHEN", "THEN", "ELSE",
        "END", "IN", "BETWEEN", "LIKE", "CAST", "WITHIN", "INSERT", "INTO", "VALUES", "CREATE", "DROP", "WITH", "DISTINCT",
    ]

    /// An identifier: a quoted one as written, a bare word (not reserved) upper-cased.
    mutating func identifier(_ what: String) throws(SQLSyntaxError) -> String {
        switch current.kind {
        case .quotedIdentifier:
            return advance().text
        case .word where !Self.reserved.contains(current.text):
            return advance().text
        default:
            throw unexpected(expecting: what)
        }
    }

    var atIdentifier: Bool {
        current.kind == .quotedIdentifier || (current.kind == .word && !Self.reserved.contains(current.text))
    }

    // MARK: Statements

    mutating func statement() throws(SQLSyntaxError) -> SQLStatement {
        let first = current
        guard first.kind == .word else { throw unexpected(expecting: "a statement") }
        switch first.text {
        case "CREATE": return try create()
        case "INSERT": return try insert()
        case "SELECT": return .select(try query())
        case "SHOW", "LIST":
            _ = advance()
            guard current.kind == .word, let subject = ShowSubject(rawValue: current.text) else {
                throw unexpected(expecting: "STREAMS, TABLES, QUERIES, PROPERTIES or TOPICS")
            }
            _ = advance()
            return .show(subject)
        case "DESCRIBE":
            _ = advance()
            let name = try identifier("a stream or table name")
            return .describe(name: name, extended: takeWord("EXTENDED"))
        case "DROP": return try drop()
        case "TERMINATE":
            _ = advance()
            if takeWord("ALL") { return .terminate(queryId: nil) }
            return .terminate(queryId: try identifier("a query id or ALL"))
        case "SET":
            _ = advance()
            let property = try stringLiteral("a property name in quotes")
            try expectSymbol("=")
            return .set(property: property, value: try stringLiteral("a value in quotes"))
        case "UNSET":
            _ = advance()
            return .unset(property: try stringLiteral("a property name in quotes"))
        default:
            throw SQLSyntaxError("unknown statement \(first.quoted)", at: first.position)
        }
    }

    mutating func stringLiteral(_ what: String) throws(SQLSyntaxError) -> String {
        guard current.kind == .string else { throw unexpected(expecting: what) }
        return advance().text
    }

    private mutating func sourceKind() throws(SQLSyntaxError) -> SourceKind {
        if takeWord("STREAM") { return .stream }
        if takeWord("TABLE") { return .table }
        throw unexpected(expecting: "STREAM or TABLE")
    }

    private mutating func create() throws(SQLSyntaxError) -> SQLStatement {
        try expectWord("CREATE")
        var orReplace = false
        if takeWord("OR") {
            try expectWord("REPLACE")
            orReplace = true
        }
        let kind = try sourceKind()
        var ifNotExists = false
        if takeWord("IF") {
            try expectWord("NOT")
            try expectWord("EXISTS")
            ifNotExists = true
        }
        let name = try identifier("a name for the \(kind.rawValue.lowercased())")
        if current.isSymbol("(") {
            let columns = try columnDefinitions(kind)
            var properties = SQLProperties()
            if takeWord("WITH") { properties = try self.properties() }
            return .createSource(CreateSource(kind: kind, name: name, columns: columns, properties: properties,
                                              orReplace: orReplace, ifNotExists: ifNotExists))
        }
        var properties = SQLProperties()
        if takeWord("WITH") { properties = try self.properties() }
        try expectWord("AS")
        guard current.isWord("SELECT") else { throw unexpected(expecting: "SELECT") }
        let query = try self.query()
        return .createAsSelect(CreateAsSelect(kind: kind, name: name, properties: properties, query: query,
                                              orReplace: orReplace, ifNotExists: ifNotExists))
    }

    private mutating func columnDefinitions(_ kind: SourceKind) throws(SQLSyntaxError) -> [ColumnDefinition] {
        try expectSymbol("(")
        var columns: [ColumnDefinition] = []
        repeat {
            let at = current.position
            let name = try identifier("a column name")
            guard !columns.contains(where: { $0.name == name }) else { throw SQLSyntaxError("the column \(name) is declared twice", at: at) }
            let type = try self.type()
            var role = ColumnDefinition.Role.value
            if takeWord("PRIMARY") {
                try expectWord("KEY")
                guard kind == .table else { throw SQLSyntaxError("a stream has no PRIMARY KEY (use KEY)", at: at) }
                role = .primaryKey
            } else if takeWord("KEY") {
                guard kind == .stream else { throw SQLSyntaxError("a table's key is declared PRIMARY KEY", at: at) }
                role = .key
            } else if takeWord("HEADERS") {
                role = .header(nil)
            } else if takeWord("HEADER") {
                try expectSymbol("(")
                role = .header(try stringLiteral("a header name in quotes"))
                try expectSymbol(")")
            }
            columns.append(ColumnDefinition(name, type, role: role))
        } while takeSymbol(",")
        try expectSymbol(")")
        return columns
    }

    /// `(name = value, ...)` after WITH.
    mutating func properties() throws(SQLSyntaxError) -> SQLProperties {
        try expectSymbol("(")
        var properties = SQLProperties()
        repeat {
            let at = current.position
            let name = try identifier("a property name")
            try expectSymbol("=")
            let value: PropertyValue
            switch current.kind {
            case .string: value = .string(advance().text)
            case .integer:
                guard let n = Int64(current.text) else { throw SQLSyntaxError("\(current.text) does not fit 64 bits", at: current.position) }
                _ = advance()
                value = .integer(n)
            case .decimal: value = .decimal(advance().text)
            case .word where current.text == "TRUE" || current.text == "FALSE": value = .boolean(advance().text == "TRUE")
            default: throw unexpected(expecting: "a property value")
            }
            guard properties.add(name, value) else { throw SQLSyntaxError("the property \(name.uppercased()) is given twice", at: at) }
        } while takeSymbol(",")
        try expectSymbol(")")
        return properties
    }

    private mutating func insert() throws(SQLSyntaxError) -> SQLStatement {
        try expectWord("INSERT")
        try expectWord("INTO")
        let target = try identifier("a stream name")
        if current.isWord("SELECT") { return .insertSelect(target: target, query: try query()) }
        var columns: [String]?
        if takeSymbol("(") {
            var names: [String] = []
            repeat { names.append(try identifier("a column name")) } while takeSymbol(",")
            try expectSymbol(")")
            columns = names
        }
        try expectWord("VALUES")
        try expectSymbol("(")
        var values: [SQLExpression] = []
        repeat { values.append(try expression()) } while takeSymbol(",")
        try expectSymbol(")")
        if let columns, columns.count != values.count {
            throw SQLSyntaxError("\(columns.count) columns but \(values.count) values", at: current.position)
        }
        return .insertValues(InsertValues(target: target, columns: columns, values: values))
    }

    private mutating func drop() throws(SQLSyntaxError) -> SQLStatement {
        try expectWord("DROP")
        let kind = try sourceKind()
        var ifExists = false
        if takeWord("IF") {
            try expectWord("EXISTS")
            ifExists = true
        }
        let name = try identifier("a name")
        var deleteTopic = false
        if takeWord("DELETE") {
            try expectWord("TOPIC")
            deleteTopic = true
        }
        return .drop(kind: kind, name: name, ifExists: ifExists, deleteTopic: deleteTopic)
    }
}
