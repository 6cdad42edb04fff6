import Foundation

/// `+ - * / %` on numbers, widened to the result type the binder chose (INTEGER < BIGINT <
/// DECIMAL < DOUBLE). Integers wrap on overflow, as ksqlDB's Java does; an integer or decimal
/// division or modulo by zero is NULL; a double one follows IEEE (infinity, NaN).
enum Arithmetic {
    /// The result type of `op` on operands of types `a` and `b`, nil when they are not both numbers.
    static func resultType(_ op: SQLBinaryOperator, _ a: SQLType, _ b: SQLType) -> SQLType? {
        guard let ra = NumericRank(a), let rb = NumericRank(b) else { return nil }
        switch max(ra, rb) {
        case .integer: return .integer
        case .bigint: return .bigint
        case .double: return .double
        case .decimal:
            let (p1, s1) = a.decimalShape, (p2, s2) = b.decimalShape
            let p: Int, s: Int
            switch op {
            case .multiply: (p, s) = (p1 + p2 + 1, s1 + s2)
            case .divide: (p, s) = (p1 - s1 + s2 + max(6, s1 + p2 + 1), max(6, s1 + p2 + 1))
            default: (p, s) = (max(p1 - s1, p2 - s2) + max(s1, s2) + 1, max(s1, s2))
            }
            let scale = min(s, SQLType.maxPrecision)
            return .decimal(precision: min(max(p, scale, 1), SQLType.maxPrecision), scale: scale)
        }
    }

    static func apply(_ op: SQLBinaryOperator, _ a: SQLValue, _ b: SQLValue, _ type: SQLType) -> SQLValue {
        if a.isNull || b.isNull { return .null }
        switch type {
        case .integer, .bigint:
            guard let x = a.int64, let y = b.int64 else { return .null }
            let r: Int64
            switch op {
            case .add: r = x &+ y
            case .subtract: r = x &- y
            case .multiply: r = x &* y
            case .divide:
                guard y != 0 else { return .null }
                r = x == .min && y == -1 ? x : x / y
            case .modulo:
                guard y != 0 else { return .null }
                r = y == -1 ? 0 : x % y
            default: return .null
            }
            return type == .integer ? .integer(Int32(truncatingIfNeeded: r)) : .bigint(r)
        case .double:
            guard let x = a.doubleValue, let y = b.doubleValue else { return .null }
            switch op {
            case .add: return .double(x + y)
            case .subtract: return .double(x - y)
            case .multiply: return .double(x * y)
            case .divide: return .double(x / y)
            case .modulo: return .double(x.truncatingRemainder(dividingBy: y))
            default: return .null
            }
        case .decimal(_, let scale):
            guard let x = a.decimalValue, let y = b.decimalValue else { return .null }
            let r: Decimal
            switch op {
            case .add: r = x + y
            case .subtract: r = x - y
            case .multiply: r = x * y
            case .divide:
                guard !y.isZero else { return .null }
                r = x / y
            case .modulo:
                guard !y.isZero else { return .null }
                var quotient = x / y, whole = Decimal()
                NSDecimalRound(&whole, &quotient, 0, quotient < 0 ? .up : .down)  // toward zero, as Java's remainder
                r = x - whole * y
            default: return .null
            }
            return Casts.decimal(r, scale: scale, precision: SQLType.maxPrecision)
        default:
            return .null
        }
    }
}

extension SQLType {
    /// Precision and scale as a DECIMAL sees this numeric type (integers have no scale).
    var decimalShape: (precision: Int, scale: Int) {
        switch self {
        case .integer: (10, 0)
        case .bigint: (19, 0)
        case .decimal(let p, let s): (p, s)
        default: (SQLType.maxPrecision, 6)
        }
    }
}
