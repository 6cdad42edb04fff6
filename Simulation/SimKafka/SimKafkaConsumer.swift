import MeshCore
import MeshSimulator

/// A group consumer on a simulated host. Each poll is a heartbeat to the group coordinator and a
/// fetch from the partition leaders, both over the simulated network.
final class SimKafkaConsumer: KafkaGroupConsumer, @unchecked Sendable {
    let groupId: String
    private let cluster: SimKafkaCluster
    private let host: SimHost
    private let config: KafkaConsumerConfig
    private var memberId: String
    private var subscribed = false
    /// Our join request reached the coordinator; until then polls do not heartbeat.
    private var joined = false
    private var topics: [String] = []
    private var assignment: [TopicPartition] = []
    private var positions: [TopicPartition: Int64] = [:]
    private var paused: Set<TopicPartition> = []
    private var manualEvents: [ConsumerEvent] = []
    private var closed = false
    /// The generation learned from the coordinator with the last events; commits carry it.
    private var generation: Int32 = 0
    private var revocationHandler: RevocationHandler?
    /// The coordinator's events received so far (by number), so a repeated one is not applied twice.
    private var receivedThrough = 0

    init(cluster: SimKafkaCluster, host: SimHost, config: KafkaConsumerConfig) {
        self.cluster = cluster
        self.host = host
        self.config = config
        self.groupId = config.groupId
        self.memberId = cluster.newMemberId(config.clientId)
    }

    private var sim: Simulation { cluster.simulation }

    func onRevoke(_ handler: @escaping RevocationHandler) {
        sim.assertConfined()
        revocationHandler = handler
    }

    func subscribe(_ topics: [String]) throws(KafkaError) {
        sim.assertConfined()
        guard !subscribed else { throw KafkaError(code: "state", message: "already subscribed") }
        subscribed = true
        self.topics = topics.sorted()
        join()
    }

    /// Sends a join request, again after a timeout, until the coordinator has it.
    private func join() {
        let member = memberId
        cluster.request(from: host, to: cluster.coordinator(of: groupId), unknownOnTimeout: false, { [self] () -> Result<Void, KafkaError> in
            cluster.join(groupId, memberId: member, topics: topics, cooperative: config.rebalanceProtocol == .cooperative, sessionTimeout: config.sessionTimeout)
            return .success(())
        }, reply: { [self] result in
            guard member == memberId, !closed else { return }
            if case .success = result { joined = true } else { join() }
        })
    }

    func assign(_ partitions: [TopicPartition]) throws(KafkaError) {
        assignment = partitions.sorted()
        positions = [:]
        manualEvents.append(.assigned(assignment))
    }

    func poll(maxRecords: Int, timeout: Duration, _ handler: @escaping @Sendable ([ConsumerEvent]) -> Void) {
        sim.assertConfined()
        guard !closed else { return handler([]) }
        let deadline = sim.now + timeout
        if !manualEvents.isEmpty {
            let events = manualEvents
            manualEvents.removeAll()
            return handler(events)
        }
        guard subscribed else { return fetchLoop(maxRecords, deadline, [], handler) }
        guard joined else {
            // Still joining: nothing is assigned yet; come back when the poll's time is up.
            sim.schedule(after: timeout, label: "kafka.poll-timeout") { handler([]) }
            return
        }
        cluster.request(from: host, to: cluster.coordinator(of: groupId), unknownOnTimeout: false, { [self] () -> Result<SimHeartbeat, KafkaError> in
            guard let beat = cluster.heartbeat(groupId, memberId: memberId, receivedThrough: receivedThrough) else {
                return .failure(KafkaError(code: "unknown_member_id", message: "\(memberId) is no longer in \(groupId)"))
            }
            return .success(beat)
        }, reply: { [self] result in
            switch result {
            case .success(let beat):
                generation = beat.generation
                let fresh = beat.events.filter { $0.seq > receivedThrough }
                receivedThrough = beat.events.last?.seq ?? receivedThrough
                if fresh.isEmpty { return fetchLoop(maxRecords, deadline, [], handler) }
                // Hand assignment changes over promptly, each revocation after its before-revoke step.
                deliverRebalance(fresh.map(\.event)[...], handler)
            case .failure(let e) where e.code == "unknown_member_id":
                // Our session expired: what we had is lost (another member may own it already);
                // rejoin under a new member id.
                let lost = assignment
                assignment = []
                for tp in lost { positions[tp] = nil }
                memberId = cluster.newMemberId(config.clientId)
                receivedThrough = 0
                joined = false
                join()
                if !lost.isEmpty { revocationHandler?(PartitionRevocation(partitions: lost, lost: true)) { _ in } }
                handler(lost.isEmpty ? [.error(e)] : [.lost(lost), .error(e)])
            case .failure(let e):
                handler([.error(e)])
            }
        })
    }

