import CRdKafka
import Logging
import MeshCore

/// The embedded broker: librdkafka's mock cluster (real Kafka protocol on loopback sockets, consumer
/// groups, headers, idempotence, transactions), with handles for its fault knobs.
///
/// It keeps only the tail of each partition's log; tests that read from the beginning after a bulk
/// produce must stay within it.
public final class EmbeddedKafkaBroker: @unchecked Sendable {
    private let host: RdHandle
    private let cluster: OpaquePointer
    private let context: RdKafkaClientContext
    /// `host:port,...` of the brokers.
    public let bootstrapServers: String
    public let brokerCount: Int

    /// Starts `brokers` brokers and creates `topics` (name, partitions).
    public init(brokers: Int = 1, topics: [(String, Int32)] = [], logger: Logger = Logger(label: "light-mesh.broker")) throws(KafkaError) {
        precondition(brokers >= 1)
        var conf = try RdKafkaConf([("client.id", "light-mesh-embedded-broker"), ("log.connection.close", "false")])
        let context = RdKafkaClientContext(name: "embedded-broker", logger: logger)
        context.install(on: conf.pointer!)
        let rk = try conf.makeClient(RD_KAFKA_PRODUCER)
        guard let cluster = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            throw KafkaError(code: "broker_start_failed", message: "could not start the mock cluster")
        }
        self.host = RdHandle(pointer: rk)
        self.cluster = cluster
        self.context = context
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        for (name, partitions) in topics { try createTopic(name, partitions: partitions) }
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(host.pointer)
    }

    /// Creates a topic (replication factor is capped at the broker count).
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster, name, partitions, min(replicationFactor, Int32(brokerCount)))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "create topic \(name)") }
    }

    /// Takes broker `id` (1-based) down: its connections close and it refuses new ones.
    public func setBrokerDown(_ id: Int32) { _ = rd_kafka_mock_broker_set_down(cluster, id) }

    /// Brings broker `id` back.
    public func setBrokerUp(_ id: Int32) { _ = rd_kafka_mock_broker_set_up(cluster, id) }

    /// Adds round-trip time to every response of broker `id`.
    public func setRoundTripTime(_ id: Int32, _ rtt: Duration) { _ = rd_kafka_mock_broker_set_rtt(cluster, id, milliseconds(rtt)) }

    /// Makes the next requests of Kafka API `apiKey` (e.g. 0 = Produce) fail with `errors`, in order.
    public func pushRequestErrors(apiKey: Int16, _ errors: [rd_kafka_resp_err_t]) {
        var copy = errors
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, copy.count, &copy)
    }

    /// Clears queued request errors for `apiKey`.
    public func clearRequestErrors(apiKey: Int16) { rd_kafka_mock_clear_request_errors(cluster, apiKey) }

    /// Moves the leadership of a partition to broker `id`.
    public func setLeader(_ partition: TopicPartition, broker id: Int32) {
        _ = rd_kafka_mock_partition_set_leader(cluster, partition.topic, partition.partition, id)
    }
}

/// Kafka protocol API keys used with ``EmbeddedKafkaBroker/pushRequestErrors(apiKey:_:)``.
public enum KafkaApiKey {
    public static let produce: Int16 = 0
    public static let fetch: Int16 = 1
    public static let offsetCommit: Int16 = 8
    public static let initProducerId: Int16 = 22
}
