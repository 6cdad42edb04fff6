/// Turns a SELECT over the catalog into a ``QueryPlan``: names resolved, types checked, aggregates
/// taken out of SELECT and HAVING into accumulators, and the output's columns named as ksqlDB
/// names them (an alias, a column's own name, a struct field's name, else `KSQL_COL_n`).
///
/// This step plans projections and filters of streams, and GROUP BY aggregations of streams over
/// one key expression, unwindowed or in tumbling or hopping windows. Joins, session windows and
/// queries over tables are refused with an error saying so.
public enum QueryPlanner {
    public static func plan(_ query: SQLQuery, catalog: Catalog) throws(PlanError) -> QueryPlan {
        guard let source = catalog.source(query.from.name) else { throw PlanError("unknown stream or table \(query.from.name)") }
        guard query.joins.isEmpty else { throw PlanError("JOIN is not supported yet") }
        if query.emit == .final { throw PlanError("EMIT FINAL is not supported yet (use EMIT CHANGES)") }
        guard source.kind == .stream else { throw PlanError("queries over the table \(source.name) are not supported yet (pull queries will read tables)") }
        let schema = source.schema(qualifier: query.from.qualifier)
        let binder = ExpressionBinder(schema)
        let filter = try query.filter.map { (e) throws(PlanError) in try binder.bindCondition(e, "WHERE") }
        let aggregated = !query.groupBy.isEmpty || query.items.contains { item in
            if case .expression(let e, _) = item { return e.containsAggregate }
            return false
        }
        if aggregated { return .aggregation(try aggregation(query, source, schema, filter)) }
        if query.window != nil { throw PlanError("WINDOW needs GROUP BY") }
        if query.having != nil { throw PlanError("HAVING needs GROUP BY") }
        return .projection(try projection(query, source, schema, binder, filter))
    }

    // MARK: Projection

    private static func projection(_ query: SQLQuery, _ source: SourceDescription, _ schema: RowSchema, _ binder: ExpressionBinder,
                                   _ filter: BoundExpression?) throws(PlanError) -> ProjectionPlan {
        var partitionBy: TypedExpression?
        if !query.partitionBy.isEmpty {
            guard query.partitionBy.count == 1 else { throw PlanError("PARTITION BY takes one expression in this version") }
            partitionBy = try binder.bind(query.partitionBy[0])
        }
        // The output key: the PARTITION BY expression, else the source's key column.
        var key: (expression: BoundExpression, column: ColumnDefinition)?
        if let partitionBy, let type = partitionBy.type {
            key = (partitionBy.expression, ColumnDefinition(columnName(query.partitionBy[0]) ?? "KSQL_COL_0", type, role: .key))
        } else if partitionBy != nil {
            throw PlanError("PARTITION BY NULL has no type")
        } else if let k = source.keyColumn, let i = source.columns.firstIndex(of: k) {
            key = (.column(i), ColumnDefinition(k.name, k.type, role: .key))
        }
        var projections: [BoundExpression] = []
        var columns: [ColumnDefinition] = key.map { [$0.column] } ?? []
        var unnamed = 0
        func add(_ expression: BoundExpression, _ type: SQLType?, _ name: String?) throws(PlanError) {
            if let key, expression == key.expression, name == nil || name == key.column.name { return }  // the key is output as the key
            let columnName = name ?? { defer { unnamed += 1 }; return "KSQL_COL_\(unnamed)" }()
            guard !columns.contains(where: { $0.name == columnName }) else { throw PlanError("the output has two columns named \(columnName): give one an alias") }
            guard let type else { throw PlanError("\(columnName) is a bare NULL: CAST it to a type") }
            columns.append(ColumnDefinition(columnName, type))
            projections.append(expression)
        }
        for item in query.items {
            switch item {
            case .all, .allOf:
                if case .allOf(let q) = item, q != query.from.qualifier { throw PlanError("unknown source \(q) in \(q).*") }
                for (i, column) in schema.columns.enumerated() { try add(.column(i), column.type, column.name) }
            case .expression(let e, let alias):
                let typed = try binder.bind(e)
                try add(typed.expression, typed.type, alias ?? columnName(e))
            }
        }
        return ProjectionPlan(source: source, filter: filter, projections: projections, partitionBy: partitionBy?.expression,
                              output: columns, limit: query.limit)
    }

    // MARK: Aggregation

