/// What a persistent or push query does to each record, decided once from its SELECT.
public enum QueryPlan: Hashable, Sendable {
    /// A stream from a stream: filter, project, maybe re-key (`CREATE STREAM ... AS SELECT`).
    case projection(ProjectionPlan)
    /// A table from a stream: filter, group, window, aggregate (`CREATE TABLE ... AS SELECT ... GROUP BY`).
    case aggregation(AggregationPlan)

    /// The output's columns, key first.
    public var output: [ColumnDefinition] {
        switch self {
        case .projection(let p): p.output
        case .aggregation(let a): a.output
        }
    }
}

/// A filter and projection over one source's rows.
public struct ProjectionPlan: Hashable, Sendable {
    public var source: SourceDescription
    public var filter: BoundExpression?
    /// One expression per output value column.
    public var projections: [BoundExpression]
    /// The new key (`PARTITION BY`); nil keeps the source's key.
    public var partitionBy: BoundExpression?
    /// The output's columns: the key column (when there is one) first, then the projections.
    public var output: [ColumnDefinition]
    /// `LIMIT`, for push queries.
    public var limit: Int?
}

/// Grouping and aggregation, windowed or not.
public struct AggregationPlan: Hashable, Sendable {
    public var source: SourceDescription
    public var filter: BoundExpression?
    /// The GROUP BY expressions, over the source's rows.
    public var groupBy: [BoundExpression]
    public var aggregates: [AggregateCall]
    public var window: WindowSpec?
    /// Rows of a group, over the group row (the group-by values, `WINDOWSTART`, `WINDOWEND`, then
    /// the aggregates' results): what is output for it.
    public var projections: [BoundExpression]
    /// HAVING over the group row; a group that fails it is not output (a table row is deleted).
    public var having: BoundExpression?
    public var output: [ColumnDefinition]
    /// Where the event time comes from: a column of the source (its position), else the record's timestamp.
    public var timestampColumn: Int?
    public var limit: Int?

    /// The most hopping windows one record may fall in (size / advance).
    public static let maxWindowsPerRecord: Int64 = 1000

    /// Names of the hidden columns of the group row.
    static func groupColumn(_ i: Int) -> String { "KSQL_GROUP_\(i)" }
    static func aggregateColumn(_ i: Int) -> String { "KSQL_AGG_VARIABLE_\(i)" }
}
