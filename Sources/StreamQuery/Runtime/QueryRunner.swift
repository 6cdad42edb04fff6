import MeshCore

/// One persistent query's life as it runs, sans-IO: load its state from the store, point the
/// consumer at the stored positions, then loop (poll a batch, process it, commit its state, send
/// its outputs), and recover from every failure by rebuilding from the store. The production
/// driver and the simulator both run it; a driver only carries out the ``Action``s and reports
/// what happened as ``Event``s.
///
/// The store is the truth. The Kafka consumer's own group offsets are never read: after any failed
/// or unanswered commit the task is rebuilt from the store and the consumer sought back to the
/// stored positions, so the records of a batch the store did not keep come again, and the outputs
/// it did keep (the outbox, see ``QueryStateTask``) are sent again.
///
/// An output the sink refuses is sent again with every later output of its key, so no change of a
/// key lands after a later one of the same key (a reader may keep the highest outbox sequence per
/// key, or take the log's order as a compacted table does). Outputs still on their way when a
/// rebuild starts are not sent again (unless they follow a refused output of their key): under a
/// backlog, sending the whole outbox at every rebuild would multiply the producer's queue.
///
/// Every poll, commit and load carries a ticket; an answer with a ticket that is no longer awaited
/// (it was asked before a rebuild) is dropped. Records polled before a seek would otherwise skip the
/// records between the stored position and theirs.
///
/// Phases (``phase``):
/// - `.stopped`: not started, or halted for good (the stored state does not read back).
/// - `.loading`: the store's rows and offsets were asked for. → polling (loaded), backingOff (failed)
/// - `.polling`: a poll is out. → committing (records, or acknowledged outputs to delete), polling (nothing)
/// - `.committing`: a batch's state is out to the store. → polling (committed, outputs sent),
///   throttled (committed, too many outputs on their way), backingOff (the commit failed or went
///   unanswered)
/// - `.throttled`: no poll out until the sink answered half of the outputs on their way. → polling
/// - `.backingOff`: waiting to load again after a failure. → loading
public struct QueryRunner: Sendable {
    /// How the runner paces itself.
    public struct Settings: Sendable, Hashable {
        /// Most records a batch (one store transaction) holds.
        public var maxBatchRecords: Int = 500
        /// How long a poll waits for records.
        public var pollTimeout: Duration = .milliseconds(100)
        /// The wait before loading again after a failed load or commit (doubles to ``maxBackoff``).
        public var backoff: Duration = .milliseconds(50)
        public var maxBackoff: Duration = .seconds(2)
        /// Most outputs on their way to the sink at once. Past it the runner stops polling until
        /// half of them are answered: input is read no faster than the sink takes the outputs, so
        /// the outbox and the producer's queue stay bounded.
        public var maxOutputsInFlight: Int = 10_000
        public init() {}
    }

    public enum Phase: Hashable, Sendable {
        case stopped, loading, polling, committing, throttled, backingOff
    }

    public enum Timer: Hashable, Sendable {
        /// Load the state again after a failure.
        case reload
    }

    public enum Event: Sendable {
        case started
        case stateLoaded(ticket: UInt64, Result<(rows: [StateRow], offsets: [PartitionOffset]), MeshError>)
        case polled(ticket: UInt64, [ConsumerRecord])
        case committed(ticket: UInt64, Result<Void, MeshError>)
        /// The sink answered for the output with `sequence`.
        case sent(sequence: Int64, Result<Void, KafkaError>)
        case timerFired(Timer)
    }

    public enum Action: Sendable, Equatable {
        /// Read the query's rows (namespace) and offsets (consumer) from the store; report ``Event/stateLoaded(ticket:_:)``.
        case loadState(ticket: UInt64, namespace: String)
        /// Point the consumer at these positions (it reads these partitions, and only these).
        case seek([TopicPartition: SeekTarget])
        /// Poll up to `maxRecords`, waiting up to `timeout`; report ``Event/polled(ticket:_:)``.
        case poll(ticket: UInt64, maxRecords: Int, timeout: Duration)
        /// Commit `batch` to the store in one transaction; report ``Event/committed(ticket:_:)``.
        case commit(ticket: UInt64, StateBatch)
        /// Produce these outputs to the sink, in order; report ``Event/sent(sequence:_:)`` for each.
        case send([OutboxEntry])
        case armTimer(Timer, after: Duration)
        /// The query cannot run: its stored state does not read back. Nothing more happens.
        case halt(String)
    }

    public let query: PersistentQuery
    /// The input partitions the query reads.
    public let partitions: [TopicPartition]
    public let settings: Settings
    public private(set) var phase: Phase = .stopped
    public private(set) var task: QueryStateTask?
    /// Batches committed, rebuilds after failures (for status and metrics).
    public private(set) var commits: Int64 = 0
    public private(set) var rebuilds: Int64 = 0
    private var ticket: UInt64 = 0
    private var pending: [OutboxEntry] = []
    private var backoff: Duration
    /// An output handed to the sink that it has not answered for yet.
    private struct Awaiting {
        /// Copies on their way (a resend after a refusal may add one).
        var copies: Int
        var key: [UInt8]?
    }
    /// Outputs on their way to the sink, by sequence. Kept across rebuilds: a rebuilt task does not
    /// send them again (they are ahead in the producer's queue, in order).
    private var awaiting: [Int64: Awaiting] = [:]
    /// Copies of outputs on their way to the sink (a resend after a refusal may add a second one).
    public private(set) var inFlight = 0
    /// Outputs the sink acknowledged whose outbox rows no committed batch has deleted yet. Kept
    /// across rebuilds: the rebuilt task hears of them, so their rows are deleted, not sent again
    /// (sent again, an old change would land after a later change of its key).
    private var acknowledged: Set<Int64> = []
    /// The deletes of the batch being committed.
    private var deleting: [Int64] = []
    /// Per key, the lowest output the sink refused while there was no task: the next load sends
    /// it and every later output of its key again, on their way or not.
    private var refusedDuringRebuild: [[UInt8]?: Int64] = [:]

