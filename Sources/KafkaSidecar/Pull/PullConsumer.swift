import MeshCore

/// One pull consumer instance's decisions, sans-IO: the app creates it over REST, subscribes or
/// assigns, fetches records, commits and seeks; the driver runs a group consumer for it (librdkafka
/// in production, `SimKafka` in the simulator), feeds ``Event``s and carries out ``Action``s.
///
/// The rules that keep records safe live here:
/// - **A commit never passes a record the app was not given.** Each partition remembers the offset
///   after the last record handed out (``PullPartition/handedUpTo``); an explicit commit beyond it
///   is refused (409), and an empty commit commits exactly what was handed out.
/// - **A rebalance loses nothing.** Records fetched but not handed out are dropped when their
///   partition goes (the next owner starts at the committed offset); records handed out and not
///   committed are committed on the way out only under auto commit, where handing out counts as
///   processing. Without it they come back to whichever member owns the partition next.
/// - **Records of a poll that began before a seek are stale** for the partitions it moved.
///
/// Lifecycle: `.open` (polling while subscribed or assigned; fetches wait for records up to their
/// timeout) → [delete, or idle past ``PullConsumerLimits/idleTimeout``] → `.closing` (a last auto
/// commit in flight) → `.closed` (the driver closed the group consumer; the instance is gone).
public final class PullConsumer {
    public enum Event: Sendable {
        /// The driver made the group consumer.
        case started
        case subscribe(call: UInt64, topics: [String])
        case unsubscribe(call: UInt64)
        case assign(call: UInt64, [TopicPartition])
        case subscription(call: UInt64)
        case assignment(call: UInt64)
        /// `GET …/records`: `timeout` and `maxBytes` as the app gave them (nil: the defaults).
        case fetch(call: UInt64, timeout: Duration?, maxBytes: Int?)
        /// `POST …/offsets`: the offsets as the app wrote them (read by the flavour), or nil for
        /// everything handed out so far.
        case commit(call: UInt64, offsets: [PartitionOffset]?)
        /// `GET …/offsets`: the committed offsets of these partitions.
        case committed(call: UInt64, [TopicPartition])
        /// `POST …/positions[/beginning|/end]`.
        case seek(call: UInt64, [PartitionSeek])
        /// `DELETE …`.
        case delete(call: UInt64)
        /// What poll `id` (asked for by ``Action/poll(id:maxRecords:after:)``) returned.
        case polled(id: UInt64, [ConsumerEvent])
        /// The before-revoke step was called; answer with ``Action/release(revocation:_:)``.
        case revoking(id: UInt64, PartitionRevocation)
        case commitDone(ticket: UInt64, Result<Void, KafkaError>)
        case committedFetched(ticket: UInt64, Result<[PartitionOffset], KafkaError>)
        case timerFired(Timer)
    }

    public enum Action: Hashable, Sendable {
        case subscribe([String])
        /// Give up the subscription: the driver closes the group consumer (its before-revoke step
        /// runs first) and makes a fresh one for whatever the app asks next.
        case unsubscribe
        case assign([TopicPartition])
        /// Poll the group consumer for at most `maxRecords`, after waiting `after`; answer with
        /// ``Event/polled(id:_:)``. One poll at a time; the engine asks for the next one.
        case poll(id: UInt64, maxRecords: Int, after: Duration)
        case pause([TopicPartition])
        case resume([TopicPartition])
        case seek(TopicPartition, SeekTarget)
        /// Commit these offsets; answer with ``Event/commitDone(ticket:_:)``.
        case commit(ticket: UInt64, [PartitionOffset])
        /// Read the committed offsets; answer with ``Event/committedFetched(ticket:_:)``.
        case fetchCommitted(ticket: UInt64, [TopicPartition])
        /// Answer the before-revoke step with these offsets (the consumer commits them).
        case release(revocation: UInt64, [PartitionOffset])
        /// Answer the app's call.
        case answer(call: UInt64, PullAnswer)
        case armTimer(Timer, after: Duration)
        /// Close the group consumer (leave the group); the instance is gone.
        case close
    }

    public enum Timer: Hashable, Sendable {
        case fetchDeadline(call: UInt64)
        case idle
    }

    /// What the app asked to read.
    public enum Mode: Hashable, Sendable {
        case none
        case subscribed([String])
        case assigned([TopicPartition])
    }

    /// The lifecycle (see the type's documentation).
    public enum Phase: Hashable, Sendable { case open, closing, closed }

