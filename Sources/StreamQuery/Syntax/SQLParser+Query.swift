extension SQLParser {
    /// `SELECT ... FROM ...` with its clauses, in ksqlDB's order: JOINs, WINDOW, WHERE, GROUP BY,
    /// PARTITION BY, HAVING, EMIT, LIMIT.
    mutating func query() throws(SQLSyntaxError) -> SQLQuery {
        try expectWord("SELECT")
        var items: [SelectItem] = []
        repeat { items.append(try selectItem()) } while takeSymbol(",")
        try expectWord("FROM")
        var query = SQLQuery(items: items, from: try sourceReference())
        while let kind = try joinKind() {
            let source = try sourceReference()
            var within: WindowDuration?
            if takeWord("WITHIN") { within = try duration() }
            try expectWord("ON")
            query.joins.append(SQLJoin(kind: kind, source: source, condition: try expression(), within: within))
        }
        if takeWord("WINDOW") { query.window = try window() }
        if takeWord("WHERE") { query.filter = try expression() }
        if takeWord("GROUP") {
            try expectWord("BY")
            query.groupBy = try expressionList()
        }
        if takeWord("PARTITION") {
            try expectWord("BY")
            query.partitionBy = try expressionList()
        }
        if takeWord("HAVING") { query.having = try expression() }
        if takeWord("EMIT") {
            if takeWord("CHANGES") {
                query.emit = .changes
            } else if takeWord("FINAL") {
                query.emit = .final
            } else {
                throw unexpected(expecting: "CHANGES or FINAL")
            }
        }
        if takeWord("LIMIT") {
            guard current.kind == .integer, let n = Int(current.text), n >= 0, n <= Int(Int32.max) else {
                throw unexpected(expecting: "a row count")
            }
            _ = advance()
            query.limit = n
        }
        return query
    }

    private mutating func selectItem() throws(SQLSyntaxError) -> SelectItem {
        if takeSymbol("*") { return .all }
        if atIdentifier, peek(1).isSymbol("."), peek(2).isSymbol("*") {
            let qualifier = try identifier("a source name")
            _ = advance(); _ = advance()
            return .allOf(qualifier)
        }
        let expression = try self.expression()
        if takeWord("AS") { return .expression(expression, alias: try identifier("an alias")) }
        if atIdentifier { return .expression(expression, alias: try identifier("an alias")) }
        return .expression(expression, alias: nil)
    }

    private mutating func sourceReference() throws(SQLSyntaxError) -> SourceReference {
        let name = try identifier("a stream or table name")
        if takeWord("AS") { return SourceReference(name, alias: try identifier("an alias")) }
        if atIdentifier { return SourceReference(name, alias: try identifier("an alias")) }
        return SourceReference(name)
    }

    /// The kind of the JOIN that starts here, taken; nil when none does.
    private mutating func joinKind() throws(SQLSyntaxError) -> SQLJoin.Kind? {
        let kind: SQLJoin.Kind
        if takeWord("JOIN") { return .inner }
        if takeWord("INNER") {
            kind = .inner
        } else if takeWord("LEFT") {
            kind = .left
        } else if takeWord("RIGHT") {
            kind = .right
        } else if takeWord("FULL") {
            kind = .full
        } else {
            return nil
        }
        if kind != .inner { _ = takeWord("OUTER") }
        try expectWord("JOIN")
        return kind
    }

    private mutating func expressionList() throws(SQLSyntaxError) -> [SQLExpression] {
        var list: [SQLExpression] = []
        repeat { list.append(try expression()) } while takeSymbol(",")
        return list
    }

    // MARK: Windows

    private mutating func window() throws(SQLSyntaxError) -> WindowSpec {
        let shapeWord = current
        guard shapeWord.kind == .word, ["TUMBLING", "HOPPING", "SESSION"].contains(shapeWord.text) else {
            throw unexpected(expecting: "TUMBLING, HOPPING or SESSION")
        }
        _ = advance()
        try expectSymbol("(")
        let shape: WindowSpec.Shape
        switch shapeWord.text {
        case "TUMBLING":
            try expectWord("SIZE")
            shape = .tumbling(size: try positiveDuration())
        case "HOPPING":
            try expectWord("SIZE")
            let size = try positiveDuration()
            try expectSymbol(",")
            try expectWord("ADVANCE")
            try expectWord("BY")
            let at = current.position
            let advance = try positiveDuration()
            guard let a = advance.milliseconds, let s = size.milliseconds, a <= s else {
                throw SQLSyntaxError("a hopping window cannot advance by more than its size", at: at)
            }
            shape = .hopping(size: size, advance: advance)
        default:
            shape = .session(gap: try positiveDuration())
        }
        var grace: WindowDuration?
        while takeSymbol(",") {
            if takeWord("GRACE") {
                try expectWord("PERIOD")
                guard grace == nil else { throw SQLSyntaxError("GRACE PERIOD is given twice", at: current.position) }
                grace = try duration()
            } else {
                throw unexpected(expecting: "GRACE PERIOD")
            }
        }
        try expectSymbol(")")
        return WindowSpec(shape: shape, grace: grace)
    }

    /// `n UNIT`, units singular or plural.
    mutating func duration() throws(SQLSyntaxError) -> WindowDuration {
        let at = current.position
        guard current.kind == .integer, let amount = Int64(current.text) else { throw unexpected(expecting: "a duration") }
        _ = advance()
        guard current.kind == .word else { throw unexpected(expecting: "a time unit") }
        let word = current.text.hasSuffix("S") ? current.text : current.text + "S"
        guard let unit = WindowDuration.Unit(rawValue: word) else {
            throw unexpected(expecting: "MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS")
        }
        _ = advance()
        let duration = WindowDuration(amount, unit)
        guard duration.milliseconds != nil else { throw SQLSyntaxError("the duration does not fit 64 bits of milliseconds", at: at) }
        return duration
    }

    private mutating func positiveDuration() throws(SQLSyntaxError) -> WindowDuration {
        let at = current.position
        let d = try duration()
        guard d.amount > 0 else { throw SQLSyntaxError("a window's durations must be positive", at: at) }
        return d
    }
}
