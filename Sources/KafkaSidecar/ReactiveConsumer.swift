import MeshCore

/// The reactive consumer's decisions, sans-IO: one per subscription, driven by librdkafka + NIO in
/// production and by `SimKafka` + the simulated network in the simulator.
///
/// The driver feeds ``Event``s (what the consumer, the app, the broker and the timers said) with the
/// current time and carries out the returned ``Action``s. All lifecycle lives here: which records to
/// push and when, push timeouts, retries with backoff, dead-lettering, pausing for backpressure and
/// app readiness, what to commit, and the before-revoke step.
///
/// The commit rule: per partition, the committed offset is the lowest offset not yet finished. A
/// record is finished when the app answered SUCCESS or DROP for it, or when the broker acknowledged
/// its dead-letter copy. Nothing else moves a commit, a revocation included.
public final class ReactiveConsumer {
    /// What happened, as the driver reports it.
    public enum Event: Sendable {
        /// The driver is up: start probing the app.
        case started
        case assigned([TopicPartition])
        /// The before-revoke step was called; answer with ``Action/release(revocation:_:)``.
        case revoking(id: UInt64, PartitionRevocation)
        case revoked([TopicPartition])
        case lost([TopicPartition])
        case records([ConsumerRecord])
        /// What a poll asked for by ``Action/poll(maxRecords:after:)`` returned: each event is taken
        /// in order (errors are the driver's to log), then the next poll is asked for.
        case polled([ConsumerEvent])
        /// The app answered push `batch` (or the push failed).
        case pushAnswered(batch: UInt64, PushAnswer)
        case deadLetterWritten(ticket: UInt64, Result<RecordMetadata, KafkaError>)
        /// The audit write `ticket` ended: one result per entry, in order.
        case auditWritten(ticket: UInt64, [Result<RecordMetadata, KafkaError>])
        case commitDone(ticket: UInt64, Result<Void, KafkaError>)
        case timerFired(Timer)
        /// The app's readiness probe answered (a probe still unanswered when the next one is due
        /// counts as not ready).
        case appReadiness(ready: Bool)
    }

    /// What the driver must do, in order.
    public enum Action: Hashable, Sendable {
        /// Send this batch to the app; answer with ``Event/pushAnswered(batch:_:)``.
        case push(PushBatch)
        /// The engine gave up on this push (it timed out); the driver may cancel it. A later answer is ignored.
        case abandonPush(batch: UInt64)
        case pause([TopicPartition])
        case resume([TopicPartition])
        /// Produce the dead-letter copy; answer with ``Event/deadLetterWritten(ticket:_:)``.
        case produceDeadLetter(ticket: UInt64, ProducerRecord)
        /// Write these audit entries; answer with ``Event/auditWritten(ticket:_:)``. Nothing waits for it.
        case writeAudit(ticket: UInt64, [ProducerRecord])
        /// Commit these offsets; answer with ``Event/commitDone(ticket:_:)``.
        case commit(ticket: UInt64, [PartitionOffset])
        /// Answer the before-revoke step with these offsets (the consumer commits them).
        case release(revocation: UInt64, [PartitionOffset])
        case armTimer(Timer, after: Duration)
        /// Probe the app's readiness; answer with ``Event/appReadiness(ready:)``.
        case probeApp
        /// Poll the consumer for at most `maxRecords`, after waiting `after` (zero: at once); answer
        /// with ``Event/polled(_:)``. The loop is the engine's: it asks for the first poll when
        /// started and the next one with every answer, as many records as the buffer has room for
        /// (one, slowly, when it is full: rebalances are served inside polls).
        case poll(maxRecords: Int, after: Duration)
    }

    /// The engine's timers.
    public enum Timer: Hashable, Sendable {
        case pushTimeout(batch: UInt64)
        /// A retry or dead-letter write became due.
        case wake
        case revocationDeadline(UInt64)
        case readinessProbe
        case commitRetry
        /// A partial audit batch is old enough to write.
        case auditFlush
    }