    private static func aggregation(_ query: SQLQuery, _ source: SourceDescription, _ schema: RowSchema,
                                    _ filter: BoundExpression?) throws(PlanError) -> AggregationPlan {
        let binder = ExpressionBinder(schema)
        guard query.groupBy.count == 1 else {
            throw PlanError(query.groupBy.isEmpty ? "aggregates need GROUP BY" : "GROUP BY takes one expression in this version")
        }
        if case .session? = query.window?.shape { throw PlanError("SESSION windows are not supported yet") }
        if case .hopping(let size, let advance)? = query.window?.shape, let s = size.milliseconds, let a = advance.milliseconds,
           s / a > AggregationPlan.maxWindowsPerRecord {
            throw PlanError("a record would fall in \(s / a) hopping windows (at most \(AggregationPlan.maxWindowsPerRecord)): advance by more")
        }
        if !query.partitionBy.isEmpty { throw PlanError("PARTITION BY cannot be used with GROUP BY") }
        var groupBy: [TypedExpression] = []
        for e in query.groupBy {
            let typed = try binder.bind(e)
            guard typed.type != nil else { throw PlanError("GROUP BY NULL has no type") }
            groupBy.append(typed)
        }
        var rewriter = AggregateRewriter(binder: binder, groupBy: groupBy.map(\.expression))
        var items: [(SQLExpression, String?)] = []
        for item in query.items {
            guard case .expression(let e, let alias) = item else { throw PlanError("SELECT * cannot be used with GROUP BY") }
            items.append((try rewriter.rewrite(e), alias ?? columnName(e)))
        }
        let having = try query.having.map { (e) throws(PlanError) in try rewriter.rewrite(e) }

        // The group row: group values, the window's bounds, the aggregates' results.
        var groupColumns = groupBy.enumerated().map { RowSchema.Column(AggregationPlan.groupColumn($0.offset), $0.element.type!) }
        if query.window != nil {
            groupColumns += [RowSchema.Column("WINDOWSTART", .bigint), RowSchema.Column("WINDOWEND", .bigint)]
        }
        groupColumns += rewriter.calls.enumerated().map { RowSchema.Column(AggregationPlan.aggregateColumn($0.offset), $0.element.resultType) }
        let groupBinder = ExpressionBinder(RowSchema(groupColumns))
        func bindGroup(_ e: SQLExpression) throws(PlanError) -> TypedExpression {
            do {
                return try groupBinder.bind(e)
            } catch {
                // A column of the source that is neither grouped nor aggregated.
                if error.message.hasPrefix("unknown column"), let name = error.message.split(separator: " ").last,
                   schema.columns.contains(where: { $0.name == name }) {
                    throw PlanError("\(name) must be in GROUP BY or inside an aggregate")
                }
                throw error
            }
        }

        let keyName = columnName(query.groupBy[0]) ?? "KSQL_COL_0"
        var output = [ColumnDefinition(keyName, groupBy[0].type!, role: .primaryKey)]
        var projections: [BoundExpression] = []
        var unnamed = keyName == "KSQL_COL_0" ? 1 : 0
        for (e, name) in items {
            let typed = try bindGroup(e)
            if typed.expression == .column(0), name == nil || name == keyName { continue }  // the key
            let columnName = name ?? { defer { unnamed += 1 }; return "KSQL_COL_\(unnamed)" }()
            guard !output.contains(where: { $0.name == columnName }) else { throw PlanError("the output has two columns named \(columnName): give one an alias") }
            guard let type = typed.type else { throw PlanError("\(columnName) is a bare NULL: CAST it to a type") }
            output.append(ColumnDefinition(columnName, type))
            projections.append(typed.expression)
        }
        let boundHaving = try having.map { (e) throws(PlanError) in
            let typed = try bindGroup(e)
            guard typed.type == nil || typed.type == .boolean else { throw PlanError("HAVING must be BOOLEAN, not \(typed.type!)") }
            return typed.expression
        }
        let timestampColumn = source.timestampColumn.flatMap { name in source.columns.firstIndex { $0.name == name } }
        return AggregationPlan(source: source, filter: filter, groupBy: groupBy.map(\.expression), aggregates: rewriter.calls,
                               window: query.window, projections: projections, having: boundHaving, output: output,
                               timestampColumn: timestampColumn, limit: query.limit)
    }

    /// The name an unaliased item gets from its expression: a column's name, a struct field's name.
    static func columnName(_ e: SQLExpression) -> String? {
        switch e {
        case .column(_, let name): name
        case .field(_, let name): name
        default: nil
        }
    }
}

