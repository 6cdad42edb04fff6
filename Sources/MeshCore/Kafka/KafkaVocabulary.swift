/// A topic and one of its partitions.
public struct TopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
    public var description: String { "\(topic)-\(partition)" }
}

/// An offset on one partition. Kept as an ordered list, never a dictionary, so iteration order is stable.
public struct PartitionOffset: Hashable, Sendable {
    public var topicPartition: TopicPartition
    /// The next offset to consume (Kafka's convention for committed offsets).
    public var offset: Int64
    public init(_ topicPartition: TopicPartition, _ offset: Int64) {
        self.topicPartition = topicPartition
        self.offset = offset
    }
}

/// One record header; Kafka allows repeated keys and null values.
public struct KafkaHeader: Hashable, Sendable {
    public var key: String
    public var value: [UInt8]?
    public init(_ key: String, _ value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}

/// A record to produce.
public struct ProducerRecord: Hashable, Sendable {
    public var topic: String
    /// An explicit partition, or `nil` to let the partitioner choose (by key hash, else sticky).
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// Milliseconds since the Unix epoch, or `nil` for "now" as seen by the producer's clock.
    public var timestamp: Int64?

    public init(
        topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?,
        headers: [KafkaHeader] = [], timestamp: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// Where a produced record landed.
public struct RecordMetadata: Hashable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Int64
    public var timestamp: Int64
    public init(topicPartition: TopicPartition, offset: Int64, timestamp: Int64) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.timestamp = timestamp
    }
}

/// A consumed record.
public struct ConsumerRecord: Hashable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    public var timestamp: Int64
    /// Whether `timestamp` is the producer's (create time) or the broker's (log append time).
    public var timestampType: TimestampType
    public enum TimestampType: String, Hashable, Sendable { case createTime = "create_time", logAppendTime = "log_append_time" }
    public init(
        topicPartition: TopicPartition, offset: Int64, key: [UInt8]?, value: [UInt8]?,
        headers: [KafkaHeader], timestamp: Int64, timestampType: TimestampType = .createTime
    ) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
        self.timestampType = timestampType
    }
}

/// A Kafka failure, classified so callers know whether to retry.
public struct KafkaError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable name such as `unknown_topic`, `request_timed_out`, `not_leader`, `fenced`.
    public var code: String
    public var message: String
    /// The same request may succeed if retried.
    public var retriable: Bool
    /// The client instance is unusable (fenced producer, fatal idempotence error) and must be recreated.
    public var fatal: Bool
    /// The broker may or may not have applied the request (a timeout after sending).
    public var outcomeUnknown: Bool

    public init(code: String, message: String, retriable: Bool = false, fatal: Bool = false, outcomeUnknown: Bool = false) {
        self.code = code
        self.message = message
        self.retriable = retriable
        self.fatal = fatal
        self.outcomeUnknown = outcomeUnknown
    }
    public var description: String { "\(code): \(message)" }
}

/// Where `seek` moves a consumer's position.
public enum SeekTarget: Hashable, Sendable {
    case offset(Int64)
    case beginning
    case end
}

/// What a group consumer's poll returns, in the order it happened.
public enum ConsumerEvent: Hashable, Sendable {
    /// These partitions are added to ours (incrementally: under the eager protocol a revocation of
    /// everything comes first); positions start from the committed offsets (or the reset policy).
    case assigned([TopicPartition])
    /// These partitions were given up in a rebalance, after the before-revoke step
    /// (``KafkaGroupConsumer/onRevoke(_:)``) had its chance to commit. Records of them fetched in the
    /// same poll are not delivered: the next owner starts from the committed offset.
    case revoked([TopicPartition])
    /// These partitions were lost without a rebalance (the session expired, the member was fenced):
    /// another member may already own them, so their offsets can no longer be committed.
    case lost([TopicPartition])
    /// Fetched records, in offset order per partition.
    case records([ConsumerRecord])
    /// A non-fatal error the consumer recovered from or will retry.
    case error(KafkaError)
}

/// What the before-revoke step is told (see ``KafkaGroupConsumer/onRevoke(_:)``).
public struct PartitionRevocation: Hashable, Sendable {
    /// The partitions about to be given up, sorted.
    public var partitions: [TopicPartition]
    /// They are already lost (another member may own them): a commit would be refused, so none is made.
    public var lost: Bool
    public init(partitions: [TopicPartition], lost: Bool) {
        self.partitions = partitions
        self.lost = lost
    }
}

/// The before-revoke step: called with the partitions about to go; it answers once, through
/// `release`, with the offsets to commit for them (empty for none). The consumer commits them before
/// it lets the partitions go.
public typealias RevocationHandler = @Sendable (_ revocation: PartitionRevocation, _ release: @escaping @Sendable ([PartitionOffset]) -> Void) -> Void

/// Identity of a consumer group member, needed to commit offsets inside a producer transaction.
public struct ConsumerGroupMetadata: Hashable, Sendable {
    public var groupId: String
    /// The group generation, or -1 where the client does not expose it (librdkafka keeps it in `native`).
    public var generation: Int32
    public var memberId: String
    /// The client library's own serialized form, when it has one; producers of the same library prefer it.
    public var native: [UInt8]
    public init(groupId: String, generation: Int32, memberId: String, native: [UInt8] = []) {
        self.groupId = groupId
        self.generation = generation
        self.memberId = memberId
        self.native = native
    }
}

/// Watermarks of one partition.
public struct Watermarks: Hashable, Sendable {
    /// The first offset still in the log.
    public var low: Int64
    /// The offset the next record will get (records below it are readable with `read_uncommitted`).
    public var high: Int64
    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}
