import MeshCore

/// A persistent query (`CREATE STREAM|TABLE ... AS SELECT`) as records in and records out: each
/// consumed record is read into its source's row, run through the plan's operator, and every
/// output change becomes a record for the sink topic. Sans-IO: the caller consumes, produces and
/// commits.
///
/// An aggregation keeps one operator over all the input partitions the query reads, so a group
/// whose records are spread over partitions is counted whole. (ksqlDB instead re-partitions the
/// input by the GROUP BY key through an internal topic, so that each instance owns whole groups;
/// until that lands here, an aggregation runs in one process that reads every partition.)
///
/// Windowed table rows are keyed as ksqlDB keys them: the key's bytes followed by the window's
/// start as an 8-byte big-endian integer. The trace context of the input record (`traceparent`,
/// `tracestate`) travels on to the records it causes.
public struct PersistentQuery: Sendable {
    /// ksqlDB's form: `CSAS_<SINK>_<n>` or `CTAS_<SINK>_<n>`.
    public let id: String
    public let plan: QueryPlan
    public let sink: SourceDescription
    /// Records skipped because they did not fit the source's columns (ksqlDB's processing log).
    public private(set) var refusedRecords: Int64 = 0
    /// The last reason a record was refused, for the query's status.
    public private(set) var lastRefusal: String?
    /// The aggregation operator, once a record came (the state store reads and restores it).
    var aggregation: AggregationOperator?

    /// The query for `statement`, planned against `catalog`; its sink is described but not added.
    public init(_ statement: CreateAsSelect, catalog: Catalog, number: Int) throws(PlanError) {
        plan = try QueryPlanner.plan(statement.query, catalog: catalog)
        let kind: SourceKind
        switch plan {
        case .projection: kind = .stream
        case .aggregation: kind = .table
        }
        guard kind == statement.kind else {
            throw PlanError(kind == .table ? "an aggregation makes a TABLE: use CREATE TABLE ... AS SELECT"
                                           : "a query without GROUP BY makes a STREAM: use CREATE STREAM ... AS SELECT")
        }
        var sink = try SourceDescription(name: statement.name, kind: kind, columns: plan.output, properties: statement.properties,
                                         defaultTopic: statement.name)
        if case .aggregation(let a) = plan { sink.windowed = a.window != nil }
        self.sink = sink
        id = "\(kind == .stream ? "CSAS" : "CTAS")_\(statement.name)_\(number)"
    }

    /// The source the query reads.
    public var source: SourceDescription {
        switch plan {
        case .projection(let p): p.source
        case .aggregation(let a): a.source
        }
    }

    /// The records `record` causes in the sink topic, in order.
    public mutating func process(_ record: ConsumerRecord) -> [ProducerRecord] {
        let row: [SQLValue]
        do {
            row = try RowCodec.decode(source, key: record.key, value: record.value, headers: record.headers)
        } catch {
            refusedRecords += 1
            lastRefusal = "\(record.topicPartition)@\(record.offset): \(error.message)"
            return []
        }
        let input = QueryInput(row: row, timestamp: record.timestamp, topicPartition: record.topicPartition, offset: record.offset)
        let outputs: [QueryOutput]
        switch plan {
        case .projection(let p):
            outputs = ProjectionOperator(p).process(input).map { [$0] } ?? []
        case .aggregation(let a):
            var op = aggregation.take() ?? AggregationOperator(a)
            outputs = op.process(input)
            aggregation = op
        }
        let trace = record.headers.filter { $0.key == "traceparent" || $0.key == "tracestate" }
        return outputs.map { out in
            var key = RowCodec.encodeKey(out.key)
            if let window = out.window, key != nil { StateCodec.int(window.lowerBound, &key!) }  // 8 bytes, big-endian
            return ProducerRecord(topic: sink.topic, key: key, value: RowCodec.encodeValue(sink.columns, out.values), headers: trace, timestamp: out.timestamp)
        }
    }

    /// Late records the query's windows dropped.
    public var lateRecords: Int64 { aggregation?.lateRecords ?? 0 }

    /// What the aggregation holds in memory.
    public var aggregationState: AggregationOperator? { aggregation }
}
