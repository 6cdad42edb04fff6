import MeshCore

/// One dead-letter job, sans-IO: a replay (`POST /deadletters/{topic}/replay`) or an inspection
/// (`GET /deadletters/{topic}`) of a dead-letter topic, on a consumer of its own that reads from the
/// replay group's committed offsets. The driver runs the actions (admin, consumer, producer, timer)
/// and feeds their outcomes back; every decision is here, the same code the simulator runs.
///
/// A replay is at-least-once and loses nothing: it copies a batch back to the original topic, waits
/// until every copy is acknowledged, and only then commits the replay group past the batch. A crash
/// between the acknowledgement and the commit means the next replay copies that batch once more,
/// never that a dead letter is skipped. The stopping point is fixed when the job starts (each
/// partition's end then, or `until_offset`), so records dead-lettered while a replay runs, even the
/// replay's own copies failing again, wait for the next one.
///
/// States (`phase`):
/// - `describing`: asked the cluster for the dead-letter topic's partitions and ends;
/// - `positioning`: asked the replay group's committed offsets;
/// - `reading`: polls; a replay sends each polled batch (`sending`) and commits it (`committing`)
///   before it polls again;
/// - `finished`: the report is out and the consumer closing. The deadline moves `reading` here at
///   once, and a batch in flight here once its commit is done.
public final class DeadLetterJob {
    public enum Event: Sendable {
        case started
        /// The dead-letter topic's partitions with their first and next offsets (none: no such topic).
        case described(Result<[TopicPartition: Watermarks], KafkaError>)
        case committedFetched(Result<[PartitionOffset], KafkaError>)
        case polled([ConsumerEvent])
        case delivered(ticket: UInt64, [Result<RecordMetadata, KafkaError>])
        case commitDone(ticket: UInt64, Result<Void, KafkaError>)
        case deadlineFired
        /// The driver could not carry out an action (an assignment refused): the job ends with it.
        case failed(KafkaError)
    }

    public enum Action: Hashable, Sendable {
        /// List the dead-letter topic's partitions and their watermarks.
        case describe(topic: String)
        case fetchCommitted([TopicPartition])
        /// Assign these partitions to the job's consumer, of the replay group with the earliest reset
        /// policy: each starts at the group's committed offset, or the first offset kept. (Records
        /// below the job's start are passed over, so a consumer starting earlier loses nothing.)
        case assign([TopicPartition])
        case poll(maxRecords: Int)
        case produce(ticket: UInt64, [ProducerRecord])
        case commit(ticket: UInt64, [PartitionOffset])
        case armDeadline(after: Duration)
        /// The job is over: answer with this and close the consumer.
        case finish(DeadLetterReport)
    }

    enum Phase: Equatable { case idle, describing, positioning, reading, sending(UInt64), committing(UInt64), finished }

    public let plan: DeadLetterPlan
    private var phase = Phase.idle
    /// Per dead-letter partition: where the job started, where it is (the next offset to read or,
    /// for a replay, the next one to commit) and where it stops.
    private var start: [TopicPartition: Int64] = [:]
    private var position: [TopicPartition: Int64] = [:]
    private var stop: [TopicPartition: Int64] = [:]
    private var nextTicket: UInt64 = 1
    /// The batch being sent: its records' dead-letter partitions and offsets, in send order.
    private var inFlight: [(TopicPartition, Int64)] = []
    /// Commits the batch in flight will make, and the records it moves.
    private var pendingCommit: (offsets: [TopicPartition: Int64], copied: Int, skipped: Int) = ([:], 0, 0)
    private var deadlinePassed = false
    private var failure: KafkaError?
    private var copied = 0
    private var skipped = 0
    private var seen: [DeadLetterEntry] = []

    public init(plan: DeadLetterPlan) { self.plan = plan }

    public var isFinished: Bool { phase == .finished }

