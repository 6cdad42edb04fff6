import Foundation

/// A value of a column or an expression at run time, one case per ``SQLType``.
///
/// Time values are numbers, as ksqlDB keeps them: a TIMESTAMP is milliseconds since the epoch (UTC),
/// a DATE days since the epoch, a TIME milliseconds since midnight. A STRUCT's values follow its
/// type's fields; a MAP keeps its entries in the order they came.
public enum SQLValue: Hashable, Sendable {
    case null
    case boolean(Bool)
    case integer(Int32)
    case bigint(Int64)
    case double(Double)
    case decimal(Decimal)
    case string(String)
    case bytes([UInt8])
    case timestamp(Int64)
    case date(Int32)
    case time(Int32)
    case array([SQLValue])
    case map([SQLMapEntry])
    case structure([SQLValue])

    public var isNull: Bool { self == .null }

    /// The value as a boolean condition: only TRUE passes (NULL does not).
    public var isTrue: Bool { self == .boolean(true) }
}

/// One entry of a MAP value.
public struct SQLMapEntry: Hashable, Sendable {
    public var key: SQLValue
    public var value: SQLValue
    public init(_ key: SQLValue, _ value: SQLValue) {
        self.key = key
        self.value = value
    }
}

/// Numbers in the order ksqlDB widens them in arithmetic and comparisons:
/// INTEGER < BIGINT < DECIMAL < DOUBLE.
enum NumericRank: Int, Comparable {
    case integer, bigint, decimal, double

    init?(_ type: SQLType) {
        switch type {
        case .integer: self = .integer
        case .bigint: self = .bigint
        case .decimal: self = .decimal
        case .double: self = .double
        default: return nil
        }
    }

    static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

extension SQLValue {
    /// The value as a 64-bit integer (INTEGER and BIGINT only).
    var int64: Int64? {
        switch self {
        case .integer(let n): Int64(n)
        case .bigint(let n): n
        default: nil
        }
    }

    /// The value as an exact decimal (integers and decimals).
    var decimalValue: Decimal? {
        switch self {
        case .integer(let n): Decimal(Int(n))
        case .bigint(let n): Decimal(n)
        case .decimal(let d): d
        default: nil
        }
    }

    /// The value as a double (any number).
    var doubleValue: Double? {
        switch self {
        case .integer(let n): Double(n)
        case .bigint(let n): Double(n)
        case .decimal(let d): NSDecimalNumber(decimal: d).doubleValue
        case .double(let d): d
        default: nil
        }
    }
}