    public init(_ query: PersistentQuery, partitions: [TopicPartition], settings: Settings = Settings()) {
        self.query = query
        self.partitions = partitions
        self.settings = settings
        backoff = settings.backoff
    }

    public mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .started:
            guard phase == .stopped else { return [] }
            return load()
        case .stateLoaded(let t, let result):
            guard phase == .loading, t == ticket else { return [] }
            switch result {
            case .failure:
                return backOff()
            case .success(let state):
                var ready: QueryStateTask
                do {
                    ready = try QueryStateTask(query, rows: state.rows, offsets: state.offsets)
                } catch {
                    phase = .stopped
                    return [.halt("the stored state of \(query.id) does not read back: \(error.message)")]
                }
                acknowledged = acknowledged.filter { ready.holds($0) }  // the others' deletes were applied
                for sequence in acknowledged.sorted() { ready.delivered(sequence) }
                task = ready
                backoff = settings.backoff
                var targets: [TopicPartition: SeekTarget] = [:]
                for tp in partitions { targets[tp] = ready.positions[tp].map { .offset($0) } ?? .beginning }
                // ci/mutants: runner-no-seek-back (the next line)
                var actions: [Action] = [.seek(targets)]
                // What the store kept but the sink may not have had: again, in order, before anything
                // new; not what is still on its way, unless it follows a refused output of its key.
                let outbox = ready.outbox.filter { entry in
                    awaiting[entry.sequence] == nil || refusedDuringRebuild[entry.record.key].map { entry.sequence >= $0 } ?? false
                }
                refusedDuringRebuild = [:]
                actions += send(outbox)
                return actions + poll()
            }
        case .polled(let t, let records):
            // ci/mutants: runner-stale-poll-taken (the next line)
            guard phase == .polling, t == ticket, var current = task else { return [] }
            guard !records.isEmpty || current.hasAcknowledgements else { return poll() }
            let batch = current.process(records)
            task = current
            pending = batch.outputs
            deleting = batch.deleted
            phase = .committing
            ticket += 1
            return [.commit(ticket: ticket, batch.state)]
        case .committed(let t, let result):
            guard phase == .committing, t == ticket else { return [] }
            guard case .success = result else { return backOff() }
            commits += 1
            acknowledged.subtract(deleting)
            deleting = []
            let outputs = pending
            pending = []
            let sent = send(outputs)
            guard inFlight < settings.maxOutputsInFlight else {
                phase = .throttled
                return sent
            }
            return sent + poll()
        case .sent(let sequence, let result):
            guard var waiting = awaiting[sequence] else { return [] }
            inFlight -= 1
            waiting.copies -= 1
            awaiting[sequence] = waiting.copies > 0 ? waiting : nil
            var actions: [Action] = []
            switch result {
            case .success:
                // ci/mutants: runner-forgets-acknowledgements (the next line)
                acknowledged.insert(sequence)
                task?.delivered(sequence)
            case .failure where waiting.copies > 0:
                break  // another copy is still on its way, behind this one: its answer counts
            case .failure:
                guard let current = task else {
                    refusedDuringRebuild[waiting.key] = min(refusedDuringRebuild[waiting.key] ?? .max, sequence)
                    return []
                }
                guard current.holds(sequence) else { break }  // another copy was acknowledged
                // The refused output again, and every later output of its key after it: sending it
                // alone would land it after a later change of its key, and a reader that takes the
                // log's order (a compacted table) would keep the older value.
                // Not the outputs of the batch being committed: they go out after its commit, and a
                // refused commit gives their sequences to the outputs of the records processed again.
                // ci/mutants: runner-resends-uncommitted (the next line)
                let committedBelow = pending.first?.sequence ?? .max
                // ci/mutants: runner-resend-refused-alone (the next line)
                let again = current.outbox.filter { $0.record.key == waiting.key && $0.sequence >= sequence && $0.sequence < committedBelow }
                actions = send(again)
            }
            // Whatever the answer, a throttled runner polls again once half are answered: the last
            // answers may all be refusals of outputs another copy already delivered.
            // ci/mutants: runner-throttle-waits-for-success (the next line)
            if phase == .throttled, inFlight <= settings.maxOutputsInFlight / 2 { actions += poll() }
            return actions
        case .timerFired(.reload):
            guard phase == .backingOff else { return [] }
            return load()
        }
    }

    private mutating func send(_ entries: [OutboxEntry]) -> [Action] {
        guard !entries.isEmpty else { return [] }
        for entry in entries { awaiting[entry.sequence, default: Awaiting(copies: 0, key: entry.record.key)].copies += 1 }
        inFlight += entries.count
        return [.send(entries)]
    }

    private mutating func load() -> [Action] {
        phase = .loading
        task = nil
        pending = []
        deleting = []
        ticket += 1
        return [.loadState(ticket: ticket, namespace: query.id)]
    }

    private mutating func poll() -> [Action] {
        phase = .polling
        ticket += 1
        return [.poll(ticket: ticket, maxRecords: settings.maxBatchRecords, timeout: settings.pollTimeout)]
    }

    /// A load or commit failed (or its outcome is unknown): drop the task, wait, load again.
    private mutating func backOff() -> [Action] {
        rebuilds += 1
        phase = .backingOff
        task = nil
        pending = []
        ticket += 1
        let wait = backoff
        backoff = min(settings.maxBackoff, backoff * 2)
        return [.armTimer(.reload, after: wait)]
    }
}
