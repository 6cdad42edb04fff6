/// A bound expression with its type (nil for a bare NULL, whose type the context decides).
public struct TypedExpression: Hashable, Sendable {
    public var expression: BoundExpression
    public var type: SQLType?
}

/// Resolves an expression's names against a ``RowSchema`` and checks its types, giving a
/// ``BoundExpression`` operators evaluate. Errors are ``PlanError``s that name what is wrong;
/// constant parts are folded once here rather than per row.
public struct ExpressionBinder: Sendable {
    public let schema: RowSchema

    public init(_ schema: RowSchema) { self.schema = schema }

    /// Names of the aggregate functions, refused in scalar positions (the planner takes them out
    /// of SELECT and HAVING first).
    public static let aggregates: Set<String> = ["COUNT", "SUM", "MIN", "MAX", "AVG", "LATEST_BY_OFFSET", "EARLIEST_BY_OFFSET", "COUNT_DISTINCT", "COLLECT_LIST", "COLLECT_SET", "TOPK"]

    public func bind(_ expression: SQLExpression) throws(PlanError) -> TypedExpression {
        let typed = try bindUnfolded(expression)
        // A part that reads no column is the same for every row: computed now (its parts were
        // folded already, so this looks one level deep).
        if case .constant = typed.expression { return typed }
        guard typed.expression.isConstant else { return typed }
        return TypedExpression(expression: .constant(typed.expression.evaluate([])), type: typed.type)
    }

    /// A condition (WHERE, HAVING, ON, WHEN): BOOLEAN, or a bare NULL.
    public func bindCondition(_ expression: SQLExpression, _ clause: String) throws(PlanError) -> BoundExpression {
        let typed = try bind(expression)
        guard typed.type == nil || typed.type == .boolean else { throw PlanError("\(clause) must be BOOLEAN, not \(typed.type!)") }
        return typed.expression
    }