    /// Applies rebalance events in order; a revocation first runs the before-revoke step (bounded by
    /// the revocation timeout), commits its offsets while the partitions are still ours, and tells
    /// the coordinator they are released. Then the events go to the poll's handler.
    private func deliverRebalance(_ events: ArraySlice<ConsumerEvent>, _ handler: @escaping @Sendable ([ConsumerEvent]) -> Void, _ done: [ConsumerEvent] = []) {
        guard let event = events.first else { return handler(done) }
        let rest = events.dropFirst()
        guard case .revoked(let tps) = event else {
            apply(event)
            return deliverRebalance(rest, handler, done + [event])
        }
        let member = memberId
        revokeStep(tps) { [self] extra in
            apply(event)
            release(member) { [self] in
                guard !closed || member == memberId else { return }
                deliverRebalance(rest, handler, done + extra + [event])
            }
        }
    }

    /// The before-revoke step for `tps`: asks the handler (at most the revocation timeout), commits
    /// what it returned, and continues with any error to report before the revocation.
    private func revokeStep(_ tps: [TopicPartition], _ then: @escaping ([ConsumerEvent]) -> Void) {
        guard let revocationHandler else { return then([]) }
        sim.coverage.hit("kafka.before-revoke")
        var answered = false
        let incarnation = host.incarnation
        let finish: ([PartitionOffset]?) -> Void = { [self] offsets in
            guard !answered, host.isUp, host.incarnation == incarnation else { return }
            answered = true
            let wanted = (offsets ?? []).filter { tps.contains($0.topicPartition) }
            if offsets == nil { sim.coverage.hit("kafka.before-revoke-timeout") }
            guard !wanted.isEmpty else { return then([]) }
            let next = SimThreadBound(then)
            commit(wanted) { result in
                let then = next.value
                if case .failure(let e) = result {
                    then([.error(KafkaError(code: e.code, message: "commit before revocation: \(e.message)", retriable: e.retriable))])
                } else {
                    then([])
                }
            }
        }
        sim.schedule(after: config.revocationTimeout, label: "kafka.revocation-timeout") { finish(nil) }
        let bound = SimThreadBound(finish)
        revocationHandler(PartitionRevocation(partitions: tps, lost: false)) { offsets in bound.value(offsets) }
    }

    /// Tells the coordinator the revoked partitions are released, again after a timeout, until it
    /// has heard (or we are no longer that member).
    private func release(_ member: String, _ then: @escaping () -> Void) {
        cluster.request(from: host, to: cluster.coordinator(of: groupId), unknownOnTimeout: false, { [self] () -> Result<Void, KafkaError> in
            cluster.finishRevocation(groupId, memberId: member)
            return .success(())
        }, reply: { [self] result in
            // A member that rejoined under a new id has nothing left to release: carry on (stopping
            // here would leave the poll that is waiting for this rebalance unanswered forever).
            guard member == memberId else { return then() }
            if case .success = result { then() } else { release(member, then) }
        })
    }

    private func apply(_ event: ConsumerEvent) {
        switch event {
        case .assigned(let tps):
            assignment = Array(Set(assignment).union(tps)).sorted()
            for tp in tps where positions[tp] == nil {
                positions[tp] = cluster.groupState(groupId).committed[tp]
            }
        case .revoked(let tps), .lost(let tps):
            assignment.removeAll { tps.contains($0) }
            for tp in tps { positions[tp] = nil }
        default:
            break
        }
    }

    /// Fetches from every assigned, unpaused partition whose leader is reachable; waits
    /// `fetchWait` and tries again while nothing is there and time is left.
    /// Partition leaders from this client's last metadata refresh.
    private var knownLeaders: [TopicPartition: Int] = [:]

