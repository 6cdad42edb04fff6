import MeshCore
import MeshSimulator

/// A producer on a simulated host: one request in flight per partition (so retries keep order),
/// retries with backoff until the delivery timeout, idempotent sequence numbers, transactions.
final class SimKafkaProducer: KafkaProducer, @unchecked Sendable {
    private let cluster: SimKafkaCluster
    private let host: SimHost
    private let config: KafkaProducerConfig
    private var producerId: Int64
    private var epoch: Int32 = 0
    private var nextSequence: [TopicPartition: Int64] = [:]
    private var queues: [TopicPartition: [Pending]] = [:]
    private var inFlight: Set<TopicPartition> = []
    private var sticky: Int32 = 0
    private var inTransaction = false
    private var fenced = false

    private struct Pending {
        var request: SimKafkaCluster.ProduceRequest
        var deadline: MeshInstant
        var completion: @Sendable (Result<RecordMetadata, KafkaError>) -> Void
        var outcomeUnknown = false
    }

    init(cluster: SimKafkaCluster, host: SimHost, config: KafkaProducerConfig) {
        self.cluster = cluster
        self.host = host
        self.config = config
        self.producerId = cluster.newProducerId()
    }

    private var sim: Simulation { cluster.simulation }

    func send(_ record: ProducerRecord, _ completion: @escaping @Sendable (Result<RecordMetadata, KafkaError>) -> Void) {
        sim.assertConfined()
        guard !fenced else { return completion(.failure(KafkaError(code: "producer_fenced", message: "this producer was fenced", fatal: true))) }
        guard let count = cluster.partitionCount(record.topic) ?? autoCreate(record.topic) else {
            return completion(.failure(KafkaError(code: "unknown_topic_or_part", message: "topic \(record.topic) does not exist")))
        }
        let partition: Int32
        if let p = record.partition {
            guard p >= 0 && p < count else {
                return completion(.failure(KafkaError(code: "unknown_partition", message: "\(record.topic) has no partition \(p)")))
            }
            partition = p
        } else if let key = record.key {
            partition = Int32(StableHash.fnv1a(String(decoding: key, as: UTF8.self)) % UInt64(count))
        } else {
            sticky = (sticky + 1) % count
            partition = sticky
        }
        let tp = TopicPartition(record.topic, partition)
        if config.transactionalId != nil && !inTransaction {
            return completion(.failure(KafkaError(code: "state", message: "transactional producer used outside a transaction")))
        }
        var sequence: Int64?
        if config.idempotent {
            sequence = nextSequence[tp, default: 0]
            nextSequence[tp] = sequence! + 1
        }
        let request = SimKafkaCluster.ProduceRequest(
            record: record, partition: partition, producerId: producerId, epoch: epoch, sequence: sequence,
            transactionalId: config.transactionalId, acks: config.idempotent ? .all : config.acks, leaderSeen: 0)
        queues[tp, default: []].append(Pending(request: request, deadline: sim.now + config.deliveryTimeout, completion: completion))
        pump(tp)
    }

    private func autoCreate(_ topic: String) -> Int32? {
        guard cluster.config.autoCreatePartitions > 0 else { return nil }
        cluster.createTopic(topic, partitions: cluster.config.autoCreatePartitions)
        return cluster.config.autoCreatePartitions
    }

    /// Partition leaders from this client's last metadata refresh.
    private var knownLeaders: [TopicPartition: Int] = [:]

