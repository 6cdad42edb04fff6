import MeshCore

/// Records of one partition pushed to the app together.
public struct PushBatch: Hashable, Sendable {
    /// One pushed record and which delivery of it this is (1 for the first).
    public struct Entry: Hashable, Sendable {
        public var record: ConsumerRecord
        public var attempt: Int
    }

    public var id: UInt64
    public var topicPartition: TopicPartition
    public var entries: [Entry]

    /// The id the app names a record by in its answer: `topic/partition/offset`.
    public static func recordID(_ tp: TopicPartition, _ offset: Int64) -> String {
        "\(tp.topic)/\(tp.partition)/\(offset)"
    }
}