    public func handle(_ event: Event) -> [Action] {
        var actions: [Action] = []
        switch (event, phase) {
        case (.started, .idle):
            phase = .describing
            actions.append(.armDeadline(after: plan.timeout))
            actions.append(.describe(topic: plan.deadLetterTopic))

        case (.described(.failure(let e)), .describing):
            fail(e, &actions)
        case (.described(.success(let ends)), .describing):
            guard !ends.isEmpty else { return finish(notFound: true) }
            for (tp, w) in ends {
                start[tp] = w.low
                stop[tp] = min(w.high, plan.untilOffset ?? w.high)
            }
            phase = .positioning
            actions.append(.fetchCommitted(ends.keys.sorted()))

        case (.committedFetched(.failure(let e)), .positioning):
            fail(e, &actions)
        case (.committedFetched(.success(let committed)), .positioning):
            // Retention may have removed what the group committed to: start from what is left.
            for c in committed where start[c.topicPartition] != nil { start[c.topicPartition] = max(start[c.topicPartition]!, c.offset) }
            position = start
            phase = .reading
            let todo = start.keys.sorted().filter { remaining($0) > 0 }
            guard !todo.isEmpty, budget > 0 else { return finish() }
            actions.append(.assign(todo))
            actions.append(.poll(maxRecords: min(budget, plan.batchSize)))

        case (.polled(let events), .reading):
            read(events, &actions)

        case (.delivered(let ticket, let results), .sending(let t)) where ticket == t:
            delivered(results, &actions)

        case (.commitDone(let ticket, let result), .committing(let t)) where ticket == t:
            if case .failure(let e) = result {
                // The copies are out but the group did not move: the next replay copies them again.
                failure = failure ?? e
                return finish()
            }
            for (tp, o) in pendingCommit.offsets { position[tp] = o }
            copied += pendingCommit.copied
            skipped += pendingCommit.skipped
            pendingCommit = ([:], 0, 0)
            phase = .reading
            if failure != nil || deadlinePassed || budget == 0 || todo.isEmpty { return finish() }
            actions.append(.poll(maxRecords: min(budget, plan.batchSize)))

        case (.failed(let e), .describing), (.failed(let e), .positioning), (.failed(let e), .reading):
            fail(e, &actions)

        case (.deadlineFired, .idle), (.deadlineFired, .describing), (.deadlineFired, .positioning), (.deadlineFired, .reading):
            deadlinePassed = true
            return finish()
        case (.deadlineFired, .sending), (.deadlineFired, .committing):
            // The batch in flight ends first, so its copies are committed rather than made twice.
            deadlinePassed = true

        default:
            // A late outcome of a finished job, or of a call this phase no longer waits for.
            break
        }
        return actions
    }

    // MARK: reading

    /// Records the budget still allows (a replay's `max`, an inspection's `limit`).
    private var budget: Int {
        let used = plan.kind == .inspect ? seen.count : copied + skipped + pendingCommit.copied + pendingCommit.skipped
        return max(0, plan.limit - used)
    }

    private func remaining(_ tp: TopicPartition) -> Int64 { max(0, (stop[tp] ?? 0) - (position[tp] ?? 0)) }

    private var todo: [TopicPartition] { position.keys.sorted().filter { remaining($0) > 0 } }

    private func read(_ events: [ConsumerEvent], _ actions: inout [Action]) {
        var batch: [ConsumerRecord] = []
        for event in events {
            guard case .records(let records) = event else { continue }
            for r in records where r.topicPartition.topic == plan.deadLetterTopic {
                let tp = r.topicPartition
                // Only the next records of each partition, below its stop: a late or repeated poll result is not read twice.
                guard let p = position[tp], r.offset >= p, r.offset < stop[tp]!, batch.count < budget else { continue }
                if let last = batch.last(where: { $0.topicPartition == tp }), r.offset <= last.offset { continue }
                batch.append(r)
            }
        }
        switch plan.kind {
        case .inspect:
            for r in batch {
                seen.append(DeadLetterEntry(r))
                position[r.topicPartition] = r.offset + 1
            }
            if budget == 0 || todo.isEmpty { return actions += finish() }
            actions.append(.poll(maxRecords: min(budget, plan.batchSize)))
        case .replay:
            guard !batch.isEmpty else { return actions.append(.poll(maxRecords: min(budget, plan.batchSize))) }
            var records: [ProducerRecord] = []
            var commits: [TopicPartition: Int64] = [:]
            var skips = 0
            inFlight = []
            for r in batch {
                commits[r.topicPartition] = r.offset + 1
                let entry = DeadLetterEntry(r)
                // A shared dead-letter topic holds other topics' records too: their own replay moves them.
                guard (entry.originalTopic ?? plan.topic) == plan.topic else { skips += 1; continue }
                inFlight.append((r.topicPartition, r.offset))
                records.append(copy(r))
            }
            pendingCommit = (commits, records.count, skips)
            let ticket = nextTicket
            nextTicket += 1
            if records.isEmpty {
                phase = .committing(ticket)
                actions.append(.commit(ticket: ticket, commitList(commits)))
            } else {
                phase = .sending(ticket)
                actions.append(.produce(ticket: ticket, records))
            }
        }
    }

