import MeshCore
import MeshSimulator

/// The simulated cluster as seen from one client host: the `KafkaCluster` seam for simulated code.
public final class SimKafkaConnection: KafkaCluster, @unchecked Sendable {
    public let cluster: SimKafkaCluster
    public let host: SimHost

    init(cluster: SimKafkaCluster, host: SimHost) {
        self.cluster = cluster
        self.host = host
    }

    public func makeProducer(_ config: KafkaProducerConfig) throws(KafkaError) -> any KafkaProducer {
        SimKafkaProducer(cluster: cluster, host: host, config: config)
    }

    public func makeConsumer(_ config: KafkaConsumerConfig) throws(KafkaError) -> any KafkaGroupConsumer {
        SimKafkaConsumer(cluster: cluster, host: host, config: config)
    }

    public func makeAdmin() throws(KafkaError) -> any KafkaAdmin { SimKafkaAdmin(cluster: cluster, host: host) }
}

/// Admin requests go to the first live broker (the "controller").
final class SimKafkaAdmin: KafkaAdmin, @unchecked Sendable {
    private let cluster: SimKafkaCluster
    private let host: SimHost

    init(cluster: SimKafkaCluster, host: SimHost) {
        self.cluster = cluster
        self.host = host
    }

    private func call<T>(_ body: @escaping () -> Result<T, KafkaError>, _ completion: @escaping @Sendable (Result<T, KafkaError>) -> Void) {
        let controller = cluster.brokers.firstIndex { $0.isUp } ?? 0
        cluster.request(from: host, to: controller, unknownOnTimeout: false, body, reply: completion)
    }

    func createTopic(_ name: String, partitions: Int32, replicationFactor: Int16, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        call({ [cluster] in
            cluster.createTopic(name, partitions: partitions, replicationFactor: Int(replicationFactor))
                ? .success(()) : .failure(KafkaError(code: "topic_already_exists", message: "topic \(name) already exists"))
        }, completion)
    }

    func deleteTopic(_ name: String, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        call({ [cluster] in
            cluster.deleteTopic(name) ? .success(()) : .failure(KafkaError(code: "unknown_topic_or_part", message: "topic \(name) does not exist"))
        }, completion)
    }

    func listTopics(_ completion: @escaping @Sendable (Result<[TopicDescription], KafkaError>) -> Void) {
        call({ [cluster] in
            .success(cluster.topics.keys.sorted().map { TopicDescription(name: $0, partitions: cluster.partitionCount($0)!) })
        }, completion)
    }

    func watermarks(_ partition: TopicPartition, _ completion: @escaping @Sendable (Result<Watermarks, KafkaError>) -> Void) {
        call({ [cluster] in
            guard let p = cluster.partition(partition) else { return .failure(KafkaError(code: "unknown_topic_or_part", message: "\(partition) does not exist")) }
            return .success(Watermarks(low: p.logStart, high: p.highWatermark))
        }, completion)
    }

    func groupOffsets(_ groupId: String, _ completion: @escaping @Sendable (Result<[PartitionOffset], KafkaError>) -> Void) {
        call({ [cluster] in
            .success(cluster.groupState(groupId).committed.map { PartitionOffset($0.key, $0.value) }.sorted { $0.topicPartition < $1.topicPartition })
        }, completion)
    }
}
