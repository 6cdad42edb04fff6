import Foundation

/// An expression whose names were resolved to row positions and whose types were checked
/// (``ExpressionBinder`` builds it): what operators evaluate against each row.
///
/// Evaluation never fails: as in ksqlDB, a value that cannot be computed (a division by zero, a
/// cast of text that is not a number, an index past the end) is NULL, and NULL flows through
/// operators by SQL's rules (three-valued AND, OR and NOT; comparisons with NULL are NULL).
public indirect enum BoundExpression: Hashable, Sendable {
    case column(Int)
    case constant(SQLValue)
    case not(BoundExpression)
    case negate(BoundExpression, SQLType)
    case and(BoundExpression, BoundExpression)
    case or(BoundExpression, BoundExpression)
    /// `+ - * / %` with the result's type (operands are widened to it).
    case arithmetic(SQLBinaryOperator, BoundExpression, BoundExpression, SQLType)
    case concat(BoundExpression, BoundExpression)
    case comparison(SQLBinaryOperator, BoundExpression, BoundExpression)
    case isNull(BoundExpression, negated: Bool)
    case inList(BoundExpression, [BoundExpression], negated: Bool)
    case like(BoundExpression, pattern: BoundExpression, negated: Bool)
    case call(ScalarFunction, [BoundExpression], SQLType)
    case cast(BoundExpression, from: SQLType?, to: SQLType)
    case caseWhen([BoundWhen], otherwise: BoundExpression?)
    case element(BoundExpression, BoundExpression)
    case field(BoundExpression, Int)

    /// The expression's value for `row` (the values of the schema it was bound against).
    public func evaluate(_ row: [SQLValue]) -> SQLValue {
        switch self {
        case .column(let i):
            return i < row.count ? row[i] : .null
        case .constant(let v):
            return v
        case .not(let e):
            guard case .boolean(let b) = e.evaluate(row) else { return .null }
            return .boolean(!b)
        case .negate(let e, let type):
            return Arithmetic.apply(.subtract, .integer(0), e.evaluate(row), type)
        case .and(let l, let r):
            // FALSE wins over NULL; NULL over TRUE.
            let a = l.evaluate(row)
            if a == .boolean(false) { return a }
            let b = r.evaluate(row)
            if b == .boolean(false) { return b }
            return a == .null || b == .null ? .null : .boolean(true)
        case .or(let l, let r):
            let a = l.evaluate(row)
            if a == .boolean(true) { return a }
            let b = r.evaluate(row)
            if b == .boolean(true) { return b }
            return a == .null || b == .null ? .null : .boolean(false)
        case .arithmetic(let op, let l, let r, let type):
            return Arithmetic.apply(op, l.evaluate(row), r.evaluate(row), type)
        case .concat(let l, let r):
            guard case .string(let a) = l.evaluate(row), case .string(let b) = r.evaluate(row) else { return .null }
            return .string(a + b)
        case .comparison(let op, let l, let r):
            guard let order = SQLOrdering.compare(l.evaluate(row), r.evaluate(row)) else { return .null }
            return .boolean(op.holds(order))
        case .isNull(let e, let negated):
            return .boolean(e.evaluate(row).isNull != negated)
        case .inList(let e, let list, let negated):
            let v = e.evaluate(row)
            guard !v.isNull else { return .null }
            var sawNull = false
            for item in list {
                let candidate = item.evaluate(row)
                switch SQLOrdering.compare(v, candidate) {
                case .orderedSame?: return .boolean(!negated)
                case nil: sawNull = true
                default: break
                }
            }
            return sawNull ? .null : .boolean(negated)
        case .like(let e, let pattern, let negated):
            guard case .string(let text) = e.evaluate(row), case .string(let p) = pattern.evaluate(row) else { return .null }
            return .boolean(LikePattern.matches(text, p) != negated)
        case .call(let function, let arguments, _):
            return function.apply(arguments.map { $0.evaluate(row) })
        case .cast(let e, let from, let type):
            return Casts.cast(e.evaluate(row), from: from, to: type)
        case .caseWhen(let branches, let otherwise):
            for branch in branches where branch.condition.evaluate(row).isTrue { return branch.result.evaluate(row) }
            return otherwise?.evaluate(row) ?? .null
        case .element(let base, let index):
            switch (base.evaluate(row), index.evaluate(row)) {
            case (.array(let items), let i):
                // 1-based; negative counts from the end.
                guard let n = i.int64, n != 0 else { return .null }
                let position = n > 0 ? Int(clamping: n - 1) : items.count - Int(clamping: n.magnitude)
                return items.indices.contains(position) ? items[position] : .null
            case (.map(let entries), let key):
                return entries.last { SQLOrdering.compare($0.key, key) == .orderedSame }?.value ?? .null
            default:
                return .null
            }
        case .field(let base, let i):
            guard case .structure(let values) = base.evaluate(row), values.indices.contains(i) else { return .null }
            return values[i]
        }
    }
}

