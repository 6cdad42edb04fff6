extension SQLParser {
    /// An expression, by precedence from loosest: OR, AND, NOT, predicates (comparisons, IS NULL,
    /// BETWEEN, IN, LIKE), `+ - ||`, `* / %`, unary `- +`, postfix `[i]` and `->f`, primaries.
    mutating func expression() throws(SQLSyntaxError) -> SQLExpression {
        try nest()
        defer { unnest() }
        return try or()
    }

    private mutating func or() throws(SQLSyntaxError) -> SQLExpression {
        var left = try and()
        while takeWord("OR") { left = .binary(.or, left, try and()) }
        return left
    }

    private mutating func and() throws(SQLSyntaxError) -> SQLExpression {
        var left = try not()
        while takeWord("AND") { left = .binary(.and, left, try not()) }
        return left
    }

    private mutating func not() throws(SQLSyntaxError) -> SQLExpression {
        if takeWord("NOT") {
            try nest()
            defer { unnest() }
            return .unary(.not, try not())
        }
        return try predicate()
    }

    private mutating func predicate() throws(SQLSyntaxError) -> SQLExpression {
        let left = try additive()
        if current.kind == .symbol, let op = Self.comparisons[current.text] {
            _ = advance()
            return .binary(op, left, try additive())
        }
        if takeWord("IS") {
            let negated = takeWord("NOT")
            try expectWord("NULL")
            return .isNull(left, negated: negated)
        }
        let negated = current.isWord("NOT") && (peek(1).isWord("BETWEEN") || peek(1).isWord("IN") || peek(1).isWord("LIKE"))
        if negated { _ = advance() }
        if takeWord("BETWEEN") {
            let low = try additive()
            try expectWord("AND")
            return .between(left, low: low, high: try additive(), negated: negated)
        }
        if takeWord("IN") {
            try expectSymbol("(")
            var list: [SQLExpression] = []
            repeat { list.append(try expression()) } while takeSymbol(",")
            try expectSymbol(")")
            return .inList(left, list, negated: negated)
        }
        if takeWord("LIKE") { return .like(left, pattern: try additive(), negated: negated) }
        return left
    }

    private static let comparisons: [String: SQLBinaryOperator] = [
        "=": .equal, "<>": .notEqual, "!=": .notEqual, "<": .less, "<=": .lessOrEqual, ">": .greater, ">=": .greaterOrEqual,
    ]

    private mutating func additive() throws(SQLSyntaxError) -> SQLExpression {
        var left = try multiplicative()
        while current.kind == .symbol {
            let op: SQLBinaryOperator
            switch current.text {
            case "+": op = .add
            case "-": op = .subtract
            case "||": op = .concat
            default: return left
            }
            _ = advance()
            left = .binary(op, left, try multiplicative())
        }
        return left
    }

    private mutating func multiplicative() throws(SQLSyntaxError) -> SQLExpression {
        var left = try unary()
        while current.kind == .symbol {
            let op: SQLBinaryOperator
            switch current.text {
            case "*": op = .multiply
            case "/": op = .divide
            case "%": op = .modulo
            default: return left
            }
            _ = advance()
            left = .binary(op, left, try unary())
        }
        return left
    }

    private mutating func unary() throws(SQLSyntaxError) -> SQLExpression {
        if current.isSymbol("-") || current.isSymbol("+") {
            let minus = advance().text == "-"
            try nest()
            defer { unnest() }
            let operand = try unary()
            // A negative literal is a literal (so -9223372036854775808 fits).
            if minus, case .literal(.integer(let n)) = operand, n != .min { return .literal(.integer(-n)) }
            if minus, case .literal(.decimal(let d)) = operand, let n = Int64("-" + d) { return .literal(.integer(n)) }
            if minus, case .literal(.decimal(let d)) = operand, !d.hasPrefix("-") { return .literal(.decimal("-" + d)) }
            return .unary(minus ? .negate : .plus, operand)
        }
        return try postfix()
    }

    private mutating func postfix() throws(SQLSyntaxError) -> SQLExpression {
        var base = try primary()
        var levels = 0
        defer { for _ in 0..<levels { unnest() } }
        while true {
            if takeSymbol("[") {
                try nest(); levels += 1
                let index = try expression()
                try expectSymbol("]")
                base = .element(base, index)
            } else if takeSymbol("->") {
                try nest(); levels += 1
                base = .field(base, try identifier("a field name"))
            } else {
                return base
            }
        }
    }

    private mutating func primary() throws(SQLSyntaxError) -> SQLExpression {
        let token = current
        switch token.kind {
        case .integer:
            _ = advance()
            // Past 64 bits an integer is a decimal (Int64.min's magnitude becomes an integer again
            // under its minus sign, in `unary`).
            if let n = Int64(token.text) { return .literal(.integer(n)) }
            return .literal(.decimal(token.text))
        case .decimal:
            _ = advance()
            return .literal(.decimal(token.text))
        case .string:
            _ = advance()
            return .literal(.string(token.text))
        case .symbol where token.text == "(":
            _ = advance()
            let inner = try expression()
            try expectSymbol(")")
            return inner
        case .word:
            switch token.text {
            case "NULL": _ = advance(); return .literal(.null)
            case "TRUE": _ = advance(); return .literal(.boolean(true))
            case "FALSE": _ = advance(); return .literal(.boolean(false))
            case "CAST": return try cast()
            case "CASE": return try caseWhen()
            default: break
            }
            return try reference()
        case .quotedIdentifier:
            return try reference()
        default:
            throw unexpected(expecting: "an expression")
        }
    }

    /// A column (`c`, `s.c`) or a function call (`f(...)`).
    private mutating func reference() throws(SQLSyntaxError) -> SQLExpression {
        let wasQuoted = current.kind == .quotedIdentifier
        let name = try identifier("an expression")
        if !wasQuoted, takeSymbol("(") {
            try nest()
            defer { unnest() }
            if takeSymbol(")") { return .call(name: name, arguments: [], distinct: false) }
            if takeSymbol("*") {
                try expectSymbol(")")
                return .call(name: name, arguments: [.star], distinct: false)
            }
            let distinct = takeWord("DISTINCT")
            var arguments: [SQLExpression] = []
            repeat { arguments.append(try expression()) } while takeSymbol(",")
            try expectSymbol(")")
            return .call(name: name, arguments: arguments, distinct: distinct)
        }
        if current.isSymbol("."), peek(1).kind == .word || peek(1).kind == .quotedIdentifier {
            _ = advance()
            return .column(qualifier: name, name: try identifier("a column name"))
        }
        return .column(qualifier: nil, name: name)
    }

    private mutating func cast() throws(SQLSyntaxError) -> SQLExpression {
        try expectWord("CAST")
        try expectSymbol("(")
        let value = try expression()
        try expectWord("AS")
        let type = try self.type()
        try expectSymbol(")")
        return .cast(value, type)
    }

    private mutating func caseWhen() throws(SQLSyntaxError) -> SQLExpression {
        try expectWord("CASE")
        try nest()
        defer { unnest() }
        let operand: SQLExpression? = current.isWord("WHEN") ? nil : try expression()
        var branches: [SQLWhen] = []
        while takeWord("WHEN") {
            let condition = try expression()
            try expectWord("THEN")
            branches.append(SQLWhen(condition, try expression()))
        }
        guard !branches.isEmpty else { throw unexpected(expecting: "WHEN") }
        let otherwise: SQLExpression? = takeWord("ELSE") ? try expression() : nil
        try expectWord("END")
        return .caseWhen(operand: operand, branches: branches, otherwise: otherwise)
    }

    // MARK: Types

    /// A column type.
    mutating func type() throws(SQLSyntaxError) -> SQLType {
        try nest()
        defer { unnest() }
        let token = current
        guard token.kind == .word else { throw unexpected(expecting: "a type") }
        _ = advance()
        switch token.text {
        case "BOOLEAN": return .boolean
        case "INT", "INTEGER": return .integer
        case "BIGINT": return .bigint
        case "DOUBLE": return .double
        case "STRING", "VARCHAR": return .string
        case "BYTES": return .bytes
        case "TIMESTAMP": return .timestamp
        case "DATE": return .date
        case "TIME": return .time
        case "DECIMAL":
            try expectSymbol("(")
            let precision = try smallInteger("a precision")
            try expectSymbol(",")
            let scale = try smallInteger("a scale")
            try expectSymbol(")")
            guard precision >= 1, precision <= SQLType.maxPrecision, scale <= precision else {
                throw SQLSyntaxError("DECIMAL needs 1 <= precision <= \(SQLType.maxPrecision) and scale <= precision", at: token.position)
            }
            return .decimal(precision: precision, scale: scale)
        case "ARRAY":
            try expectSymbol("<")
            let member = try type()
            try expectSymbol(">")
            return .array(member)
        case "MAP":
            try expectSymbol("<")
            let key = try type()
            try expectSymbol(",")
            let value = try type()
            try expectSymbol(">")
            return .map(key: key, value: value)
        case "STRUCT":
            try expectSymbol("<")
            var fields: [SQLField] = []
            if !current.isSymbol(">") {
                repeat {
                    let at = current.position
                    let name = try identifier("a field name")
                    guard !fields.contains(where: { $0.name == name }) else { throw SQLSyntaxError("the field \(name) is declared twice", at: at) }
                    fields.append(SQLField(name, try type()))
                } while takeSymbol(",")
            }
            try expectSymbol(">")
            return .structure(fields)
        default:
            throw SQLSyntaxError("unknown type \(token.quoted)", at: token.position)
        }
    }

    private mutating func smallInteger(_ what: String) throws(SQLSyntaxError) -> Int {
        guard current.kind == .integer, let n = Int(current.text), n <= 1_000_000 else { throw unexpected(expecting: what) }
        _ = advance()
        return n
    }
}