    /// Counters for metrics, cumulative since start.
    public struct Stats: Hashable, Sendable {
        public var fetched = 0
        public var pushes = 0
        public var pushedRecords = 0
        public var retries = 0
        public var succeeded = 0
        public var dropped = 0
        public var deadLettered = 0
        public var failedPushes = 0
        public var commits = 0
        public var buffered = 0
        public var inFlightRecords = 0
        /// Audit entries written, refused by the broker (and kept to try again), dropped (the buffer was full).
        public var audited = 0
        public var auditFailed = 0
        public var auditDropped = 0
        public init() {}
    }

    public let config: ReactiveConsumerConfig
    public private(set) var stats = Stats()
    public private(set) var appReady = false

    private var random: SeededRandom
    private let epochMillis: @Sendable (MeshInstant) -> Int64
    private var partitions: [TopicPartition: PartitionLedger] = [:]
    /// Assigned partitions in sorted order: the deterministic iteration order.
    private var order: [TopicPartition] = []
    private var nextEpoch: UInt64 = 1
    private var nextBatch: UInt64 = 1
    private var nextTicket: UInt64 = 1
    private var batches: [UInt64: (tp: TopicPartition, epoch: UInt64, offsets: [Int64])] = [:]
    private var deadLetters: [UInt64: (tp: TopicPartition, epoch: UInt64, offset: Int64)] = [:]
    private var commitInFlight: (ticket: UInt64, offsets: [(PartitionOffset, UInt64)])?
    private var commitHeld = false
    private var revocations: [UInt64: [TopicPartition]] = [:]
    private var paused: Set<TopicPartition> = []
    /// Newly assigned partitions whose pause state the client has not been told yet.
    private var pauseUnknown: Set<TopicPartition> = []
    private var wakeArmedAt: MeshInstant?
    /// When retries and dead-letter writes become due (some may belong to records gone since: a
    /// spare wake-up costs one pump).
    private var wakeups = InstantHeap()
    /// A readiness probe was sent and not answered yet; still unanswered at the next probe means not ready.
    private var probeOutstanding = false
    /// Where the next pump starts, so partitions take turns.
    private var cursor = 0
    /// Audit entries not yet written, oldest first, and the write in flight.
    private var audit = AuditBuffer()

    /// - Parameters:
    ///   - random: jitter for retry backoff.
    ///   - epochMillis: wall-clock milliseconds of an instant, for the dead-letter headers.
    ///   - faults: fault points (``InertFaults`` outside the simulator).
    public init(config: ReactiveConsumerConfig, random: SeededRandom, epochMillis: @escaping @Sendable (MeshInstant) -> Int64,
                faults: any FaultInjector = InertFaults.shared) {
        self.config = config
        self.random = random
        self.epochMillis = epochMillis
        self.faults = faults
    }

    /// Fault points (``InertFaults`` outside the simulator).
    private let faults: any FaultInjector
    /// Buggify: a push's timeout is a tenth of the configured one, so the app's answers race it and
    /// records are redelivered while the app still works on them (a slow app makes the same happen).
    public static let shortPushTimeout = FaultSite("kafka.sidecar.short-push-timeout")

    /// Records the driver may still take from the consumer before the buffer is full. At zero the
    /// driver keeps polling (rebalances are served inside polls) but slowly, one record at a time
    /// (``idlePollInterval``), so the buffer can only creep towards the pause threshold.
    public var pollBudget: Int { max(0, config.maxBufferedRecords - stats.buffered) }

    /// How long a driver waits before polling again when ``pollBudget`` is zero.
    public static let idlePollInterval: Duration = .milliseconds(100)

    /// The driver's next poll: how many records it may take, after how long.
    public var nextPoll: (maxRecords: Int, after: Duration) {
        let budget = pollBudget
        return budget > 0 ? (budget, .zero) : (1, Self.idlePollInterval)
    }

    /// The partitions assigned, sorted.
    public var assignedPartitions: [TopicPartition] { order }

    /// The partitions assigned and their commit watermarks, sorted (for metrics and tests); a
    /// partition nothing was fetched from yet has none.
    public var watermarks: [PartitionOffset] {
        order.compactMap { tp in partitions[tp]?.watermark.map { PartitionOffset(tp, $0) } }
    }