/// One `WHEN condition THEN result` of a bound CASE.
public struct BoundWhen: Hashable, Sendable {
    public var condition: BoundExpression
    public var result: BoundExpression
}

extension SQLBinaryOperator {
    /// Whether a comparison holds for `order` (left against right).
    func holds(_ order: ComparisonResult) -> Bool {
        switch self {
        case .equal: order == .orderedSame
        case .notEqual: order != .orderedSame
        case .less: order == .orderedAscending
        case .lessOrEqual: order != .orderedDescending
        case .greater: order == .orderedDescending
        case .greaterOrEqual: order != .orderedAscending
        default: false
        }
    }
}

/// How two values compare: numbers across their types, strings, booleans, and time values of one
/// type; nil when either is NULL or they do not compare.
enum SQLOrdering {
    static func compare(_ a: SQLValue, _ b: SQLValue) -> ComparisonResult? {
        func order<T: Comparable>(_ x: T, _ y: T) -> ComparisonResult { x < y ? .orderedAscending : x > y ? .orderedDescending : .orderedSame }
        switch (a, b) {
        case (.null, _), (_, .null): return nil
        case (.string(let x), .string(let y)): return order(x, y)
        case (.boolean(let x), .boolean(let y)): return order(x ? 1 : 0, y ? 1 : 0)
        case (.timestamp(let x), .timestamp(let y)): return order(x, y)
        case (.date(let x), .date(let y)): return order(x, y)
        case (.time(let x), .time(let y)): return order(x, y)
        case (.bytes(let x), .bytes(let y)): return x == y ? .orderedSame : x.lexicographicallyPrecedes(y) ? .orderedAscending : .orderedDescending
        default: break
        }
        if let x = a.int64, let y = b.int64 { return order(x, y) }
        if case .double = a, let x = a.doubleValue, let y = b.doubleValue { return order(x, y) }
        if case .double = b, let x = a.doubleValue, let y = b.doubleValue { return order(x, y) }
        if let x = a.decimalValue, let y = b.decimalValue { return order(x, y) }
        return a == b ? .orderedSame : nil
    }
}

/// SQL `LIKE`: `%` any run, `_` one character; everything else literal.
enum LikePattern {
    /// Greedy match with one backtrack point per `%`: O(text x pattern) at worst, never exponential.
    static func matches(_ text: String, _ pattern: String) -> Bool {
        let t = Array(text.unicodeScalars), p = Array(pattern.unicodeScalars)
        var i = 0, j = 0
        var star: Int?, mark = 0
        while i < t.count {
            if j < p.count, p[j] == "_" || (p[j] != "%" && p[j] == t[i]) {
                i += 1; j += 1
            } else if j < p.count, p[j] == "%" {
                star = j
                mark = i
                j += 1
            } else if let s = star {
                j = s + 1
                mark += 1
                i = mark
            } else {
                return false
            }
        }
        while j < p.count, p[j] == "%" { j += 1 }
        return j == p.count
    }
}