    /// Counters for metrics, cumulative since the instance was created.
    public struct Stats: Hashable, Sendable {
        public var fetched = 0
        public var handedOut = 0
        public var commits = 0
        public var buffered = 0
        public init() {}
    }

    public let group: String
    public let name: String
    public let settings: PullConsumerSettings
    public let limits: PullConsumerLimits
    public private(set) var mode: Mode = .none
    public private(set) var phase: Phase = .open
    public private(set) var stats = Stats()

    private var partitions: [TopicPartition: PullPartition] = [:]
    /// Assigned partitions, sorted: the deterministic order of answers.
    private var order: [TopicPartition] = []
    /// Where the next answer starts taking records, so partitions take turns.
    private var cursor = 0
    private var fetches: [(call: UInt64, deadline: MeshInstant, maxBytes: Int)] = []
    private var pollOutstanding = false
    private var nextPoll: UInt64 = 1
    private var nextTicket: UInt64 = 1
    /// Commits in flight: the call that asked (nil for an automatic one) and what was committed.
    private var commits: [UInt64: (call: UInt64?, offsets: [PartitionOffset])] = [:]
    private var committedQueries: [UInt64: UInt64] = [:]
    private var paused = false
    private var lastUsed: MeshInstant
    private var closeCall: UInt64?

    public init(group: String, name: String, settings: PullConsumerSettings, limits: PullConsumerLimits, now: MeshInstant) {
        self.group = group
        self.name = name
        self.settings = settings
        self.limits = limits
        self.lastUsed = now
    }

    /// The partitions assigned, sorted.
    public var assignedPartitions: [TopicPartition] { order }

    /// Applies one event at `now` and returns what to do.
    public func handle(_ event: Event, now: MeshInstant) -> [Action] {
        // Closing or closed: the app's calls find no instance; the consumer's own events still finish.
        if phase != .open, let refused = refuseWhenGone(event) { return refused }
        var actions: [Action] = []
        switch event {
        case .started:
            actions.append(.armTimer(.idle, after: limits.idleTimeout))
        case .subscribe(let call, let topics):
            lastUsed = now
            switch mode {
            case .assigned:
                actions.append(.answer(call: call, .refused(.illegalState("subscription to topics and manual assignment are mutually exclusive"))))
            case .subscribed(let current) where current != topics:
                // Kafka's consumer would resubscribe; Confluent's proxy refuses, and so does this one:
                // delete the subscription first.
                actions.append(.answer(call: call, .refused(PullError(status: 409, code: 40901,
                    message: "Consumer cannot subscribe to the specified target because it has already subscribed to other topics (\(current.joined(separator: ", "))); delete the subscription first"))))
            case .subscribed:
                actions.append(.answer(call: call, .done))
            case .none:
                mode = .subscribed(topics)
                actions.append(.subscribe(topics))
                actions.append(.answer(call: call, .done))
            }
        case .unsubscribe(let call):
            lastUsed = now
            if case .subscribed = mode {
                mode = .none
                actions.append(.unsubscribe)
                for tp in order { remove(tp) }
            }
            actions.append(.answer(call: call, .done))
        case .assign(let call, let tps):
            lastUsed = now
            if case .subscribed = mode {
                actions.append(.answer(call: call, .refused(.illegalState("subscription to topics and manual assignment are mutually exclusive"))))
            } else {
                mode = .assigned(tps)
                let wanted = Set(tps)
                for tp in order where !wanted.contains(tp) { remove(tp) }
                for tp in tps where partitions[tp] == nil { partitions[tp] = PullPartition() }
                order = partitions.keys.sorted()
                actions.append(.assign(order))
                actions.append(.answer(call: call, .done))
            }
        case .subscription(let call):
            lastUsed = now
            if case .subscribed(let topics) = mode {
                // A pattern subscription answers with the topics it has brought so far (those assigned here).
                let named = topics.contains(where: TopicPattern.isPattern) ? Array(Set(order.map(\.topic))).sorted() : topics
                actions.append(.answer(call: call, .subscription(topics: named)))
            } else {
                actions.append(.answer(call: call, .subscription(topics: [])))
            }
        case .assignment(let call):
            lastUsed = now
            actions.append(.answer(call: call, .assignment(order)))
        case .fetch(let call, let timeout, let maxBytes):
            lastUsed = now
            fetch(call, timeout, maxBytes, now, &actions)
        case .commit(let call, let offsets):
            lastUsed = now
            commit(call, offsets, &actions)
        case .committed(let call, let tps):
            lastUsed = now
            let ticket = takeTicket()
            committedQueries[ticket] = call
            actions.append(.fetchCommitted(ticket: ticket, tps))
        case .seek(let call, let seeks):
            lastUsed = now
            seek(call, seeks, &actions)
        case .delete(let call):
            closeCall = call
            beginClose(&actions)
        case .polled(let id, let events):
            pollOutstanding = false
            for event in events { apply(event, poll: id, &actions) }
        case .revoking(let id, let revocation):
            var release: [PartitionOffset] = []
            for tp in revocation.partitions {
                guard let p = partitions[tp] else { continue }
                stats.buffered -= p.buffered.count
                p.clearBuffer()
                // ci/mutants: pull-revoke-releases-unprocessed (the next line)
                if settings.autoCommit && !revocation.lost, let handed = p.handedUpTo, handed != p.committedUpTo {
                    release.append(PartitionOffset(tp, handed))
                    p.committedUpTo = handed
                }
            }
            actions.append(.release(revocation: id, release))
        case .commitDone(let ticket, let result):
            commitDone(ticket, result, &actions)
        case .committedFetched(let ticket, let result):
            if let call = committedQueries.removeValue(forKey: ticket) {
                switch result {
                case .success(let offsets): actions.append(.answer(call: call, .committed(offsets)))
                case .failure(let error): actions.append(.answer(call: call, .refused(.kafka(error))))
                }
            }
        case .timerFired(.fetchDeadline(let call)):
            if let i = fetches.firstIndex(where: { $0.call == call }), fetches[i].deadline <= now {
                let f = fetches.remove(at: i)
                actions.append(.answer(call: call, .records(takeRecords(f.maxBytes))))
            }
        case .timerFired(.idle):
            let idleFor = now - lastUsed
            if idleFor >= limits.idleTimeout && phase == .open {
                beginClose(&actions)
            } else if phase == .open {
                actions.append(.armTimer(.idle, after: limits.idleTimeout - idleFor))
            }
        }
        if phase == .open {
            answerFetches(now, &actions)
            updatePause(&actions)
            askForPoll(&actions)
        }
        return actions
    }

