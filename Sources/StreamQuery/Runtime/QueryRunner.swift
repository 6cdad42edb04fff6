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
/// Every poll, commit and load carries a ticket; an answer with a ticket that is no longer awaited
/// (it was asked before a rebuild) is dropped. Records polled before a seek would otherwise skip the
/// records between the stored position and theirs.
///
/// Phases (``phase``):
/// - `.stopped`: not started, or halted for good (the stored state does not read back).
/// - `.loading`: the store's rows and offsets were asked for. → running (loaded), backingOff (failed)
/// - `.polling`: a poll is out. → committing (records, or acknowledged outputs to delete), polling (nothing)
/// - `.committing`: a batch's state is out to the store. → polling (committed, outputs sent), backingOff (failed)
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
        /// The wait before sending again the outputs the sink refused.
        public var resendDelay: Duration = .milliseconds(100)
        public init() {}
    }

    public enum Phase: Hashable, Sendable {
        case stopped, loading, polling, committing, backingOff
    }

    public enum Timer: Hashable, Sendable {
        /// Load the state again after a failure.
        case reload
        /// Send again the outputs the sink has not acknowledged.
        case resend
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
    private var resendArmed = false

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
                let built: QueryStateTask
                do {
                    built = try QueryStateTask(query, rows: state.rows, offsets: state.offsets)
                } catch {
                    phase = .stopped
                    return [.halt("the stored state of \(query.id) does not read back: \(error.message)")]
                }
                task = built
                backoff = settings.backoff
                var targets: [TopicPartition: SeekTarget] = [:]
                for tp in partitions { targets[tp] = built.positions[tp].map { .offset($0) } ?? .beginning }
                // ci/mutants: runner-no-seek-back (the next line)
                var actions: [Action] = [.seek(targets)]
                // What the store kept but the sink may not have had: again, in order, before anything new.
                let outbox = built.outbox
                if !outbox.isEmpty { actions.append(.send(outbox)) }
                return actions + poll()
            }
        case .polled(let t, let records):
            // ci/mutants: runner-stale-poll-taken (the next line)
            guard phase == .polling, t == ticket, var current = task else { return [] }
            guard !records.isEmpty || current.hasAcknowledgements else { return poll() }
            let batch = current.process(records)
            task = current
            pending = batch.outputs
            phase = .committing
            ticket += 1
            return [.commit(ticket: ticket, batch.state)]
        case .committed(let t, let result):
            guard phase == .committing, t == ticket else { return [] }
            guard case .success = result else { return backOff() }
            commits += 1
            let outputs = pending
            pending = []
            return (outputs.isEmpty ? [] : [.send(outputs)]) + poll()
        case .sent(let sequence, let result):
            switch result {
            case .success:
                task?.delivered(sequence)
                return []
            case .failure:
                // The entry stays in the outbox; the whole outbox goes again shortly (a reader drops
                // what it already had by its sequence).
                guard !resendArmed else { return [] }
                resendArmed = true
                return [.armTimer(.resend, after: settings.resendDelay)]
            }
        case .timerFired(.reload):
            guard phase == .backingOff else { return [] }
            return load()
        case .timerFired(.resend):
            resendArmed = false
            guard phase == .polling || phase == .committing, let outbox = task?.outbox, !outbox.isEmpty else { return [] }
            return [.send(outbox)]
        }
    }

    private mutating func load() -> [Action] {
        phase = .loading
        task = nil
        pending = []
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
