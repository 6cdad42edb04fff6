import MeshCore
import MeshSimulator

/// A consumer group at the coordinator: members, generation, assignment, committed offsets.
///
/// Both rebalance protocols are modelled, as librdkafka runs them:
/// - **Eager** (every member uses it): when membership changes, every member is told to give up all
///   its partitions (`revoked`), and nothing is assigned again until every member has finished its
///   revocation (run its before-revoke step and rejoined) or been dropped for missing its session
///   timeout. Then the range assignment is handed out.
/// - **Cooperative** (every member asks for it): the target assignment is computed at once (sticky:
///   members keep what they own up to their share); only partitions that move are revoked from
///   their owners, and each is assigned to its new owner once the old owner finished revoking it.
///   Members keep consuming what they retain throughout.
///
/// A partition is never held (assigned, or revoked but not yet released) by two members at once.
/// Generations: whenever the coordinator hands a member new events, the member moves to the group's
/// current generation, and it learns that generation with the events; a commit carrying any other
/// generation is refused (`illegal_generation`), as Kafka refuses a zombie's commits.
final class SimGroup {
    let id: String
    var committed: [TopicPartition: Int64] = [:]
    var generation: Int32 = 0
    var members: [Member] = []
    /// Eager only: waiting for members to finish revoking and rejoin.
    var rebalancing = false
    /// Cooperative only: the assignment being moved towards.
    var target: [String: [TopicPartition]] = [:]

    final class Member {
        let id: String
        let topics: [String]
        let cooperative: Bool
        var assignment: [TopicPartition] = []
        /// Revoked but not yet released by the member's before-revoke step: still its own.
        var revoking: [TopicPartition] = []
        var generation: Int32 = 0
        var lastSeen: MeshInstant
        var sessionTimeout: Duration
        /// Events not yet acknowledged by the member, in order, numbered: a heartbeat reply can be
        /// lost, so an event is dropped only when a later heartbeat says it arrived.
        var pending: [(seq: Int, event: ConsumerEvent)] = []
        var nextSeq = 1
        var acknowledged = true
        init(id: String, topics: [String], cooperative: Bool, now: MeshInstant, sessionTimeout: Duration) {
            self.id = id
            self.topics = topics
            self.cooperative = cooperative
            self.lastSeen = now
            self.sessionTimeout = sessionTimeout
        }
    }

    init(id: String) { self.id = id }

    func member(_ id: String) -> Member? { members.first { $0.id == id } }

    /// Cooperative when every member asks for it (Kafka picks a protocol all members support).
    var cooperative: Bool { !members.isEmpty && members.allSatisfy(\.cooperative) }

    /// Queues events for a member, which moves to the group's current generation with them.
    func tell(_ m: Member, _ event: ConsumerEvent) {
        m.pending.append((m.nextSeq, event))
        m.nextSeq += 1
        m.generation = generation
    }

    /// Who holds `tp` now (assigned or still revoking), if anyone.
    func holder(of tp: TopicPartition) -> Member? {
        members.first { $0.assignment.contains(tp) || $0.revoking.contains(tp) }
    }
}

/// A heartbeat's answer: the member's unacknowledged events (numbered), and the generation they
/// belong to.
struct SimHeartbeat {
    var events: [(seq: Int, event: ConsumerEvent)]
    var generation: Int32
}

extension SimKafkaCluster {
    func join(_ groupId: String, memberId: String, topics: [String], cooperative: Bool, sessionTimeout: Duration) {
        let g = groupState(groupId)
        if let old = g.member(memberId) { g.members.removeAll { $0 === old } }  // a retried join replaces the first
        g.members.append(SimGroup.Member(id: memberId, topics: topics, cooperative: cooperative, now: simulation.now, sessionTimeout: sessionTimeout))
        startRebalance(g)
    }