    // MARK: fetching

    private func fetch(_ call: UInt64, _ timeout: Duration?, _ maxBytes: Int?, _ now: MeshInstant, _ actions: inout [Action]) {
        if case .none = mode {
            actions.append(.answer(call: call, .refused(.illegalState("the consumer is not subscribed to any topic and has no partition assigned"))))
            return
        }
        guard fetches.count < limits.maxWaitingFetches else {
            actions.append(.answer(call: call, .refused(PullError(status: 429, code: 42901,
                message: "\(limits.maxWaitingFetches) fetches already wait on this consumer instance"))))
            return
        }
        // Kafka's auto commit: a poll commits what the previous polls handed out.
        if settings.autoCommit { autoCommit(&actions) }
        let wait = min(max(timeout ?? settings.requestTimeout, .zero), limits.maxFetchTimeout)
        let bytes = min(maxBytes.map { $0 < 0 ? limits.maxFetchBytes : $0 } ?? limits.maxFetchBytes, limits.maxFetchBytes)
        fetches.append((call, now + wait, bytes))
        if wait > .zero { actions.append(.armTimer(.fetchDeadline(call: call), after: wait)) }
    }

    /// Answers waiting fetches, oldest first, while records are buffered (at least `fetch.min.bytes`
    /// of them), and fetches whose time is up.
    private func answerFetches(_ now: MeshInstant, _ actions: inout [Action]) {
        while let f = fetches.first {
            let enough = stats.buffered > 0 && bufferedBytes >= settings.fetchMinBytes
            guard enough || f.deadline <= now else { return }
            fetches.removeFirst()
            actions.append(.answer(call: f.call, .records(takeRecords(f.maxBytes))))
        }
    }

