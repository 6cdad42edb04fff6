import MeshCore

/// What one batch of input records did: the records for the sink topic, and the state to commit
/// for them in one transaction (the groups they changed, each partition's next offset, stream time).
public struct QueryBatch: Sendable {
    public var outputs: [ProducerRecord]
    public var state: StateBatch
}

/// A persistent query whose aggregation state lives in a ``SubscriptionStore``, exactly once:
/// each batch's changed groups and the offsets after its records are one ``StateBatch``, so a
/// crash keeps both or neither. Restarted from the store, the task skips records below the stored
/// offsets (they were counted) and counts the rest once: no double count, no lost change.
///
/// Sans-IO: the caller consumes, commits the batch's state, and only then hands its outputs on (a
/// batch whose commit failed is dropped whole and the task rebuilt from the store).
///
/// Rows: namespace = the query id; `g/<hex of the group key>` per group (its accumulators, latest
/// event time, whether a row was output) and `t` (the stream time).
public struct QueryStateTask: Sendable {
    public private(set) var query: PersistentQuery
    /// The next offset to process per input partition.
    public private(set) var positions: [TopicPartition: Int64] = [:]
    private var streamTime: Int64?

    public var namespace: String { query.id }

    /// The task resumed from what the store holds for `query` (none: a fresh start).
    public init(_ query: PersistentQuery, rows: [StateRow], offsets: [PartitionOffset]) throws(StateUnreadable) {
        self.query = query
        for o in offsets { positions[o.topicPartition] = o.offset }
        guard case .aggregation(let plan) = query.plan else { return }
        var groups: [AggregationOperator.GroupKey: AggregationOperator.Group] = [:]
        for row in rows where row.key.namespace == namespace {
            var r = StateCodec.Reader(row.value)
            if row.key.key == "t" {
                streamTime = try r.int()
            } else if row.key.key.hasPrefix("g/") {
                let count = try r.count()
                var values: [SQLValue] = []
                for _ in 0..<count { values.append(try r.value()) }
                let windowStart: Int64? = try r.byte() == 1 ? try r.int() : nil
                var accumulators: [Accumulator] = []
                for _ in plan.aggregates { accumulators.append(try r.accumulator()) }
                let timestamp = try r.int()
                let emitted = try r.byte() == 1
                guard r.atEnd else { throw StateCodec.Unreadable(message: "bytes after the group in \(row.key.key)") }
                groups[AggregationOperator.GroupKey(values: values, windowStart: windowStart)] =
                    AggregationOperator.Group(accumulators: accumulators, timestamp: timestamp, emitted: emitted)
            }
        }
        var op = AggregationOperator(plan, restoring: groups, streamTime: streamTime ?? .min)
        op.tracksChanges = true
        self.query.aggregation = op
    }

    /// Runs `records` (of any input partitions, in order per partition) and gives the batch to commit.
    public mutating func process(_ records: [ConsumerRecord]) -> QueryBatch {
        var outputs: [ProducerRecord] = []
        var touched: [TopicPartition] = []
        for record in records {
            let tp = record.topicPartition
            // Counted before a crash: the stored offset is past it.
            // ci/mutants: state-replay-double-counts (the next line)
            if let next = positions[tp], record.offset < next { continue }
            outputs += query.process(record)
            positions[tp] = record.offset + 1
            if !touched.contains(tp) { touched.append(tp) }
        }
        var state = StateBatch()
        state.consumer = namespace
        for tp in touched { state.offsets.append(PartitionOffset(tp, positions[tp]!)) }
        if var op = query.aggregation {
            for (key, group) in op.takeChanges() {
                state.writes.append(.put(StateKey(namespace, "g/" + Self.hex(Self.groupKey(key))), Self.encode(key, group)))
            }
            if op.streamTime != streamTime {
                streamTime = op.streamTime
                var bytes: [UInt8] = []
                StateCodec.int(op.streamTime, &bytes)
                state.writes.append(.put(StateKey(namespace, "t"), bytes))
            }
            query.aggregation = op
        }
        return QueryBatch(outputs: outputs, state: state)
    }

    private static func groupKey(_ key: AggregationOperator.GroupKey) -> [UInt8] {
        var bytes: [UInt8] = []
        StateCodec.int(Int64(key.values.count), &bytes)
        for v in key.values { StateCodec.write(v, &bytes) }
        if let start = key.windowStart {
            bytes.append(1)
            StateCodec.int(start, &bytes)
        } else {
            bytes.append(0)
        }
        return bytes
    }

    private static func encode(_ key: AggregationOperator.GroupKey, _ group: AggregationOperator.Group) -> [UInt8] {
        var bytes = groupKey(key)
        for a in group.accumulators { StateCodec.write(a, &bytes) }
        StateCodec.int(group.timestamp, &bytes)
        bytes.append(group.emitted ? 1 : 0)
        return bytes
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out += [digits[Int(b >> 4)], digits[Int(b & 0xF)]] }
        return String(decoding: out, as: UTF8.self)
    }
}