    private func bindUnfolded(_ expression: SQLExpression) throws(PlanError) -> TypedExpression {
        switch expression {
        case .column(let qualifier, let name):
            let i = try schema.index(qualifier: qualifier, name: name)
            return TypedExpression(expression: .column(i), type: schema.columns[i].type)
        case .literal(let literal):
            return Self.literal(literal)
        case .star:
            throw PlanError("* is allowed only as COUNT(*)")
        case .unary(let op, let operand):
            let e = try bind(operand)
            switch op {
            case .not:
                try Self.expect(e, .boolean, "NOT")
                return TypedExpression(expression: .not(e.expression), type: .boolean)
            case .negate, .plus:
                let t = e.type ?? .integer
                guard t.isNumeric else { throw PlanError("unary \(op.rawValue) needs a number, not \(t)") }
                return op == .plus ? e : TypedExpression(expression: .negate(e.expression, t), type: t)
            }
        case .binary(let op, let l, let r):
            return try binary(op, try bind(l), try bind(r))
        case .isNull(let e, let negated):
            return TypedExpression(expression: .isNull(try bind(e).expression, negated: negated), type: .boolean)
        case .between(let e, let low, let high, let negated):
            // x BETWEEN a AND b is a <= x AND x <= b, with x evaluated for each side.
            let x = try bind(e), a = try bind(low), b = try bind(high)
            let within = try binary(.and, try binary(.greaterOrEqual, x, a), try binary(.lessOrEqual, x, b))
            return negated ? TypedExpression(expression: .not(within.expression), type: .boolean) : within
        case .inList(let e, let list, let negated):
            let x = try bind(e)
            var items: [BoundExpression] = []
            for item in list {
                let b = try bind(item)
                try Self.comparable(x.type, b.type, "IN")
                items.append(b.expression)
            }
            return TypedExpression(expression: .inList(x.expression, items, negated: negated), type: .boolean)
        case .like(let e, let pattern, let negated):
            let x = try bind(e), p = try bind(pattern)
            try Self.expect(x, .string, "LIKE")
            try Self.expect(p, .string, "LIKE")
            return TypedExpression(expression: .like(x.expression, pattern: p.expression, negated: negated), type: .boolean)
        case .call(let name, let arguments, _):
            if Self.aggregates.contains(name) { throw PlanError("the aggregate \(name) is not allowed here") }
            guard let function = ScalarFunction.named(name) else { throw PlanError("unknown function \(name)") }
            var bound: [TypedExpression] = []
            for argument in arguments { bound.append(try bind(argument)) }
            let type = try function.resultType(bound.map(\.type))
            return TypedExpression(expression: .call(function, bound.map(\.expression), type), type: type)
        case .cast(let e, let type):
            let x = try bind(e)
            if let from = x.type, !Casts.allowed(from: from, to: type) { throw PlanError("cannot CAST \(from) AS \(type)") }
            return TypedExpression(expression: .cast(x.expression, from: x.type, to: type), type: type)
        case .caseWhen(let operand, let branches, let otherwise):
            return try caseWhen(operand, branches, otherwise)
        case .element(let base, let index):
            let b = try bind(base), i = try bind(index)
            switch b.type {
            case .array(let member)?:
                guard i.type == nil || i.type == .integer || i.type == .bigint else { throw PlanError("an ARRAY index must be an integer, not \(i.type!)") }
                return TypedExpression(expression: .element(b.expression, i.expression), type: member)
            case .map(let key, let value)?:
                try Self.comparable(key, i.type, "a MAP lookup")
                return TypedExpression(expression: .element(b.expression, i.expression), type: value)
            default:
                throw PlanError("[] needs an ARRAY or a MAP, not \(b.type.map { "\($0)" } ?? "NULL")")
            }
        case .field(let base, let name):
            let b = try bind(base)
            guard case .structure(let fields)? = b.type else { throw PlanError("-> needs a STRUCT, not \(b.type.map { "\($0)" } ?? "NULL")") }
            guard let i = fields.firstIndex(where: { $0.name == name }) else { throw PlanError("the STRUCT has no field \(name)") }
            return TypedExpression(expression: .field(b.expression, i), type: fields[i].type)
        }
    }

    private func binary(_ op: SQLBinaryOperator, _ l: TypedExpression, _ r: TypedExpression) throws(PlanError) -> TypedExpression {
        switch op {
        case .and, .or:
            try Self.expect(l, .boolean, op.rawValue)
            try Self.expect(r, .boolean, op.rawValue)
            return TypedExpression(expression: op == .and ? .and(l.expression, r.expression) : .or(l.expression, r.expression), type: .boolean)
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual:
            try Self.comparable(l.type, r.type, op.rawValue)
            return TypedExpression(expression: .comparison(op, l.expression, r.expression), type: .boolean)
        case .concat:
            try Self.expect(l, .string, "||")
            try Self.expect(r, .string, "||")
            return TypedExpression(expression: .concat(l.expression, r.expression), type: .string)
        case .add, .subtract, .multiply, .divide, .modulo:
            let a = l.type ?? r.type ?? .integer, b = r.type ?? l.type ?? .integer
            guard let type = Arithmetic.resultType(op, a, b) else { throw PlanError("\(op.rawValue) needs numbers, not \(a) and \(b)") }
            return TypedExpression(expression: .arithmetic(op, l.expression, r.expression, type), type: type)
        }
    }