    /// Takes buffered records for one answer, up to `maxBytes` of keys and values (a first record
    /// larger than that still goes alone, so one big record cannot wedge the instance), partitions
    /// taking turns from one answer to the next.
    private func takeRecords(_ maxBytes: Int) -> [ConsumerRecord] {
        guard !order.isEmpty else { return [] }
        var out: [ConsumerRecord] = []
        var bytes = 0
        let start = cursor % order.count
        cursor = (cursor + 1) % order.count
        outer: for k in 0..<order.count {
            let tp = order[(start + k) % order.count]
            guard let p = partitions[tp], !p.buffered.isEmpty else { continue }
            var taken = 0, takenBytes = 0, full = false
            for r in p.buffered {
                let size = PullPartition.size(r)
                if !out.isEmpty && bytes + size > maxBytes { full = true; break }
                out.append(r)
                bytes += size
                takenBytes += size
                taken += 1
            }
            if taken > 0 {
                let last = p.buffered[taken - 1]
                p.buffered.removeFirst(taken)
                p.bufferedBytes -= takenBytes
                p.handedUpTo = last.offset + 1
                stats.buffered -= taken
                stats.handedOut += taken
            }
            if full { break outer }
        }
        return out
    }

    // MARK: polling

    private func apply(_ event: ConsumerEvent, poll: UInt64, _ actions: inout [Action]) {
        switch event {
        case .assigned(let tps):
            var fresh: [TopicPartition] = []
            for tp in tps where partitions[tp] == nil {
                partitions[tp] = PullPartition()
                fresh.append(tp)
            }
            order = partitions.keys.sorted()
            // A paused instance pauses what it is given too; a fresh partition's state is unknown to the client.
            if paused && !fresh.isEmpty { actions.append(.pause(fresh)) }
        case .revoked(let tps), .lost(let tps):
            for tp in tps { remove(tp) }
        case .records(let records):
            for r in records {
                guard let p = partitions[r.topicPartition], poll >= p.pollBarrier else { continue }
                // In offset order, and nothing already buffered or handed out again.
                if let last = p.buffered.last?.offset ?? p.handedUpTo.map({ $0 - 1 }), r.offset <= last { continue }
                p.take(r)
                stats.fetched += 1
                stats.buffered += 1
            }
        case .error:
            break
        }
    }

    /// Keeps one poll going while there is something to read.
    private func askForPoll(_ actions: inout [Action]) {
        guard !pollOutstanding else { return }
        if case .none = mode { return }
        let room = bufferedBytes >= limits.maxBufferedBytes ? 0 : limits.maxBufferedRecords - stats.buffered
        pollOutstanding = true
        let id = nextPoll
        nextPoll += 1
        // Full: keep polling (rebalances are served inside polls) but slowly; the partitions are paused.
        actions.append(room > 0 ? .poll(id: id, maxRecords: room, after: .zero) : .poll(id: id, maxRecords: 1, after: limits.idlePollInterval))
    }

    /// Keys and values buffered, over every partition.
    private var bufferedBytes: Int { order.reduce(0) { $0 + (partitions[$1]?.bufferedBytes ?? 0) } }

    /// Pauses every partition when the buffer is full (in records or bytes), resumes them at half.
    private func updatePause(_ actions: inout [Action]) {
        let bytes = bufferedBytes
        if !paused && (stats.buffered >= limits.maxBufferedRecords || bytes >= limits.maxBufferedBytes) && !order.isEmpty {
            paused = true
            actions.append(.pause(order))
        } else if paused && stats.buffered <= limits.maxBufferedRecords / 2 && bytes <= limits.maxBufferedBytes / 2 {
            paused = false
            if !order.isEmpty { actions.append(.resume(order)) }
        }
    }

    // MARK: committing

    private func commit(_ call: UInt64, _ given: [PartitionOffset]?, _ actions: inout [Action]) {
        var offsets: [PartitionOffset] = []
        if let given {
            for o in given {
                guard let p = partitions[o.topicPartition] else {
                    actions.append(.answer(call: call, .refused(.notAssigned(o.topicPartition, flavour: settings.flavour))))
                    return
                }
                // ci/mutants: pull-flavour-ignored (the next line)
                let stored = settings.flavour == .confluent ? o.offset + 1 : o.offset
                // ci/mutants: pull-commit-past-handed (the next line)
                guard stored >= 0, let handed = p.handedUpTo, stored <= handed else {
                    actions.append(.answer(call: call, .refused(.illegalState(
                        "offset \(o.offset) of \(o.topicPartition) is past the records this consumer returned"))))
                    return
                }
                offsets.append(PartitionOffset(o.topicPartition, stored))
            }
        } else {
            // ci/mutants: pull-empty-commit-unhanded (the next line)
            for tp in order { if let handed = partitions[tp]?.handedUpTo { offsets.append(PartitionOffset(tp, handed)) } }
        }
        guard !offsets.isEmpty else { return actions.append(.answer(call: call, .done)) }
        let ticket = takeTicket()
        commits[ticket] = (call, offsets)
        actions.append(.commit(ticket: ticket, offsets))
    }

