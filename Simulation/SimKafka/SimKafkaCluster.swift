import MeshCore
import MeshSimulator

/// The process on a simulated broker host. Broker state (logs, groups) lives in ``SimKafkaCluster``
/// and survives crashes, as a broker's disk does; the process only marks the broker as alive.
final class BrokerProcess: SimProcess {
    let started: (SimHost) -> Void
    init(started: @escaping (SimHost) -> Void) { self.started = started }
    func start(on host: SimHost) { started(host) }
    func receive(_ event: NetEvent, on host: SimHost) {}
}

/// A simulated Kafka cluster: brokers on simulated hosts, partitions with logs, leaders, a high
/// watermark and a log-start offset, `acks` semantics, idempotent producers, transactions with
/// `read_committed`, and a group coordinator. Clients on simulated hosts reach it through
/// ``connection(from:)``, which implements the same `MeshCore` seams as the librdkafka adapter.
///
/// Requests travel with the simulated network's latency and reachability: a request to a crashed or
/// partitioned broker, or a reply that cannot come back, ends in a `request_timed_out` with an unknown
/// outcome, which is exactly when a non-idempotent retry duplicates a record.
public final class SimKafkaCluster: @unchecked Sendable {
    public unowned let simulation: Simulation
    public let config: SimKafkaConfig
    public private(set) var brokers: [SimHost] = []
    var topics: [String: SimTopic] = [:]
    var groups: [String: SimGroup] = [:]
    var transactions: [String: SimTransaction] = [:]
    private var nextProducerId: Int64 = 1000
    private var nextMember = 1
    /// The next produce requests whose replies are lost after the write was applied.
    public var loseNextProduceReplies = 0

    public init(simulation: Simulation, brokers count: Int, config: SimKafkaConfig = SimKafkaConfig()) {
        precondition(count >= 1)
        self.simulation = simulation
        self.config = config
        for i in 0..<count {
            let host = simulation.addHost(named: "broker-\(i + 1)") { [unowned self] _ in
                BrokerProcess { [unowned self] host in if let b = brokers.firstIndex(where: { $0 === host }) { brokerStarted(b) } }
            }
            host.boot()
            brokers.append(host)
        }
        simulation.crashObservers.append { [unowned self] host in
            if let b = brokers.firstIndex(where: { $0 === host }) { brokerCrashed(b) }
        }
        simulation.schedule(after: .milliseconds(500), label: "kafka.session-check") { [unowned self] in expireMembers() }
    }

    /// The `KafkaCluster` seen by clients on `host`.
    public func connection(from host: SimHost) -> SimKafkaConnection { SimKafkaConnection(cluster: self, host: host) }

    // MARK: Topics