/// Takes aggregate calls out of SELECT and HAVING expressions (each distinct call once) and puts
/// references to the group row in their place, and in place of any part equal to a GROUP BY
/// expression.
struct AggregateRewriter {
    let binder: ExpressionBinder
    let groupBy: [BoundExpression]
    private(set) var calls: [AggregateCall] = []

    init(binder: ExpressionBinder, groupBy: [BoundExpression]) {
        self.binder = binder
        self.groupBy = groupBy
    }

    mutating func rewrite(_ e: SQLExpression) throws(PlanError) -> SQLExpression {
        if case .call(let name, let arguments, let distinct) = e, let function = AggregateFunction(rawValue: name) {
            return try aggregate(function, arguments, distinct)
        }
        if !e.containsAggregate, let bound = try? binder.bind(e), let i = groupBy.firstIndex(of: bound.expression) {
            return .column(qualifier: nil, name: AggregationPlan.groupColumn(i))
        }
        switch e {
        case .column, .literal, .star:
            return e
        case .unary(let op, let x): return .unary(op, try rewrite(x))
        case .binary(let op, let a, let b): return .binary(op, try rewrite(a), try rewrite(b))
        case .isNull(let x, let n): return .isNull(try rewrite(x), negated: n)
        case .between(let x, let lo, let hi, let n): return .between(try rewrite(x), low: try rewrite(lo), high: try rewrite(hi), negated: n)
        case .inList(let x, let list, let n):
            var items: [SQLExpression] = []
            for item in list { items.append(try rewrite(item)) }
            return .inList(try rewrite(x), items, negated: n)
        case .like(let x, let p, let n): return .like(try rewrite(x), pattern: try rewrite(p), negated: n)
        case .call(let name, let arguments, let distinct):
            var args: [SQLExpression] = []
            for a in arguments { args.append(try rewrite(a)) }
            return .call(name: name, arguments: args, distinct: distinct)
        case .cast(let x, let t): return .cast(try rewrite(x), t)
        case .caseWhen(let operand, let branches, let otherwise):
            var rewritten: [SQLWhen] = []
            for b in branches { rewritten.append(SQLWhen(try rewrite(b.condition), try rewrite(b.result))) }
            return .caseWhen(operand: try operand.map { (x) throws(PlanError) in try rewrite(x) }, branches: rewritten,
                             otherwise: try otherwise.map { (x) throws(PlanError) in try rewrite(x) })
        case .element(let a, let b): return .element(try rewrite(a), try rewrite(b))
        case .field(let a, let f): return .field(try rewrite(a), f)
        }
    }

    private mutating func aggregate(_ function: AggregateFunction, _ arguments: [SQLExpression], _ distinct: Bool) throws(PlanError) -> SQLExpression {
        var function = function
        if distinct {
            guard function == .count else { throw PlanError("DISTINCT is supported only in COUNT(DISTINCT x)") }
            function = .countDistinct
        }
        let argument: TypedExpression?
        switch arguments {
        case [.star] where function == .count: argument = nil
        case let args where args.count == 1:
            guard !args[0].containsAggregate else { throw PlanError("an aggregate cannot contain another aggregate") }
            argument = try binder.bind(args[0])
        default:
            throw PlanError("\(function.rawValue) takes one argument")
        }
        let call = AggregateCall(function: function, argument: argument?.expression, resultType: try function.resultType(argument?.type))
        let index = calls.firstIndex(of: call) ?? { calls.append(call); return calls.count - 1 }()
        return .column(qualifier: nil, name: AggregationPlan.aggregateColumn(index))
    }
}

extension SQLExpression {
    /// Whether an aggregate function is called anywhere in the expression.
    var containsAggregate: Bool {
        switch self {
        case .call(let name, let arguments, _):
            AggregateFunction(rawValue: name) != nil || arguments.contains { $0.containsAggregate }
        case .column, .literal, .star: false
        case .unary(_, let x), .isNull(let x, _), .cast(let x, _), .field(let x, _): x.containsAggregate
        case .binary(_, let a, let b), .like(let a, let b, _), .element(let a, let b): a.containsAggregate || b.containsAggregate
        case .between(let x, let lo, let hi, _): x.containsAggregate || lo.containsAggregate || hi.containsAggregate
        case .inList(let x, let list, _): x.containsAggregate || list.contains { $0.containsAggregate }
        case .caseWhen(let operand, let branches, let otherwise):
            (operand?.containsAggregate ?? false) || branches.contains { $0.condition.containsAggregate || $0.result.containsAggregate }
                || (otherwise?.containsAggregate ?? false)
        }
    }
}