    private func caseWhen(_ operand: SQLExpression?, _ branches: [SQLWhen], _ otherwise: SQLExpression?) throws(PlanError) -> TypedExpression {
        let subject = try operand.map { (e) throws(PlanError) in try bind(e) }
        var bound: [BoundWhen] = []
        var resultType: SQLType?
        func unify(_ t: SQLType?) throws(PlanError) {
            guard let t else { return }
            guard let current = resultType else { resultType = t; return }
            if current == t { return }
            if let a = NumericRank(current), let b = NumericRank(t) {
                resultType = a > b ? current : t
                return
            }
            throw PlanError("CASE results must share one type, not \(current) and \(t)")
        }
        for branch in branches {
            let condition: BoundExpression
            if let subject {
                // CASE x WHEN v is CASE WHEN x = v.
                let value = try bind(branch.condition)
                condition = try binary(.equal, subject, value).expression
            } else {
                condition = try bindCondition(branch.condition, "WHEN")
            }
            let result = try bind(branch.result)
            try unify(result.type)
            bound.append(BoundWhen(condition: condition, result: result.expression))
        }
        let otherwiseBound = try otherwise.map { (e) throws(PlanError) in try bind(e) }
        try unify(otherwiseBound?.type)
        // Results of a narrower numeric type are widened so every branch gives the CASE's type.
        if let resultType, resultType.isNumeric {
            bound = bound.map { BoundWhen(condition: $0.condition, result: .cast($0.result, from: nil, to: resultType)) }
            return TypedExpression(expression: .caseWhen(bound, otherwise: otherwiseBound.map { .cast($0.expression, from: nil, to: resultType) }), type: resultType)
        }
        return TypedExpression(expression: .caseWhen(bound, otherwise: otherwiseBound?.expression), type: resultType)
    }

    static func literal(_ literal: SQLLiteral) -> TypedExpression {
        switch literal {
        case .null: return TypedExpression(expression: .constant(.null), type: nil)
        case .boolean(let b): return TypedExpression(expression: .constant(.boolean(b)), type: .boolean)
        case .integer(let n):
            if let small = Int32(exactly: n) { return TypedExpression(expression: .constant(.integer(small)), type: .integer) }
            return TypedExpression(expression: .constant(.bigint(n)), type: .bigint)
        case .decimal(let text):
            // 1.5 is a DECIMAL(2, 1); 1e3 (an exponent) a DOUBLE, as in ksqlDB.
            if text.contains(where: { $0 == "e" || $0 == "E" }) {
                return TypedExpression(expression: .constant(Double(text).map { .double($0) } ?? .null), type: .double)
            }
            let digits = text.filter(\.isNumber)
            let scale = text.split(separator: ".", maxSplits: 1).dropFirst().first?.count ?? 0
            let precision = min(max(digits.drop { $0 == "0" }.count, scale, 1), SQLType.maxPrecision)
            let type = SQLType.decimal(precision: precision, scale: min(scale, precision))
            return TypedExpression(expression: .constant(Casts.cast(.string(text), from: .string, to: type)), type: type)
        case .string(let s): return TypedExpression(expression: .constant(.string(s)), type: .string)
        }
    }

    static func expect(_ e: TypedExpression, _ type: SQLType, _ what: String) throws(PlanError) {
        if let t = e.type, t != type { throw PlanError("\(what) needs \(type), not \(t)") }
    }

    static func comparable(_ a: SQLType?, _ b: SQLType?, _ what: String) throws(PlanError) {
        guard let a, let b, a != b else { return }
        if a.isNumeric && b.isNumeric { return }
        throw PlanError("\(what) cannot compare \(a) with \(b)")
    }
}

extension BoundExpression {
    /// Whether the expression reads no column (its value is the same for every row).
    var isConstant: Bool {
        switch self {
        case .column: false
        case .constant: true
        case .not(let e), .negate(let e, _), .isNull(let e, _), .cast(let e, _, _), .field(let e, _): e.isConstant
        case .and(let a, let b), .or(let a, let b), .arithmetic(_, let a, let b, _), .concat(let a, let b),
             .comparison(_, let a, let b), .like(let a, let b, _), .element(let a, let b):
            a.isConstant && b.isConstant
        case .inList(let e, let list, _): e.isConstant && list.allSatisfy(\.isConstant)
        case .call(_, let args, _): args.allSatisfy(\.isConstant)
        case .caseWhen(let branches, let otherwise):
            branches.allSatisfy { $0.condition.isConstant && $0.result.isConstant } && (otherwise?.isConstant ?? true)
        }
    }
}
