import MeshCore

/// The reactive consumer's audit trail: one entry per finished record, queued here and written to
/// the audit topic in batches, one write at a time. Nothing else waits on it: commits and pushes go
/// on whether a write is in flight, refused or slow. A refused entry is queued again (in front, in
/// order); when the queue is full the oldest entries are dropped and counted, never the record's
/// own progress.
struct AuditBuffer {
    private var queue: [ProducerRecord] = []
    private var head = 0
    /// The write in flight: its ticket and entries.
    private var inFlight: (ticket: UInt64, records: [ProducerRecord])?
    /// When the last write started (a partial batch waits ``ReactiveConsumerConfig/auditInterval`` from here).
    private var lastWrite: MeshInstant?
    var flushArmed = false

    var pending: Int { queue.count - head }

    mutating func add(_ entry: ProducerRecord, limit: Int, _ stats: inout ReactiveConsumer.Stats) {
        queue.append(entry)
        while pending > limit {
            head += 1
            stats.auditDropped += 1
        }
    }

    /// Starts a write when none is in flight and a full batch waits, or a partial one is old enough;
    /// else arms the flush timer for the partial one.
    mutating func writeIfDue(_ now: MeshInstant, _ config: ReactiveConsumerConfig, _ nextTicket: inout UInt64, _ actions: inout [ReactiveConsumer.Action]) {
        guard inFlight == nil, pending > 0 else { return }
        let due = (lastWrite ?? .zero) + config.auditInterval
        guard pending >= config.auditBatchRecords || now >= due else {
            if !flushArmed {
                flushArmed = true
                actions.append(.armTimer(.auditFlush, after: due - now))
            }
            return
        }
        let n = min(pending, config.auditBatchRecords)
        let batch = Array(queue[head..<(head + n)])
        head += n
        if head > 1_024 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        let ticket = nextTicket
        nextTicket += 1
        inFlight = (ticket, batch)
        lastWrite = now
        actions.append(.writeAudit(ticket: ticket, batch))
    }

    mutating func written(_ ticket: UInt64, _ results: [Result<RecordMetadata, KafkaError>], _ stats: inout ReactiveConsumer.Stats) {
        guard let (t, records) = inFlight, t == ticket else { return }
        inFlight = nil
        var refused: [ProducerRecord] = []
        for (i, record) in records.enumerated() {
            if i < results.count, case .success = results[i] { stats.audited += 1 } else { refused.append(record) }
        }
        guard !refused.isEmpty else { return }
        stats.auditFailed += refused.count
        // Back in front, in order (a slot is free only if the queue compacted: rebuild then).
        queue = refused + queue[head...]
        head = 0
    }

    /// The entry of a finished record: keyed by its id (`topic-partition@offset`), a JSON value with
    /// its topic, partition, offset, status (SUCCESS, DROP, DEADLETTER), pushes, latency from fetch
    /// to finish, trace id (from its `traceparent`), the reason of a dead letter and the finish time.
    static func entry(_ slot: RecordSlot, _ outcome: RecordOutcome, topic: String, now: MeshInstant,
                      epochMillis: (MeshInstant) -> Int64) -> ProducerRecord {
        let r = slot.record
        var w = JSONWriter()
        w.raw("{\"topic\":")
        w.string(r.topicPartition.topic)
        w.raw(",\"partition\":")
        w.int(r.topicPartition.partition)
        w.raw(",\"offset\":")
        w.int(r.offset)
        w.raw(",\"status\":")
        // ci/mutants: audit-status-wrong (the next line)
        w.string(status(outcome))
        w.raw(",\"attempts\":")
        w.int(slot.attempts)
        w.raw(",\"latency_ms\":")
        w.int(max(0, (now - slot.fetchedAt).nanoseconds / 1_000_000))
        w.raw(",\"trace_id\":")
        if let id = traceID(r.headers) { w.string(id) } else { w.raw("null") }
        if outcome == .deadLettered {
            w.raw(",\"reason\":")
            w.string(slot.lastReason)
        }
        w.raw(",\"finished_ms\":")
        w.int(epochMillis(now))
        w.raw("}")
        let id = PushBatch.recordID(r.topicPartition, r.offset)
        return ProducerRecord(topic: topic, key: Array(id.utf8), value: w.bytes, headers: [])
    }

    static func status(_ outcome: RecordOutcome) -> String {
        switch outcome {
        case .succeeded: "SUCCESS"
        case .dropped: "DROP"
        case .deadLettered: "DEADLETTER"
        }
    }

    /// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if the record has a valid one.
    static func traceID(_ headers: [KafkaHeader]) -> String? {
        guard let value = headers.last(where: { $0.key == "traceparent" })?.value, value.count == 55, value[2] == 0x2D, value[35] == 0x2D else { return nil }
        let id = value[3..<35]
        guard id.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }), id.contains(where: { $0 != 0x30 }) else { return nil }
        return String(decoding: id, as: UTF8.self)
    }
}
