import MeshCore

/// What one batch of input records did: the records for the sink topic, and the state to commit
/// for them in one transaction (the groups they changed, each partition's next offset, stream time,
/// the outputs as outbox rows, and the outbox rows the sink has acknowledged since, deleted).
public struct QueryBatch: Sendable {
    /// The batch's outputs, in order; send them once ``state`` is committed.
    public var outputs: [OutboxEntry]
    /// The acknowledged outputs whose outbox rows ``state`` deletes.
    public var deleted: [Int64] = []
    public var state: StateBatch
}

/// A persistent query whose aggregation state lives in a ``SubscriptionStore``, exactly once:
/// each batch's changed groups and the offsets after its records are one ``StateBatch``, so a
/// crash keeps both or neither. Restarted from the store, the task skips records below the stored
/// offsets (they were counted) and counts the rest once: no double count, no lost change.
///
/// Outputs go through an outbox in the same store: a batch's outputs are rows of its commit, and are
/// deleted by a later commit once the sink acknowledged them. So a crash after the commit, or a
/// commit whose answer was lost, loses no change: the rebuilt task holds the entries in ``outbox``
/// and the caller sends them again (at least once; the sequence header tells a reader a redelivery).
///
/// Sans-IO. The caller:
/// 1. on start (and after every failure), builds the task from the store and sends ``outbox``;
/// 2. consumes, calls ``process(_:)``, commits the batch's state, and only then sends its outputs;
/// 3. reports each acknowledged output with ``delivered(_:)``: its row is deleted by the next batch
///    (``process(_:)`` with no records makes one when the input is idle, see ``hasAcknowledgements``).
/// A batch whose commit failed, or whose outcome is unknown, is dropped whole and the task rebuilt
/// from the store: whatever the store kept is the truth, and what it did not keep comes again.
///
/// Rows: namespace = the query id; `g/<hex of the group key>` per group (its accumulators, latest
/// event time, whether a row was output), `t` (the stream time), `o/<16 hex digits>` per outbox
/// entry and `s` (the next outbox sequence, so a sequence is never reused).
public struct QueryStateTask: Sendable {
    public private(set) var query: PersistentQuery
    /// The next offset to process per input partition.
    public private(set) var positions: [TopicPartition: Int64] = [:]
    /// Outputs committed (or in the batch about to be) that the sink has not acknowledged, in order.
    public var outbox: [OutboxEntry] { unacknowledged.values.sorted { $0.sequence < $1.sequence } }
    private var unacknowledged: [Int64: OutboxEntry] = [:]
    private var streamTime: Int64?
    private var nextSequence: Int64 = 0
    /// Acknowledged outbox entries whose rows the next batch deletes.
    private var acknowledged: [Int64] = []

    /// Whether acknowledged outputs wait for a batch to delete their rows.
    public var hasAcknowledgements: Bool { !acknowledged.isEmpty }

    public var namespace: String { query.id }

    /// The task resumed from what the store holds for `query` (none: a fresh start).
    public init(_ query: PersistentQuery, rows: [StateRow], offsets: [PartitionOffset]) throws(StateUnreadable) {
        self.query = query
        for o in offsets { positions[o.topicPartition] = o.offset }
        for row in rows where row.key.namespace == namespace {
            if row.key.key == "s" {
                var r = StateCodec.Reader(row.value)
                nextSequence = try r.int()
                guard r.atEnd else { throw StateCodec.Unreadable(message: "bytes after the outbox sequence") }
            } else if row.key.key.hasPrefix("o/") {
                let entry = try OutboxEntry(row: row.value)
                guard OutboxEntry.rowKey(entry.sequence) == row.key.key else {
                    throw StateUnreadable(message: "outbox row \(row.key.key) holds entry \(entry.sequence)")
                }
                unacknowledged[entry.sequence] = entry
            }
        }
        if let last = unacknowledged.keys.max(), last >= nextSequence {
            throw StateUnreadable(message: "outbox entry \(last) is not below the next sequence \(nextSequence)")
        }
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
        var outputs: [OutboxEntry] = []
        var touched: [TopicPartition] = []
        let queryHeader = KafkaHeader(OutboxEntry.queryHeader, Array(namespace.utf8))
        for record in records {
            let tp = record.topicPartition
            // Counted before a crash: the stored offset is past it.
            // ci/mutants: state-replay-double-counts (the next line)
            if let next = positions[tp], record.offset < next { continue }
            for var out in query.process(record) {
                out.headers.append(queryHeader)
                out.headers.append(KafkaHeader(OutboxEntry.sequenceHeader, Array(String(nextSequence).utf8)))
                outputs.append(OutboxEntry(sequence: nextSequence, record: out))
                nextSequence += 1
            }
            positions[tp] = record.offset + 1
            if !touched.contains(tp) { touched.append(tp) }
        }
        var state = StateBatch()
        state.consumer = namespace
        for sequence in acknowledged { state.writes.append(.delete(StateKey(namespace, OutboxEntry.rowKey(sequence)))) }
        let deleted = acknowledged
        acknowledged = []
        if !outputs.isEmpty {
            for entry in outputs {
                // ci/mutants: outbox-not-stored (the next line)
                state.writes.append(.put(StateKey(namespace, OutboxEntry.rowKey(entry.sequence)), entry.encoded()))
            }
            var bytes: [UInt8] = []
            StateCodec.int(nextSequence, &bytes)
            state.writes.append(.put(StateKey(namespace, "s"), bytes))
            for entry in outputs { unacknowledged[entry.sequence] = entry }
        }
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
        return QueryBatch(outputs: outputs, deleted: deleted, state: state)
    }

    /// Whether the output with `sequence` is in the outbox, not yet acknowledged.
    public func holds(_ sequence: Int64) -> Bool { unacknowledged[sequence] != nil }

    /// The sink acknowledged the output with `sequence`: the next batch deletes its outbox row.
    /// An unknown sequence (acknowledged twice, or from before a rebuild) changes nothing.
    public mutating func delivered(_ sequence: Int64) {
        guard unacknowledged.removeValue(forKey: sequence) != nil else { return }
        acknowledged.append(sequence)
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