    /// The copy sent back: key, value and every header (the `lightmesh.dlq.*` ones stay as history),
    /// plus where it was replayed from.
    private func copy(_ r: ConsumerRecord) -> ProducerRecord {
        var headers = r.headers
        // ci/mutants: replay-no-source (the next line)
        headers.append(KafkaHeader(DeadLetterEntry.replayedFromHeader, Array("\(r.topicPartition.topic)/\(r.topicPartition.partition)/\(r.offset)".utf8)))
        return ProducerRecord(topic: plan.topic, key: r.key, value: r.value, headers: headers)
    }

    private func delivered(_ results: [Result<RecordMetadata, KafkaError>], _ actions: inout [Action]) {
        // Per partition, the commit may pass only copies that were all acknowledged before the first failure.
        var firstFailure: [TopicPartition: Int64] = [:]
        for (i, result) in results.enumerated() where i < inFlight.count {
            guard case .failure(let e) = result else { continue }
            let (tp, offset) = inFlight[i]
            if firstFailure[tp] == nil { firstFailure[tp] = offset }
            failure = failure ?? e
        }
        if results.count < inFlight.count {
            failure = failure ?? KafkaError(code: "lost", message: "the producer reported \(results.count) of \(inFlight.count) copies")
            for (tp, offset) in inFlight[results.count...] where firstFailure[tp] == nil { firstFailure[tp] = offset }
        }
        // ci/mutants: replay-commit-unacknowledged (the next line)
        if !firstFailure.isEmpty {
            for (tp, offset) in firstFailure { pendingCommit.offsets[tp] = offset }
            let kept = inFlight.enumerated().filter { i, e in firstFailure[e.0].map { e.1 < $0 } ?? true && i < results.count }
            pendingCommit.copied = kept.count
            pendingCommit.skipped = 0
            // Partitions whose commit would not move are left out.
            pendingCommit.offsets = pendingCommit.offsets.filter { $0.value > position[$0.key]! }
        }
        inFlight = []
        let ticket = nextTicket
        nextTicket += 1
        guard !pendingCommit.offsets.isEmpty else {
            pendingCommit = ([:], 0, 0)
            actions += finish()
            return
        }
        phase = .committing(ticket)
        actions.append(.commit(ticket: ticket, commitList(pendingCommit.offsets)))
    }

    private func commitList(_ offsets: [TopicPartition: Int64]) -> [PartitionOffset] {
        // ci/mutants: replay-commit-stays (the next line)
        offsets.keys.sorted().map { PartitionOffset($0, offsets[$0]!) }
    }

    // MARK: the end

    private func fail(_ e: KafkaError, _ actions: inout [Action]) {
        failure = e
        actions += finish()
    }

    private func finish(notFound: Bool = false) -> [Action] {
        guard phase != .finished else { return [] }
        let r = report(notFound: notFound)
        phase = .finished
        return [.finish(r)]
    }

    private func report(notFound: Bool = false) -> DeadLetterReport {
        DeadLetterReport(
            plan: plan, notFound: notFound, copied: copied, skipped: skipped,
            partitions: start.keys.sorted().map { tp in
                DeadLetterReport.Partition(partition: tp.partition, from: start[tp]!, to: position[tp] ?? start[tp]!, stop: stop[tp]!)
            },
            entries: seen, deadlinePassed: deadlinePassed, failure: failure)
    }
}