    private func fetchLoop(_ max: Int, _ deadline: MeshInstant, _ sofar: [ConsumerRecord], _ handler: @escaping @Sendable ([ConsumerEvent]) -> Void) {
        var records: [ConsumerRecord] = []
        var errors: [ConsumerEvent] = []
        for tp in assignment where !paused.contains(tp) && records.count < max {
            guard let part = cluster.partition(tp) else { continue }
            // Fetches go to the leader this client's metadata names; a moved leader answers
            // not-leader and the client refreshes before its next fetch.
            let known = knownLeaders[tp] ?? part.leader
            guard known == part.leader else {
                knownLeaders[tp] = nil
                sim.coverage.hit("kafka.stale-metadata")
                continue
            }
            knownLeaders[tp] = known
            guard sim.network.canReach(host.id, cluster.brokers[part.leader].id) else { continue }
            let start = positions[tp] ?? resetPosition(tp)
            positions[tp] = start
            guard let (batch, next) = cluster.fetch(tp, from: start, max: max - records.count, readCommitted: config.isolation == .readCommitted) else { continue }
            // The response cannot come back (a one-way partition) or the connection broke before it
            // did: nothing arrives and the position stays, so the next fetch asks for the same records.
            if !batch.isEmpty && (!sim.network.canReach(cluster.brokers[part.leader].id, host.id) || sim.network.loses()) {
                sim.coverage.hit("kafka.fetch-lost")
                continue
            }
            if start < part.logStart {
                errors.append(.error(KafkaError(code: "offset_out_of_range", message: "\(tp) position \(start) was deleted; reset to \(part.logStart)")))
            }
            records += batch
            positions[tp] = next
        }
        let latency = sim.network.sampleLatency() + sim.network.sampleLatency()
        if records.isEmpty && errors.isEmpty && sim.now + cluster.config.fetchWait < deadline {
            sim.schedule(after: cluster.config.fetchWait, label: "kafka.fetch-wait") { [self] in
                guard !closed, host.isUp else { return }
                fetchLoop(max, deadline, sofar, handler)
            }
            return
        }
        let incarnation = host.incarnation
        sim.schedule(after: latency, label: "kafka.deliver") { [host] in
            guard host.isUp, host.incarnation == incarnation else { return }
            handler(errors + (records.isEmpty ? [] : [.records(records)]))
        }
    }

    private func resetPosition(_ tp: TopicPartition) -> Int64 {
        guard let p = cluster.partition(tp) else { return 0 }
        if let c = cluster.groupState(groupId).committed[tp] { return c }
        return config.resetPolicy == .earliest ? p.logStart : (config.isolation == .readCommitted ? p.lastStableOffset : p.highWatermark)
    }

    func commit(_ offsets: [PartitionOffset], _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        let (member, generation) = (memberId, self.generation)
        cluster.request(from: host, to: cluster.coordinator(of: groupId), unknownOnTimeout: true, { [self] () -> Result<Void, KafkaError> in
            if subscribed, let refused = cluster.commitAllowed(groupId, memberId: member, generation: generation) {
                return .failure(refused)
            }
            cluster.commitOffsets(groupId, offsets)
            return .success(())
        }, reply: completion)
    }

    func committed(_ partitions: [TopicPartition], _ completion: @escaping @Sendable (Result<[PartitionOffset], KafkaError>) -> Void) {
        cluster.request(from: host, to: cluster.coordinator(of: groupId), unknownOnTimeout: false, { [self] () -> Result<[PartitionOffset], KafkaError> in
            let c = cluster.groupState(groupId).committed
            return .success(partitions.sorted().compactMap { tp in c[tp].map { PartitionOffset(tp, $0) } })
        }, reply: completion)
    }

    func pause(_ partitions: [TopicPartition]) { paused.formUnion(partitions) }

    func resume(_ partitions: [TopicPartition]) { paused.subtract(partitions) }

    func seek(_ partition: TopicPartition, to target: SeekTarget) throws(KafkaError) {
        guard assignment.contains(partition), let p = cluster.partition(partition) else {
            throw KafkaError(code: "state", message: "\(partition) is not assigned")
        }
        switch target {
        case .offset(let o): positions[partition] = o
        case .beginning: positions[partition] = p.logStart
        case .end: positions[partition] = config.isolation == .readCommitted ? p.lastStableOffset : p.highWatermark
        }
    }

    func position(_ partition: TopicPartition) -> Int64? { positions[partition] }

    func groupMetadata() -> ConsumerGroupMetadata {
        ConsumerGroupMetadata(groupId: groupId, generation: generation, memberId: memberId)
    }

    /// Like librdkafka's close: the before-revoke step runs for what is still assigned (and its
    /// offsets are committed), then the member leaves the group.
    func close(_ completion: @escaping @Sendable () -> Void) {
        guard !closed else { return completion() }
        closed = true
        guard subscribed else { return completion() }
        let leave = { [self] in
            cluster.request(from: host, to: cluster.coordinator(of: groupId), unknownOnTimeout: false, { [self] () -> Result<Void, KafkaError> in
                cluster.leave(groupId, memberId: memberId)
                return .success(())
            }, reply: { _ in completion() })
        }
        guard !assignment.isEmpty else { return leave() }
        let held = assignment
        revokeStep(held) { [self] _ in
            apply(.revoked(held))
            leave()
        }
    }
}