    /// Applies one event at `now` and returns what to do.
    public func handle(_ event: Event, now: MeshInstant) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .started:
            probeOutstanding = true
            actions.append(.probeApp)
            actions.append(.armTimer(.readinessProbe, after: config.readinessInterval))
            actions.append(.poll(maxRecords: nextPoll.maxRecords, after: nextPoll.after))
        case .polled(let events):
            for event in events {
                switch event {
                case .assigned(let tps): actions += handle(.assigned(tps), now: now)
                case .revoked(let tps): actions += handle(.revoked(tps), now: now)
                case .lost(let tps): actions += handle(.lost(tps), now: now)
                case .records(let records): actions += handle(.records(records), now: now)
                case .error: break
                }
            }
            actions.append(.poll(maxRecords: nextPoll.maxRecords, after: nextPoll.after))
        case .assigned(let tps):
            for tp in tps where partitions[tp] == nil {
                partitions[tp] = PartitionLedger(epoch: nextEpoch)
                nextEpoch += 1
                // Whether a pause survives a revoke and a new assignment depends on the client, so
                // the pump states it explicitly, whichever it wants.
                pauseUnknown.insert(tp)
            }
            order = partitions.keys.sorted()
        case .revoking(let id, let revocation):
            beginRevocation(id, revocation, now, &actions)
        case .revoked(let tps), .lost(let tps):
            for tp in tps { drop(tp) }
        case .records(let records):
            for r in records {
                guard let ledger = partitions[r.topicPartition], ledger.revocation == nil else { continue }
                if ledger.append(r, at: now) {
                    stats.fetched += 1
                    stats.buffered += 1
                }
            }
        case .pushAnswered(let batch, let answer):
            answered(batch, answer, now)
        case .deadLetterWritten(let ticket, let result):
            deadLetterWritten(ticket, result, now)
        case .auditWritten(let ticket, let results):
            audit.written(ticket, results, &stats)
        case .commitDone(let ticket, let result):
            commitDone(ticket, result, &actions)
        case .timerFired(let timer):
            switch timer {
            case .pushTimeout(let batch):
                if batches[batch] != nil {
                    answered(batch, .failed(reason: "timeout after \(config.pushTimeout)"), now)
                    actions.append(.abandonPush(batch: batch))
                }
            case .wake:
                if let at = wakeArmedAt, at <= now { wakeArmedAt = nil }
            case .revocationDeadline(let id):
                finishRevocation(id, &actions)
            case .readinessProbe:
                if probeOutstanding { appReady = false }
                probeOutstanding = true
                actions.append(.probeApp)
                actions.append(.armTimer(.readinessProbe, after: config.readinessInterval))
            case .commitRetry:
                commitHeld = false
            case .auditFlush:
                audit.flushArmed = false
            }
        case .appReadiness(let ready):
            probeOutstanding = false
            // ci/mutants: app-never-ready (the next line)
            appReady = ready
        }
        settleRevocations(&actions)
        pump(now, &actions)
        return actions
    }

    // MARK: pushing

    /// Starts dead-letter writes that are due, then fills free push slots, partitions taking turns.
    private func pump(_ now: MeshInstant, _ actions: inout [Action]) {
        for tp in order {
            guard let ledger = partitions[tp], ledger.waitingDeadLetters > 0 else { continue }
            for i in ledger.indices {
                if case .deadLetterWaiting(let due) = ledger[i].state, due <= now { startDeadLetter(tp, ledger, i, &actions) }
            }
        }
        if appReady && !order.isEmpty {
            var idle = 0
            while batches.count < config.maxConcurrentPushes && idle < order.count {
                let tp = order[cursor % order.count]
                cursor = (cursor + 1) % order.count
                if let batch = makeBatch(tp, now) {
                    idle = 0
                    actions.append(.push(batch))
                    let timeout = faults.fires(Self.shortPushTimeout) ? config.pushTimeout / 10 : config.pushTimeout
                    actions.append(.armTimer(.pushTimeout(batch: batch.id), after: timeout))
                } else {
                    idle += 1
                }
            }
        }
        // One wake-up timer, for the earliest retry or dead-letter write still to come.
        while let first = wakeups.min, first <= now { wakeups.removeMin() }
        if let due = wakeups.min, wakeArmedAt.map({ due < $0 }) ?? true {
            wakeArmedAt = due
            actions.append(.armTimer(.wake, after: due - now))
        }
        updatePauses(&actions)
        commitIfAhead(&actions)
        if config.auditTopic != nil { audit.writeIfDue(now, config, &nextTicket, &actions) }
    }

    /// The next batch of `tp` that its ordering allows, marked in flight.
    private func makeBatch(_ tp: TopicPartition, _ now: MeshInstant) -> PushBatch? {
        guard let ledger = partitions[tp], ledger.revocation == nil else { return nil }
        var taken: [Int] = []
        var blockedKeys: Set<[UInt8]> = []
        scan: for i in ledger.indices {
            let slot = ledger[i]
            if slot.isFinished { continue }
            if slot.isSettledForApp {
                // Dead-lettered, its copy not yet acknowledged: a crash now would bring the record
                // back to the app, so its lane waits for the copy, or a later record of the lane
                // could reach the app before it. It is not pushed again.
                switch config.ordering {
                case .partition: break scan
                case .key: blockedKeys.insert(slot.record.key ?? [])
                case .none: break
                }
                continue
            }
            let due: Bool
            if case .waiting(let at) = slot.state { due = at <= now } else { due = false }
            let room = taken.count < config.maxBatchRecords
            switch config.ordering {
            case .partition:
                // The first unsettled record heads the lane; it and the due records right behind it go.
                // ci/mutants: push-out-of-order (the next line)
                guard due && room else { break scan }
                taken.append(i)
            case .key:
                let key = slot.record.key ?? []
                if blockedKeys.contains(key) { continue }
                if due && room { taken.append(i) } else { blockedKeys.insert(key) }
            case .none:
                if due && room { taken.append(i) }
                if !room { break scan }
            }
        }
        guard !taken.isEmpty else { return nil }
        let id = nextBatch
        nextBatch += 1
        var records: [PushBatch.Entry] = []
        records.reserveCapacity(taken.count)
        for i in taken {
            ledger.set(i, .inFlight(batch: id))
            ledger[i].attempts += 1
            records.append(PushBatch.Entry(record: ledger[i].record, attempt: ledger[i].attempts))
        }
        batches[id] = (tp, ledger.epoch, records.map(\.record.offset))
        stats.pushes += 1
        stats.pushedRecords += records.count
        stats.inFlightRecords += records.count
        return PushBatch(id: id, topicPartition: tp, entries: records)
    }

    private func answered(_ batch: UInt64, _ answer: PushAnswer, _ now: MeshInstant) {
        guard let (tp, epoch, offsets) = batches.removeValue(forKey: batch) else { return }
        stats.inFlightRecords -= offsets.count
        if case .failed = answer { stats.failedPushes += 1 }
        guard let ledger = partitions[tp], ledger.epoch == epoch else { return }
        for offset in offsets {
            guard let i = ledger.index(of: offset), ledger[i].state == .inFlight(batch: batch) else { continue }
            let id = PushBatch.recordID(tp, offset)
            switch answer {
            case .failed(let reason):
                retry(tp, ledger, i, reason, now)
            case .verdicts(let verdicts):
                guard let v = verdicts[id] else {
                    retry(tp, ledger, i, "the app gave no status for \(id)", now)
                    continue
                }
                switch v.verdict {
                case .success: finish(ledger, i, .succeeded, now)
                case .drop: finish(ledger, i, .dropped, now)
                // ci/mutants: retry-as-dead-letter (the next line)
                case .retry: retry(tp, ledger, i, v.reason ?? "the app asked for a retry", now)
                case .deadLetter:
                    // ci/mutants: dead-letter-as-drop (the next line)
                    ledger[i].lastReason = v.reason ?? "the app dead-lettered it"
                    if ledger[i].firstFailure == nil { ledger[i].firstFailure = now }
                    queueDeadLetter(ledger, i, now)
                }
            }
        }
        ledger.compact()
    }

    private func retry(_ tp: TopicPartition, _ ledger: PartitionLedger, _ i: Int, _ reason: String, _ now: MeshInstant) {
        ledger[i].lastReason = reason
        if ledger[i].firstFailure == nil { ledger[i].firstFailure = now }
        if ledger[i].attempts >= config.maxAttempts {
            ledger[i].lastReason = "gave up after \(ledger[i].attempts) attempts: \(reason)"
            queueDeadLetter(ledger, i, now)
            return
        }
        stats.retries += 1
        let due = now + config.retryBackoff.delay(forRetry: ledger[i].attempts - 1, using: &random)
        ledger.set(i, .waiting(due: due))
        wakeups.insert(due)
    }

    private func finish(_ ledger: PartitionLedger, _ i: Int, _ outcome: RecordOutcome, _ now: MeshInstant) {
        ledger.set(i, .finished(outcome))
        if let topic = config.auditTopic {
            audit.add(AuditBuffer.entry(ledger[i], outcome, topic: topic, now: now, epochMillis: epochMillis), limit: config.auditBufferLimit, &stats)
        }
        stats.buffered -= 1
        switch outcome {
        case .succeeded: stats.succeeded += 1
        case .dropped: stats.dropped += 1
        case .deadLettered: stats.deadLettered += 1
        }
    }

    // MARK: dead letters

    /// Queues the record's dead-letter write; the next pump starts it.
    private func queueDeadLetter(_ ledger: PartitionLedger, _ i: Int, _ now: MeshInstant) {
        ledger.set(i, .deadLetterWaiting(due: now))
    }

    private func startDeadLetter(_ tp: TopicPartition, _ ledger: PartitionLedger, _ i: Int, _ actions: inout [Action]) {
        let ticket = nextTicket
        nextTicket += 1
        ledger.set(i, .deadLettering(ticket: ticket))
        deadLetters[ticket] = (tp, ledger.epoch, ledger[i].record.offset)
        actions.append(.produceDeadLetter(ticket: ticket, deadLetterRecord(ledger[i])))
    }

    private func deadLetterRecord(_ slot: RecordSlot) -> ProducerRecord {
        let r = slot.record
        var headers = r.headers
        func add(_ name: String, _ value: String) { headers.append(KafkaHeader("lightmesh.dlq.\(name)", Array(value.utf8))) }
        // ci/mutants: dead-letter-no-reason (the next line)
        add("reason", slot.lastReason)
        add("attempts", String(slot.attempts))
        add("original.topic", r.topicPartition.topic)
        add("original.partition", String(r.topicPartition.partition))
        add("original.offset", String(r.offset))
        add("first.failure.ms", String(epochMillis(slot.firstFailure ?? .zero)))
        return ProducerRecord(topic: config.deadLetterTopic(for: r.topicPartition.topic), key: r.key, value: r.value, headers: headers)
    }

    private func deadLetterWritten(_ ticket: UInt64, _ result: Result<RecordMetadata, KafkaError>, _ now: MeshInstant) {
        guard let (tp, epoch, offset) = deadLetters.removeValue(forKey: ticket),
              let ledger = partitions[tp], ledger.epoch == epoch,
              let i = ledger.index(of: offset), ledger[i].state == .deadLettering(ticket: ticket) else { return }
        switch result {
        case .success:
            finish(ledger, i, .deadLettered, now)
            ledger.compact()
        case .failure:
            ledger[i].deadLetterFailures += 1
            let wait = config.deadLetterBackoff.delay(forRetry: ledger[i].deadLetterFailures - 1, using: &random)
            ledger.set(i, .deadLetterWaiting(due: now + wait))
            wakeups.insert(now + wait)
        }
    }

    // MARK: commits

    /// Commits every partition whose watermark passed its committed offset, one commit at a time.
    private func commitIfAhead(_ actions: inout [Action]) {
        guard commitInFlight == nil, !commitHeld else { return }
        var offsets: [(PartitionOffset, UInt64)] = []
        for tp in order {
            guard let ledger = partitions[tp], ledger.revocation == nil, let mark = ledger.commitDue else { continue }
            offsets.append((PartitionOffset(tp, mark), ledger.epoch))
        }
        guard !offsets.isEmpty else { return }
        let ticket = nextTicket
        nextTicket += 1
        commitInFlight = (ticket, offsets)
        stats.commits += 1
        actions.append(.commit(ticket: ticket, offsets.map(\.0)))
    }

    private func commitDone(_ ticket: UInt64, _ result: Result<Void, KafkaError>, _ actions: inout [Action]) {
        guard let inFlight = commitInFlight, inFlight.ticket == ticket else { return }
        commitInFlight = nil
        switch result {
        case .success:
            for (offset, epoch) in inFlight.offsets {
                guard let ledger = partitions[offset.topicPartition], ledger.epoch == epoch else { continue }
                ledger.committed = max(ledger.committed ?? -1, offset.offset)
            }
        case .failure:
            commitHeld = true
            // ci/mutants: refused-commit-stops (the next line)
            actions.append(.armTimer(.commitRetry, after: config.commitRetryDelay))
        }
    }

    // MARK: revocation

    private func beginRevocation(_ id: UInt64, _ revocation: PartitionRevocation, _ now: MeshInstant, _ actions: inout [Action]) {
        if revocation.lost {
            for tp in revocation.partitions { drop(tp) }
            actions.append(.release(revocation: id, []))
            return
        }
        let mine = revocation.partitions.filter { partitions[$0] != nil }
        for tp in mine { partitions[tp]?.revocation = id }
        revocations[id] = mine
        actions.append(.armTimer(.revocationDeadline(id), after: config.revocationGrace))
    }

    /// Releases every revocation whose partitions have nothing in flight any more.
    private func settleRevocations(_ actions: inout [Action]) {
        guard !revocations.isEmpty else { return }
        for id in revocations.keys.sorted() {
            let tps = revocations[id] ?? []
            if tps.allSatisfy({ partitions[$0].map { !$0.hasWorkInFlight } ?? true }) { finishRevocation(id, &actions) }
        }
    }

    /// Lets the partitions of revocation `id` go with their watermarks (what is finished), and forgets them.
    private func finishRevocation(_ id: UInt64, _ actions: inout [Action]) {
        guard let tps = revocations.removeValue(forKey: id) else { return }
        var offsets: [PartitionOffset] = []
        for tp in tps {
            guard let ledger = partitions[tp], ledger.revocation == id else { continue }
            // ci/mutants: revoke-loses-retries, release-rewinds (the next line)
            if let mark = ledger.watermark { offsets.append(PartitionOffset(tp, mark)) }
            drop(tp)
        }
        actions.append(.release(revocation: id, offsets))
    }

    /// Forgets a partition: later answers about it are ignored; the next owner starts from its commit.
    private func drop(_ tp: TopicPartition) {
        guard let ledger = partitions.removeValue(forKey: tp) else { return }
        for i in ledger.indices {
            switch ledger[i].state {
            case .finished: continue
            default: stats.buffered -= 1
            }
        }
        order = partitions.keys.sorted()
        paused.remove(tp)
        pauseUnknown.remove(tp)
    }

    // MARK: flow control

    /// Pauses every partition while the app is not ready or the buffer overflows (twice the
    /// budget); resumes them when both clear (the buffer back within the budget).
    ///
    /// The budget itself is kept by ``pollBudget``: the driver takes no more than it allows, so with a
    /// healthy app partitions never pause. Pausing is the last resort because librdkafka drops a
    /// paused partition's prefetched records and fetches them again on resume.
    private func updatePauses(_ actions: inout [Action]) {
        let full = stats.buffered >= 2 * config.maxBufferedRecords
        let drained = stats.buffered <= config.maxBufferedRecords
        let wantPaused: Bool
        if !appReady || full { wantPaused = true }
        else if drained { wantPaused = false }
        else { wantPaused = !paused.isEmpty }
        let target: Set<TopicPartition> = wantPaused ? Set(order) : []
        let toPause = order.filter { target.contains($0) && (!paused.contains($0) || pauseUnknown.contains($0)) }
        let toResume = paused.union(pauseUnknown).filter { !target.contains($0) }.sorted()
        pauseUnknown.removeAll()
        if !toPause.isEmpty { actions.append(.pause(toPause)) }
        if !toResume.isEmpty { actions.append(.resume(toResume)) }
        paused = target
    }
}
