import MeshCore
import MeshSimulator

/// A consumer group at the coordinator: members, generation, assignment, committed offsets.
///
/// Rebalances are eager, like librdkafka's default assignors: when membership changes, every member
/// is told to give up its partitions (`revoked`), and no partition is assigned again until every
/// member has acknowledged by polling, or has been dropped for missing its session timeout. So a
/// revoked partition is never consumed by two members at once.
final class SimGroup {
    let id: String
    var committed: [TopicPartition: Int64] = [:]
    var generation: Int32 = 0
    var members: [Member] = []
    var rebalancing = false

    final class Member {
        let id: String
        let topics: [String]
        var assignment: [TopicPartition] = []
        var lastSeen: MeshInstant
        var sessionTimeout: Duration
        /// Events waiting for the member's next poll, in order.
        var pending: [ConsumerEvent] = []
        var acknowledged = true
        init(id: String, topics: [String], now: MeshInstant, sessionTimeout: Duration) {
            self.id = id
            self.topics = topics
            self.lastSeen = now
            self.sessionTimeout = sessionTimeout
        }
    }

    init(id: String) { self.id = id }

    func member(_ id: String) -> Member? { members.first { $0.id == id } }
}

extension SimKafkaCluster {
    func join(_ groupId: String, memberId: String, topics: [String], sessionTimeout: Duration) {
        let g = groupState(groupId)
        g.members.removeAll { $0.id == memberId }  // a retried join replaces the first
        g.members.append(SimGroup.Member(id: memberId, topics: topics, now: simulation.now, sessionTimeout: sessionTimeout))
        startRebalance(g)
    }

    func leave(_ groupId: String, memberId: String) {
        guard let g = groups[groupId], let i = g.members.firstIndex(where: { $0.id == memberId }) else { return }
        g.members.remove(at: i)
        startRebalance(g)
    }

    /// A poll from a member: refreshes its session, acknowledges a revocation, and may complete a rebalance.
    func heartbeat(_ groupId: String, memberId: String) -> (events: [ConsumerEvent], known: Bool) {
        guard let g = groups[groupId], let m = g.member(memberId) else { return ([], false) }
        m.lastSeen = simulation.now
        let events = m.pending
        m.pending.removeAll()
        if g.rebalancing && !m.acknowledged {
            m.acknowledged = true
            completeRebalanceIfReady(g)
        }
        return (events, true)
    }

    private func startRebalance(_ g: SimGroup) {
        g.generation += 1
        g.rebalancing = true
        simulation.coverage.hit("kafka.rebalance")
        for m in g.members {
            if !m.assignment.isEmpty {
                m.pending.append(.revoked(m.assignment))
                m.assignment = []
            }
            m.acknowledged = false
        }
        completeRebalanceIfReady(g)
    }

    private func completeRebalanceIfReady(_ g: SimGroup) {
        guard g.rebalancing, g.members.allSatisfy(\.acknowledged) else { return }
        g.rebalancing = false
        // Range assignment per topic over members sorted by id, as Kafka's range assignor does.
        let members = g.members.sorted { $0.id < $1.id }
        let topicNames = Set(members.flatMap(\.topics)).sorted()
        var assignment: [String: [TopicPartition]] = [:]
        for topic in topicNames {
            guard let count = partitionCount(topic) else { continue }
            let subscribers = members.filter { $0.topics.contains(topic) }
            guard !subscribers.isEmpty else { continue }
            let per = Int(count) / subscribers.count, extra = Int(count) % subscribers.count
            var next = 0
            for (i, m) in subscribers.enumerated() {
                let n = per + (i < extra ? 1 : 0)
                assignment[m.id, default: []] += (next..<next + n).map { TopicPartition(topic, Int32($0)) }
                next += n
            }
        }
        for m in g.members {
            m.assignment = assignment[m.id] ?? []
            m.pending.append(.assigned(m.assignment))
        }
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
