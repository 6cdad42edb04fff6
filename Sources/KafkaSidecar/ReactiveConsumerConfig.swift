import MeshCore

/// How the reactive consumer may run records of one partition side by side.
public enum RecordOrdering: String, Hashable, Sendable, CaseIterable {
    /// One partition's records reach the app strictly in offset order: a record in flight or waiting
    /// for its retry holds back the rest of its partition (the default).
    case partition
    /// Records of one key stay in order; different keys of a partition run in parallel.
    case key
    /// No order: any buffered record may be pushed.
    case none
}

/// Settings of one reactive subscription's engine (``ReactiveConsumer``).
public struct ReactiveConsumerConfig: Hashable, Sendable {
    /// Record order towards the app.
    public var ordering: RecordOrdering = .partition
    /// Records buffered (fetched and not yet finished) before every partition is paused.
    public var maxBufferedRecords = 1_000
    /// Records in one push to the app.
    public var maxBatchRecords = 100
    /// Pushes in flight to the app at once.
    public var maxConcurrentPushes = 8
    /// A push the app has not answered within this time counts as failed and is retried.
    public var pushTimeout: Duration = .seconds(10)
    /// Deliveries of one record (the first push included) before it goes to the dead-letter topic.
    public var maxAttempts = 5
    /// Waits between two attempts of one record.
    public var retryBackoff = ExponentialBackoff(initial: .milliseconds(100), maximum: .seconds(10))
    /// Waits between two attempts of a dead-letter write the broker refused.
    public var deadLetterBackoff = ExponentialBackoff(initial: .milliseconds(100), maximum: .seconds(5))
    /// The dead-letter topic of a record from `topic`: `{topic}` is replaced by the record's topic.
    public var deadLetterTopic = "{topic}.dlq"
    /// How long a revocation waits for pushes and dead-letter writes in flight before it lets the
    /// partitions go with what is finished. Keep it below the consumer's revocation timeout.
    public var revocationGrace: Duration = .seconds(5)
    /// How often the app's readiness is probed.
    public var readinessInterval: Duration = .seconds(1)
    /// Wait before a refused commit is tried again.
    public var commitRetryDelay: Duration = .milliseconds(200)
    /// Record encoding towards the app: values that parse as JSON are sent as JSON when `true`.
    public var jsonValues = true
    /// Where every finished record's audit entry goes (status, attempts, latency, trace id); `nil`:
    /// no audit. Entries are written in batches beside the consumer, never holding it back.
    public var auditTopic: String?
    /// Entries in one audit write.
    public var auditBatchRecords = 500
    /// A batch smaller than ``auditBatchRecords`` is written once it is this old.
    public var auditInterval: Duration = .seconds(1)
    /// Entries kept while writes fail or lag; past it the oldest are dropped (and counted).
    public var auditBufferLimit = 10_000

    public init() {}

    /// The dead-letter topic for records of `topic`.
    public func deadLetterTopic(for topic: String) -> String {
        deadLetterTopic.replacingOccurrences(of: "{topic}", with: topic)
    }
}