    /// Commits what was handed out and not committed yet (no answer to anyone).
    private func autoCommit(_ actions: inout [Action]) {
        var offsets: [PartitionOffset] = []
        for tp in order {
            guard let p = partitions[tp], let handed = p.handedUpTo, handed != p.committedUpTo else { continue }
            offsets.append(PartitionOffset(tp, handed))
        }
        guard !offsets.isEmpty else { return }
        for o in offsets { partitions[o.topicPartition]?.committedUpTo = o.offset }
        let ticket = takeTicket()
        commits[ticket] = (nil, offsets)
        actions.append(.commit(ticket: ticket, offsets))
    }

    private func commitDone(_ ticket: UInt64, _ result: Result<Void, KafkaError>, _ actions: inout [Action]) {
        guard let (call, offsets) = commits.removeValue(forKey: ticket) else { return }
        switch result {
        case .success:
            stats.commits += 1
            for o in offsets { partitions[o.topicPartition]?.committedUpTo = o.offset }
            if let call { actions.append(.answer(call: call, .done)) }
        case .failure(let error):
            // An automatic commit that failed is tried again at the next fetch.
            for o in offsets where partitions[o.topicPartition]?.committedUpTo == o.offset { partitions[o.topicPartition]?.committedUpTo = nil }
            if let call { actions.append(.answer(call: call, .refused(.kafka(error)))) }
        }
        if phase == .closing && commits.isEmpty { finishClose(&actions) }
    }

    // MARK: seeking

    private func seek(_ call: UInt64, _ seeks: [PartitionSeek], _ actions: inout [Action]) {
        // All or nothing: one partition not assigned refuses the whole call.
        for s in seeks where partitions[s.topicPartition] == nil {
            return actions.append(.answer(call: call, .refused(.notAssigned(s.topicPartition, flavour: settings.flavour))))
        }
        for s in seeks {
            guard let p = partitions[s.topicPartition] else { continue }
            stats.buffered -= p.buffered.count
            p.clearBuffer()
            // The poll now under way began before the seek: its records of this partition are stale.
            p.pollBarrier = nextPoll
            p.handedUpTo = nil
            actions.append(.seek(s.topicPartition, s.target))
        }
        actions.append(.answer(call: call, .done))
    }

    // MARK: closing

    private func beginClose(_ actions: inout [Action]) {
        guard phase == .open else { return }
        phase = .closing
        for f in fetches { actions.append(.answer(call: f.call, .records([]))) }
        fetches = []
        if settings.autoCommit { autoCommit(&actions) }
        if commits.isEmpty { finishClose(&actions) }
    }

    private func finishClose(_ actions: inout [Action]) {
        phase = .closed
        actions.append(.close)
        if let call = closeCall { actions.append(.answer(call: call, .done)) }
        for (_, query) in committedQueries { actions.append(.answer(call: query, .refused(.instanceNotFound))) }
        committedQueries = [:]
    }

    /// A partition is no longer ours: what was buffered for it goes.
    private func remove(_ tp: TopicPartition) {
        if let p = partitions.removeValue(forKey: tp) { stats.buffered -= p.buffered.count }
        order = partitions.keys.sorted()
    }

    /// While closing or closed, the app's calls are answered as if the instance were unknown, and
    /// a revocation releases nothing more (nil: an event the engine still takes).
    private func refuseWhenGone(_ event: Event) -> [Action]? {
        switch event {
        case .subscribe(let call, _), .unsubscribe(let call), .assign(let call, _), .subscription(let call), .assignment(let call),
             .fetch(let call, _, _), .commit(let call, _), .committed(let call, _), .seek(let call, _), .delete(let call):
            return [.answer(call: call, .refused(.instanceNotFound))]
        case .revoking(let id, _):
            return [.release(revocation: id, [])]
        case .started, .polled, .timerFired, .commitDone, .committedFetched:
            return phase == .closed ? [] : nil
        }
    }

    private func takeTicket() -> UInt64 {
        defer { nextTicket += 1 }
        return nextTicket
    }
}

/// Where a seek moves one partition.
public struct PartitionSeek: Hashable, Sendable {
    public var topicPartition: TopicPartition
    public var target: SeekTarget
    public init(_ topicPartition: TopicPartition, _ target: SeekTarget) {
        self.topicPartition = topicPartition
        self.target = target
    }
}