    func leave(_ groupId: String, memberId: String) {
        guard let g = groups[groupId], let i = g.members.firstIndex(where: { $0.id == memberId }) else { return }
        g.members.remove(at: i)
        startRebalance(g)
    }

    /// A poll from a member that has received its events up to `receivedThrough`: refreshes its
    /// session and hands over the events after that. A member with nothing left to revoke has
    /// rejoined, which may complete an eager rebalance.
    func heartbeat(_ groupId: String, memberId: String, receivedThrough: Int) -> SimHeartbeat? {
        guard let g = groups[groupId], let m = g.member(memberId) else { return nil }
        m.lastSeen = simulation.now
        m.pending.removeAll { $0.seq <= receivedThrough }
        let beat = SimHeartbeat(events: m.pending, generation: m.generation)
        if g.rebalancing && !m.acknowledged && m.revoking.isEmpty {
            m.acknowledged = true
            completeRebalanceIfReady(g)
        }
        return beat
    }

    /// The member's before-revoke step is done: the revoked partitions are released.
    func finishRevocation(_ groupId: String, memberId: String) {
        guard let g = groups[groupId], let m = g.member(memberId) else { return }
        m.lastSeen = simulation.now
        m.revoking = []
        if g.cooperative {
            assignFree(g)
        } else {
            m.acknowledged = true
            completeRebalanceIfReady(g)
        }
    }

    /// Whether a commit from `memberId` made at `generation` is accepted.
    func commitAllowed(_ groupId: String, memberId: String, generation: Int32) -> KafkaError? {
        let g = groupState(groupId)
        guard let m = g.member(memberId) else { return KafkaError(code: "unknown_member_id", message: "not a member of \(groupId)") }
        guard m.generation == generation else {
            return KafkaError(code: "illegal_generation", message: "generation \(generation) of \(groupId) is over (now \(m.generation))")
        }
        return nil
    }

    private func startRebalance(_ g: SimGroup) {
        g.generation += 1
        simulation.coverage.hit("kafka.rebalance")
        if g.cooperative {
            simulation.coverage.hit("kafka.rebalance-cooperative")
            g.rebalancing = false
            g.target = stickyAssignment(g)
            for m in g.members {
                let moving = m.assignment.filter { !(g.target[m.id] ?? []).contains($0) }
                guard !moving.isEmpty else { continue }
                m.assignment.removeAll { moving.contains($0) }
                m.revoking += moving
                g.tell(m, .revoked(moving))
            }
            assignFree(g)
            return
        }
        g.rebalancing = true
        for m in g.members {
            if !m.assignment.isEmpty {
                m.revoking += m.assignment
                g.tell(m, .revoked(m.assignment))
                m.assignment = []
            }
            m.acknowledged = false
        }
        completeRebalanceIfReady(g)
    }

    /// Cooperative: hands each member the target partitions nobody else holds any more.
    private func assignFree(_ g: SimGroup) {
        var changed = false
        for m in g.members.sorted(by: { $0.id < $1.id }) {
            let add = (g.target[m.id] ?? []).filter { tp in !m.assignment.contains(tp) && g.holder(of: tp) == nil }
            guard !add.isEmpty else { continue }
            if !changed { g.generation += 1; changed = true }
            m.assignment = (m.assignment + add).sorted()
            g.tell(m, .assigned(add))
        }
    }

    private func completeRebalanceIfReady(_ g: SimGroup) {
        guard g.rebalancing, g.members.allSatisfy({ $0.acknowledged && $0.revoking.isEmpty }) else { return }
        g.rebalancing = false
        g.generation += 1
        let assignment = rangeAssignment(g)
        for m in g.members {
            m.assignment = assignment[m.id] ?? []
            g.tell(m, .assigned(m.assignment))
        }
    }