    private func pump(_ tp: TopicPartition) {
        guard !inFlight.contains(tp), let head = queues[tp]?.first else { return }
        inFlight.insert(tp)
        // The leader as this client's metadata last said: stale after a move until an error refreshes it.
        let leader = knownLeaders[tp] ?? cluster.leader(of: tp) ?? 0
        knownLeaders[tp] = leader
        cluster.request(from: host, to: leader, { [cluster] in cluster.handleProduce(head.request, at: leader) }) { [self] result in
            inFlight.remove(tp)
            if case .failure(let e) = result, e.code == "not_leader_for_partition" || e.code == "request_timed_out" {
                if e.code == "not_leader_for_partition" { sim.coverage.hit("kafka.stale-metadata") }
                knownLeaders[tp] = nil  // refresh the metadata before the retry
            }
            guard var pending = queues[tp]?.first else { return }
            switch result {
            case .success(let metadata):
                queues[tp]!.removeFirst()
                pending.completion(.success(metadata))
            case .failure(let error) where error.retriable && sim.now + cluster.config.retryBackoff < pending.deadline:
                pending.outcomeUnknown = pending.outcomeUnknown || error.outcomeUnknown
                queues[tp]![0] = pending
                sim.coverage.hit(error.outcomeUnknown ? "kafka.produce-retry-unknown-outcome" : "kafka.produce-retry")
                inFlight.insert(tp)
                sim.schedule(after: cluster.config.retryBackoff, label: "kafka.produce-retry") { [self] in
                    inFlight.remove(tp)
                    pump(tp)
                }
                return
            case .failure(var error):
                queues[tp]!.removeFirst()
                if error.fatal { fenced = true }
                error.outcomeUnknown = error.outcomeUnknown || pending.outcomeUnknown
                pending.completion(.failure(error))
            }
            pump(tp)
        }
    }

    private var pendingCount: Int { queues.values.reduce(0) { $0 + $1.count } }

    func flush(timeout: Duration, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        let deadline = sim.now + timeout
        func check() {
            if pendingCount == 0 { return completion(.success(())) }
            if sim.now >= deadline { return completion(.failure(KafkaError(code: "timed_out", message: "flush timed out", retriable: true))) }
            sim.schedule(after: .milliseconds(5), label: "kafka.flush-check") { check() }
        }
        check()
    }

    // MARK: Transactions (the coordinator is reached like any broker)

    private func coordinatorCall(_ what: String, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void, _ body: @escaping () -> Result<Void, KafkaError>) {
        guard let id = config.transactionalId else {
            return completion(.failure(KafkaError(code: "not_transactional", message: "\(what) needs a transactionalId")))
        }
        cluster.request(from: host, to: cluster.coordinator(of: id), unknownOnTimeout: false, body) { completion($0) }
    }

    func initTransactions(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        coordinatorCall("initTransactions", completion) { [self] in
            (producerId, epoch) = cluster.initTransactions(config.transactionalId!)
            nextSequence = [:]
            return .success(())
        }
    }

    func beginTransaction() throws(KafkaError) {
        guard config.transactionalId != nil else { throw KafkaError(code: "not_transactional", message: "beginTransaction needs a transactionalId") }
        guard !inTransaction else { throw KafkaError(code: "state", message: "a transaction is already open") }
        inTransaction = true
    }

    func sendOffsetsToTransaction(_ offsets: [PartitionOffset], group: ConsumerGroupMetadata, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        coordinatorCall("sendOffsetsToTransaction", completion) { [self] in
            let id = config.transactionalId!
            guard cluster.transactions[id]?.epoch == epoch else { return .failure(KafkaError(code: "producer_fenced", message: "fenced", fatal: true)) }
            cluster.transactions[id]!.offsets.append((group.groupId, offsets))
            return .success(())
        }
    }

    func commitTransaction(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) { end(commit: true, completion) }

    func abortTransaction(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) { end(commit: false, completion) }

    private func end(commit: Bool, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        // Everything sent in the transaction must be acknowledged first (as librdkafka flushes).
        flush(timeout: config.deliveryTimeout) { [self] flushed in
            if case .failure(let e) = flushed, commit { return completion(.failure(e)) }
            coordinatorCall(commit ? "commitTransaction" : "abortTransaction", { [self] r in
                if case .success = r { inTransaction = false }
                completion(r)
            }) { [self] in
                let id = config.transactionalId!
                guard cluster.transactions[id]?.epoch == epoch else { return .failure(KafkaError(code: "producer_fenced", message: "fenced", fatal: true)) }
                cluster.finishTransaction(id, commit: commit)
                return .success(())
            }
        }
    }
}
