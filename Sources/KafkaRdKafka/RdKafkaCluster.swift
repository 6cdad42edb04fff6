import MeshCore

/// ``KafkaCluster`` for a real (or embedded) cluster reached through librdkafka.
public final class RdKafkaCluster: KafkaCluster, @unchecked Sendable {
    public let settings: RdKafkaClusterSettings

    public init(_ settings: RdKafkaClusterSettings) { self.settings = settings }

    public func makeProducer(_ config: KafkaProducerConfig) throws(KafkaError) -> any KafkaProducer {
        try RdKafkaProducer(settings, config: config)
    }

    public func makeConsumer(_ config: KafkaConsumerConfig) throws(KafkaError) -> any KafkaGroupConsumer {
        try RdKafkaConsumer(settings, config: config)
    }

    public func makeAdmin() throws(KafkaError) -> any KafkaAdmin { try RdKafkaAdmin(settings) }
}
