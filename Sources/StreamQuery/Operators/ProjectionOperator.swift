/// Runs a ``ProjectionPlan``: each record that passes the filter becomes one output row; nothing
/// is kept between records.
public struct ProjectionOperator: Sendable {
    public let plan: ProjectionPlan

    public init(_ plan: ProjectionPlan) { self.plan = plan }

    /// The output for `input`, or nil when the filter drops it (NULL drops, as in SQL).
    public func process(_ input: QueryInput) -> QueryOutput? {
        if let filter = plan.filter, !filter.evaluate(input.row).isTrue { return nil }
        let key = plan.partitionBy?.evaluate(input.row)
            ?? plan.source.keyColumn.flatMap { k in plan.source.columns.firstIndex(of: k).map { input.row[$0] } }
            ?? .null
        return QueryOutput(key: key, values: plan.projections.map { $0.evaluate(input.row) }, timestamp: input.timestamp)
    }
}
