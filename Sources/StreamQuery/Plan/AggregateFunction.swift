import Foundation

/// The aggregate functions of the subset. NULL arguments are skipped by all but `COUNT(*)`, as in
/// ksqlDB; a group that has seen only NULLs gives NULL (COUNT gives 0).
public enum AggregateFunction: String, Hashable, Sendable, CaseIterable {
    case count = "COUNT"
    case sum = "SUM"
    case min = "MIN"
    case max = "MAX"
    case avg = "AVG"
    case latestByOffset = "LATEST_BY_OFFSET"
    case earliestByOffset = "EARLIEST_BY_OFFSET"
    case countDistinct = "COUNT_DISTINCT"

    /// The result type for an argument of `type` (nil: `COUNT(*)` or a NULL literal).
    func resultType(_ type: SQLType?) throws(PlanError) -> SQLType {
        switch self {
        case .count, .countDistinct:
            return .bigint
        case .sum:
            guard let type, type.isNumeric else { throw PlanError("SUM needs a number, not \(type.map { "\($0)" } ?? "NULL")") }
            if case .decimal(_, let s) = type { return .decimal(precision: SQLType.maxPrecision, scale: s) }
            return type
        case .avg:
            guard let type, type.isNumeric else { throw PlanError("AVG needs a number, not \(type.map { "\($0)" } ?? "NULL")") }
            return .double
        case .min, .max:
            guard let type else { throw PlanError("\(rawValue) needs a typed argument") }
            switch type {
            case .array, .map, .structure, .bytes: throw PlanError("\(rawValue) cannot order \(type)")
            default: return type
            }
        case .latestByOffset, .earliestByOffset:
            guard let type else { throw PlanError("\(rawValue) needs a typed argument") }
            return type
        }
    }
}

/// One aggregate of a query: the function, its argument (nil for `COUNT(*)`) and result type.
public struct AggregateCall: Hashable, Sendable {
    public var function: AggregateFunction
    public var argument: BoundExpression?
    public var resultType: SQLType
}

/// The running state of one aggregate in one group.
public enum Accumulator: Hashable, Sendable {
    case count(Int64)
    /// A running sum or extreme; NULL until a non-NULL value came.
    case value(SQLValue)
    case average(sum: Double, count: Int64)
    case distinct(Set<SQLValue>)

    /// The state before any record.
    static func initial(_ call: AggregateCall) -> Accumulator {
        switch call.function {
        case .count: .count(0)
        case .avg: .average(sum: 0, count: 0)
        case .countDistinct: .distinct([])
        default: .value(.null)
        }
    }

    /// The state after `value` (the argument's value for one record; ignored for `COUNT(*)`).
    func adding(_ value: SQLValue, _ call: AggregateCall) -> Accumulator {
        if call.function == .count {
            guard case .count(let n) = self else { return self }
            return call.argument == nil || !value.isNull ? .count(n &+ 1) : self
        }
        if value.isNull { return self }
        switch (call.function, self) {
        case (.sum, .value(let current)):
            return .value(current.isNull ? Casts.cast(value, from: nil, to: call.resultType) : Arithmetic.apply(.add, current, value, call.resultType))
        case (.min, .value(let current)):
            return current.isNull || SQLOrdering.compare(value, current) == .orderedAscending ? .value(value) : self
        case (.max, .value(let current)):
            return current.isNull || SQLOrdering.compare(value, current) == .orderedDescending ? .value(value) : self
        case (.latestByOffset, .value):
            return .value(value)
        case (.earliestByOffset, .value(let current)):
            return current.isNull ? .value(value) : self
        case (.avg, .average(let sum, let count)):
            return .average(sum: sum + (value.doubleValue ?? 0), count: count + 1)
        case (.countDistinct, .distinct(var seen)):
            seen.insert(value)
            return .distinct(seen)
        default:
            return self
        }
    }

    /// The aggregate's value now.
    var result: SQLValue {
        switch self {
        case .count(let n): .bigint(n)
        case .value(let v): v
        case .average(let sum, let count): count == 0 ? .null : .double(sum / Double(count))
        case .distinct(let seen): .bigint(Int64(seen.count))
        }
    }
}