    /// Each subscribed topic of the group with its partition count and its subscribers (sorted by
    /// id) paired with their even share of the partitions (the first `count % n` get one more).
    private func topicShares(_ g: SimGroup) -> [(topic: String, count: Int32, shares: [(member: SimGroup.Member, share: Int)])] {
        let members = g.members.sorted { $0.id < $1.id }
        return Set(members.flatMap { expand($0.topics) }).sorted().compactMap { topic in
            guard let count = partitionCount(topic) else { return nil }
            let subscribers = members.filter { m in m.topics.contains { Self.subscribes($0, topic) } }
            guard !subscribers.isEmpty else { return nil }
            let per = Int(count) / subscribers.count, extra = Int(count) % subscribers.count
            return (topic, count, subscribers.enumerated().map { ($1, per + ($0 < extra ? 1 : 0)) })
        }
    }

    /// The topics a member's subscription names: its topics, and, for an entry starting with `^`
    /// (librdkafka's convention), every existing topic the regular expression matches.
    private func expand(_ entries: [String]) -> [String] {
        entries.flatMap { e in e.hasPrefix("^") ? topics.keys.filter { Self.subscribes(e, $0) } : [e] }
    }

    /// Whether a subscription entry names `topic`: equal, or a `^` pattern found in it (internal
    /// `__` topics never match a pattern, as in Kafka's consumer).
    static func subscribes(_ entry: String, _ topic: String) -> Bool {
        guard entry.hasPrefix("^") else { return entry == topic }
        guard !topic.hasPrefix("__"), let regex = try? Regex(entry) else { return false }
        return (try? regex.firstMatch(in: topic)) != nil
    }

    /// Range assignment per topic over members sorted by id, as Kafka's range assignor does.
    private func rangeAssignment(_ g: SimGroup) -> [String: [TopicPartition]] {
        var assignment: [String: [TopicPartition]] = [:]
        for (topic, _, shares) in topicShares(g) {
            var next = 0
            for (m, n) in shares {
                assignment[m.id, default: []] += (next..<next + n).map { TopicPartition(topic, Int32($0)) }
                next += n
            }
        }
        return assignment
    }

    /// Sticky assignment per topic: each member keeps what it holds up to its share; the rest goes to
    /// members below their share, in id order.
    private func stickyAssignment(_ g: SimGroup) -> [String: [TopicPartition]] {
        var assignment: [String: [TopicPartition]] = [:]
        for (topic, count, shares) in topicShares(g) {
            var taken = Set<TopicPartition>()
            for (m, share) in shares {
                let kept = m.assignment.filter { $0.topic == topic }.sorted().prefix(share)
                assignment[m.id, default: []] += kept
                taken.formUnion(kept)
            }
            var free = (0..<count).map { TopicPartition(topic, $0) }.filter { !taken.contains($0) }[...]
            for (m, share) in shares {
                let have = assignment[m.id, default: []].filter { $0.topic == topic }.count
                let n = min(share - have, free.count)
                assignment[m.id, default: []] += free.prefix(n)
                free = free.dropFirst(n)
            }
        }
        return assignment.mapValues { $0.sorted() }
    }

    /// Drops members whose session expired (no poll reached the coordinator in time).
    func expireMembers() {
        for id in groups.keys.sorted() {
            let g = groups[id]!
            let expired = g.members.filter { simulation.now - $0.lastSeen > $0.sessionTimeout }
            for m in expired {
                simulation.coverage.hit("kafka.session-expired")
                leave(id, memberId: m.id)
            }
        }
        simulation.schedule(after: .milliseconds(500), label: "kafka.session-check") { [unowned self] in expireMembers() }
    }

    /// Which broker coordinates `groupId`: a stable hash over the brokers, moving to the next live one
    /// when it is down (coordinator failover).
    func coordinator(of groupId: String) -> Int {
        let first = Int(StableHash.fnv1a(groupId) % UInt64(brokers.count))
        for i in 0..<brokers.count where brokers[(first + i) % brokers.count].isUp { return (first + i) % brokers.count }
        return first
    }
}

