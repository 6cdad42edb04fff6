/// Seam: a Kafka producer.
///
/// Contract for both the simulated cluster and the librdkafka adapter:
/// - Idempotence is on by default: a record acknowledged once is in the log exactly once, even when
///   the client retried after a timeout.
/// - `send`'s completion runs exactly once per record, with where it landed or a typed error; a batch's
///   partial failure is visible per record.
/// - Records to the same partition are appended in `send` order.
/// - Inside a transaction, records and offsets sent with ``sendOffsetsToTransaction(_:group:_:)``
///   become visible to `read_committed` consumers together on commit, and never on abort.
public protocol KafkaProducer: AnyObject, Sendable {
    func send(_ record: ProducerRecord, _ completion: @escaping @Sendable (Result<RecordMetadata, KafkaError>) -> Void)
    /// Sends `records` in order, as `send` would one by one, and calls `completion` once, when every
    /// record has its result (in the order of `records`). An adapter may do it for less per record
    /// (one completion, one bookkeeping object); the default sends them one by one.
    func sendBatch(_ records: [ProducerRecord], _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void)
    /// Sends packed records (see ``PackedRecords``) as ``sendBatch(_:_:)`` sends plain ones. An
    /// adapter may hand the packed bytes over without unpacking them; the default unpacks.
    func sendPacked(_ batch: PackedRecords, _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void)
    /// Completes when every record sent before the call has completed, or `timeout` passed.
    func flush(timeout: Duration, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
    /// Registers the transactional id and fences older producers that used it.
    func initTransactions(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
    func beginTransaction() throws(KafkaError)
    func sendOffsetsToTransaction(
        _ offsets: [PartitionOffset], group: ConsumerGroupMetadata,
        _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
    func commitTransaction(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
    func abortTransaction(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
}

/// Seam: a consumer that is a member of a consumer group (or has a manual assignment).
///
/// Contract:
/// - Offsets are managed by the caller: nothing is committed automatically.
/// - `poll` delivers assignment changes, records and recoverable errors as ``ConsumerEvent``s in the
///   order they happened. Assignment changes are incremental (`assigned` adds, `revoked`/`lost`
///   remove), whichever rebalance protocol the group uses.
/// - Before a partition is given to another member, the before-revoke step installed with
///   ``onRevoke(_:)`` is called and its offsets committed (within
///   ``KafkaConsumerConfig/revocationTimeout``); only then does the partition go.
/// - A paused partition delivers no records until resumed; its position does not move.
/// - After `seek`, the next records of that partition start at the new position.
/// - `poll` never blocks the caller's thread: production polls on a dedicated thread and calls back.
public protocol KafkaGroupConsumer: AnyObject, Sendable {
    var groupId: String { get }
    func subscribe(_ topics: [String]) throws(KafkaError)
    /// Installs the before-revoke step (install it before `subscribe`). The handler may be called on
    /// the consumer's own thread and must not wait for that consumer's `poll`; it answers through
    /// `release`, from any thread, within the configured revocation timeout, or the partitions go
    /// without a commit.
    func onRevoke(_ handler: @escaping RevocationHandler)
    func assign(_ partitions: [TopicPartition]) throws(KafkaError)
    func poll(maxRecords: Int, timeout: Duration, _ handler: @escaping @Sendable ([ConsumerEvent]) -> Void)
    func commit(_ offsets: [PartitionOffset], _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
    func committed(_ partitions: [TopicPartition], _ completion: @escaping @Sendable (Result<[PartitionOffset], KafkaError>) -> Void)
    func pause(_ partitions: [TopicPartition])
    func resume(_ partitions: [TopicPartition])
    func seek(_ partition: TopicPartition, to target: SeekTarget) throws(KafkaError)
    /// The next offset `poll` will return for `partition`, if known.
    func position(_ partition: TopicPartition) -> Int64?
    /// The group identity for transactional offset commits.
    func groupMetadata() -> ConsumerGroupMetadata
    /// Leaves the group (triggering a rebalance at once rather than after the session timeout).
    func close(_ completion: @escaping @Sendable () -> Void)
}

/// Topic description returned by ``KafkaAdmin/listTopics(_:)``.
public struct TopicDescription: Hashable, Sendable {
    public var name: String
    public var partitions: Int32
    public init(name: String, partitions: Int32) {
        self.name = name
        self.partitions = partitions
    }
}

/// Seam: cluster administration.
public protocol KafkaAdmin: AnyObject, Sendable {
    func createTopic(_ name: String, partitions: Int32, replicationFactor: Int16, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
    func deleteTopic(_ name: String, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void)
    /// Topics sorted by name.
    func listTopics(_ completion: @escaping @Sendable (Result<[TopicDescription], KafkaError>) -> Void)
    func watermarks(_ partition: TopicPartition, _ completion: @escaping @Sendable (Result<Watermarks, KafkaError>) -> Void)
    /// A group's committed offsets, sorted by topic-partition.
    func groupOffsets(_ groupId: String, _ completion: @escaping @Sendable (Result<[PartitionOffset], KafkaError>) -> Void)
}

/// Seam: the factory both worlds provide, so a sidecar asks for clients without knowing which world it is in.
public protocol KafkaCluster: AnyObject, Sendable {
    func makeProducer(_ config: KafkaProducerConfig) throws(KafkaError) -> any KafkaProducer
    func makeConsumer(_ config: KafkaConsumerConfig) throws(KafkaError) -> any KafkaGroupConsumer
    func makeAdmin() throws(KafkaError) -> any KafkaAdmin
}

/// Producer settings that matter to product semantics (transport tuning stays in the adapter).
public struct KafkaProducerConfig: Hashable, Sendable {
    public var clientId: String = "light-mesh"
    public var idempotent: Bool = true
    /// Set to use transactions; unique per producer instance that must be fenced on restart.
    public var transactionalId: String? = nil
    public var acks: Acks = .all
    public var lingerMilliseconds: Int = 5
    public var deliveryTimeout: Duration = .seconds(30)
    public enum Acks: String, Sendable { case none = "0", leader = "1", all = "all" }
    public init() {}
}

/// Consumer settings that matter to product semantics.
public struct KafkaConsumerConfig: Hashable, Sendable {
    public var groupId: String
    public var clientId: String = "light-mesh"
    public var isolation: Isolation = .readCommitted
    public var resetPolicy: ResetPolicy = .earliest
    public var sessionTimeout: Duration = .seconds(10)
    /// How rebalances move partitions. Cooperative (the default) takes away only the partitions that
    /// move, so the rest of the group keeps consuming through a rebalance.
    public var rebalanceProtocol: RebalanceProtocol = .cooperative
    /// How long the before-revoke step may take before the partitions go without its commit.
    public var revocationTimeout: Duration = .seconds(10)
    public enum RebalanceProtocol: String, Sendable { case eager, cooperative }
    public enum Isolation: String, Sendable { case readCommitted = "read_committed", readUncommitted = "read_uncommitted" }
    public enum ResetPolicy: String, Sendable { case earliest, latest }
    public init(groupId: String) { self.groupId = groupId }
}