    /// Creates a topic with leaders spread over the brokers.
    @discardableResult
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int = 3) -> Bool {
        guard topics[name] == nil, partitions > 0 else { return false }
        let rf = max(1, min(replicationFactor, brokers.count))
        topics[name] = SimTopic(partitions: (0..<Int(partitions)).map { p in
            let replicas = (0..<rf).map { (p + $0) % brokers.count }
            var p = SimPartition(leader: replicas[0], replicas: replicas)
            p.isr = Set(replicas)
            return p
        })
        simulation.log.record(simulation.now.nanoseconds, -1, .app, Int64(partitions), 0, "kafka topic created \(name)")
        return true
    }

    func deleteTopic(_ name: String) -> Bool { topics.removeValue(forKey: name) != nil }

    func partition(_ tp: TopicPartition) -> SimPartition? {
        guard let t = topics[tp.topic], tp.partition >= 0, Int(tp.partition) < t.partitions.count else { return nil }
        return t.partitions[Int(tp.partition)]
    }

    func update(_ tp: TopicPartition, _ body: (inout SimPartition) -> Void) {
        body(&topics[tp.topic]!.partitions[Int(tp.partition)])
    }

    public func partitionCount(_ topic: String) -> Int32? { topics[topic].map { Int32($0.partitions.count) } }

    public func leader(of tp: TopicPartition) -> Int? { partition(tp)?.leader }

    // MARK: Transport

    /// Sends a request from `client` to `broker`; `handle` runs at the broker if the request arrives
    /// while it is up, and its reply comes back if it can. Otherwise `reply` gets a timeout, once.
    func request<T>(
        from client: SimHost, to broker: Int, unknownOnTimeout: Bool = true,
        _ handle: @escaping () -> Result<T, KafkaError>, reply: @escaping (Result<T, KafkaError>) -> Void
    ) {
        let incarnation = client.incarnation
        var answered = false
        func answer(_ r: Result<T, KafkaError>) {
            guard !answered, client.isUp, client.incarnation == incarnation else { return }
            answered = true
            reply(r)
        }
        let brokerHost = brokers[broker]
        let net = simulation.network!
        simulation.schedule(after: config.requestTimeout, label: "kafka.request-timeout") {
            answer(.failure(KafkaError(code: "request_timed_out", message: "no reply from broker-\(broker + 1)", retriable: true, outcomeUnknown: unknownOnTimeout)))
        }
        guard net.canReach(client.id, brokerHost.id) else { return }
        if net.loses() {  // the connection broke before the broker read the request
            simulation.coverage.hit("kafka.request-lost")
            return
        }
        simulation.schedule(after: net.sampleLatency(), label: "kafka.request") { [self] in
            guard brokerHost.isUp else { return }
            let result = handle()
            if case .success = result, T.self == RecordMetadata.self, loseNextProduceReplies > 0 {
                loseNextProduceReplies -= 1
                simulation.coverage.hit("kafka.produce-reply-lost")
                return
            }
            guard net.canReach(brokerHost.id, client.id) else { return }
            if net.loses() {  // applied, but the connection broke before the reply: an unknown outcome
                simulation.coverage.hit("kafka.reply-lost")
                return
            }
            simulation.schedule(after: net.sampleLatency(), label: "kafka.response") { answer(result) }
        }
    }

    // MARK: Leadership

    private func brokerCrashed(_ broker: Int) {
        for name in topics.keys.sorted() {
            for p in topics[name]!.partitions.indices {
                let tp = TopicPartition(name, Int32(p))
                let part = topics[name]!.partitions[p]
                if part.isr.contains(broker) && part.isr.count > 1 {
                    update(tp) { p in
                        p.isr.remove(broker)
                        p.staleEnd[broker] = p.replicatedEnd
                    }
                    simulation.coverage.hit("kafka.isr-shrink")
                }
                guard part.leader == broker else { continue }
                update(tp) { $0.electing = true }
                simulation.schedule(after: config.leaderElectionDelay, label: "kafka.election") { [self] in elect(tp) }
            }
        }
    }

    /// A restarted broker catches up on the partitions it replicates and rejoins their in-sync replicas.
    private func brokerStarted(_ broker: Int) {
        guard simulation.now > .zero else { return }
        simulation.schedule(after: config.catchUpDelay, label: "kafka.catch-up") { [self] in
            guard brokers[broker].isUp else { return }
            var waiting = false
            for name in topics.keys.sorted() {
                for p in topics[name]!.partitions.indices where topics[name]!.partitions[p].replicas.contains(broker) {
                    let tp = TopicPartition(name, Int32(p))
                    guard let part = partition(tp), !part.isr.contains(broker) else { continue }
                    // It copies from the leader: none while the partition has no live leader.
                    guard !part.electing, brokers[part.leader].isUp else { waiting = true; continue }
                    update(tp) { p in
                        p.isr.insert(broker)
                        p.staleEnd[broker] = nil
                    }
                    simulation.coverage.hit("kafka.isr-expand")
                }
            }
            if waiting { brokerStarted(broker) }
        }
    }

    private func elect(_ tp: TopicPartition) {
        guard let part = partition(tp) else { return }
        // Clean election only: a replica outside the ISR may lack acknowledged writes.
        // ci/mutants: unclean-election (the next line)
        let candidates = part.replicas.filter { brokers[$0].isUp && part.isr.contains($0) }
        guard let next = candidates.first(where: { $0 != part.leader }) ?? candidates.first else {
            simulation.coverage.hit("kafka.partition-offline")
            simulation.schedule(after: config.leaderElectionDelay, label: "kafka.election") { [self] in elect(tp) }
            return
        }
        update(tp) { p in
            // Followers only have the replicated prefix: the unreplicated tail (acks=1) is gone, and a
            // replica from outside the ISR (never elected here) would lack even more.
            let end = min(p.replicatedEnd, p.staleEnd[next] ?? p.replicatedEnd)
            let lost = p.logEnd - end
            if lost > 0 {
                p.log.removeLast(Int(lost))
                p.replicatedEnd = end
                simulation.coverage.hit("kafka.acks1-tail-lost")
            }
            p.leader = next
            p.electing = false
        }
        simulation.coverage.hit("kafka.leader-change")
        simulation.log.record(simulation.now.nanoseconds, brokers[next].id, .app, Int64(tp.partition), 0, "kafka leader \(tp)")
    }

    /// Moves leadership by hand (a preferred-leader election); the new leader must be a replica.
    public func moveLeader(_ tp: TopicPartition, to broker: Int) {
        update(tp) { $0.leader = broker }
        simulation.coverage.hit("kafka.leader-change")
    }

    // MARK: Produce

    struct ProduceRequest {
        var record: ProducerRecord
        var partition: Int32
        var producerId: Int64
        var epoch: Int32
        var sequence: Int64?
        var transactionalId: String?
        var acks: KafkaProducerConfig.Acks
        var leaderSeen: Int
    }

    func handleProduce(_ r: ProduceRequest, at broker: Int) -> Result<RecordMetadata, KafkaError> {
        let tp = TopicPartition(r.record.topic, r.partition)
        guard let part = partition(tp) else {
            return .failure(KafkaError(code: "unknown_topic_or_part", message: "\(tp) does not exist"))
        }
        guard part.leader == broker, !part.electing else {
            return .failure(KafkaError(code: "not_leader_for_partition", message: "broker-\(broker + 1) does not lead \(tp)", retriable: true))
        }
        if let id = r.transactionalId {
            guard let txn = transactions[id], txn.producerId == r.producerId, txn.epoch == r.epoch else {
                return .failure(KafkaError(code: "producer_fenced", message: "a newer producer with transactional id \(id) exists", fatal: true))
            }
        }
        if let seq = r.sequence, let last = part.lastSequence[r.producerId], seq <= last.sequence {
            simulation.coverage.hit("kafka.duplicate-discarded")
            return .success(RecordMetadata(topicPartition: tp, offset: last.offset, timestamp: r.record.timestamp ?? 0))
        }
        if r.acks == .all && part.isr.count < min(config.minInsyncReplicas, part.replicas.count) {
            simulation.coverage.hit("kafka.not-enough-replicas")
            return .failure(KafkaError(code: "not_enough_replicas", message: "\(tp) has \(part.isr.count) in-sync replicas, fewer than min.insync.replicas", retriable: true))
        }
        let now = simulation.now.nanoseconds / 1_000_000
        var offset: Int64 = 0
        update(tp) { p in
            offset = p.logEnd
            p.log.append(StoredRecord(
                offset: offset, key: r.record.key, value: r.record.value, headers: r.record.headers,
                timestamp: r.record.timestamp ?? now, producerId: r.producerId,
                txn: r.transactionalId == nil ? .none : .open))
            if let seq = r.sequence { p.lastSequence[r.producerId] = (seq, offset) }
            if r.transactionalId != nil && p.openTransactions[r.producerId] == nil { p.openTransactions[r.producerId] = offset }
            if r.acks == .all { p.replicatedEnd = p.logEnd }
            if let keep = config.retainedRecords, p.log.count > keep {
                let n = p.log.count - keep
                p.log.removeFirst(n)
                p.logStart += Int64(n)
            }
        }
        if let keep = config.retainedRecords, let p = partition(tp), p.log.count == keep, p.logStart > 0 {
            simulation.coverage.hit("kafka.retention")
        }
        if let id = r.transactionalId { transactions[id]!.partitions.insert(tp) }
        if r.acks != .all {
            simulation.schedule(after: config.replicationLag, label: "kafka.replicate") { [self] in
                guard let p = partition(tp), p.leader == broker, brokers[broker].isUp else { return }
                update(tp) { $0.replicatedEnd = max($0.replicatedEnd, min(offset + 1, $0.logEnd)) }
            }
        }
        return .success(RecordMetadata(topicPartition: tp, offset: offset, timestamp: r.record.timestamp ?? now))
    }

    // MARK: Fetch

    func fetch(_ tp: TopicPartition, from offset: Int64, max: Int, readCommitted: Bool) -> (records: [ConsumerRecord], next: Int64)? {
        guard let p = partition(tp), !p.electing, brokers[p.leader].isUp else { return nil }
        let limit = readCommitted ? p.lastStableOffset : p.highWatermark
        var out: [ConsumerRecord] = []
        var o = Swift.max(offset, p.logStart)
        while o < limit && out.count < max {
            let r = p.record(at: o)!
            if r.txn != .marker && !(readCommitted && r.txn == .aborted) {
                out.append(ConsumerRecord(topicPartition: tp, offset: r.offset, key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp))
            }
            o += 1
        }
        return (out, o)
    }

    // MARK: Transactions

    func initTransactions(_ id: String) -> (Int64, Int32) {
        if transactions[id] != nil { finishTransaction(id, commit: false) }  // a new epoch aborts what the old one left open
        let epoch = (transactions[id]?.epoch ?? -1) + 1
        let pid = transactions[id]?.producerId ?? newProducerId()
        transactions[id] = SimTransaction(producerId: pid, epoch: epoch)
        return (pid, epoch)
    }

    func newProducerId() -> Int64 {
        nextProducerId += 1
        return nextProducerId
    }

    func newMemberId(_ clientId: String) -> String {
        nextMember += 1
        return "\(clientId)-\(nextMember)"
    }

    /// Commits or aborts the open transaction of `id`: marks its records and applies (or drops) its offsets.
    func finishTransaction(_ id: String, commit: Bool) {
        guard let txn = transactions[id] else { return }
        for tp in txn.partitions.sorted() {
            update(tp) { p in
                guard let first = p.openTransactions.removeValue(forKey: txn.producerId) else { return }
                var i = max(0, Int(first - p.logStart))  // retention may have deleted its start
                while i < p.log.count {
                    if p.log[i].producerId == txn.producerId && p.log[i].txn == .open { p.log[i].txn = commit ? .committed : .aborted }
                    i += 1
                }
                // The control record ends the transaction in this partition and takes the next offset.
                p.log.append(StoredRecord(offset: p.logEnd, key: nil, value: nil, headers: [], timestamp: simulation.now.nanoseconds / 1_000_000,
                                          producerId: txn.producerId, txn: .marker))
                p.replicatedEnd = p.logEnd
            }
        }
        if commit {
            for (group, offsets) in txn.offsets { commitOffsets(group, offsets) }
        }
        transactions[id]!.partitions = []
        transactions[id]!.offsets = []
        simulation.coverage.hit(commit ? "kafka.txn-committed" : "kafka.txn-aborted")
    }

    func commitOffsets(_ group: String, _ offsets: [PartitionOffset]) {
        for o in offsets { groupState(group).committed[o.topicPartition] = o.offset }
    }

    func groupState(_ id: String) -> SimGroup {
        if let g = groups[id] { return g }
        let g = SimGroup(id: id)
        groups[id] = g
        return g
    }
}

extension SimKafkaCluster {
    /// Every readable (below the high watermark, not aborted) value of `topic`, partition by partition:
    /// what a checker compares with what producers were told.
    public func committedValues(_ topic: String) -> [String] {
        guard let t = topics[topic] else { return [] }
        return t.partitions.flatMap { p in
            p.log.prefix { $0.offset < p.highWatermark }.filter { $0.txn != .aborted && $0.txn != .marker }.map { String(decoding: $0.value ?? [], as: UTF8.self) }
        }
    }
}
