import MeshCore

/// How offsets in a commit are read: the one difference between the Confluent v2 and the Strimzi
/// bridge consumer APIs that changes what is stored.
public enum APIFlavour: String, Hashable, Sendable, CaseIterable {
    /// Confluent REST Proxy v2: a commit names the last record processed; `offset + 1` is stored,
    /// and the answer is 200 `[]`. Error bodies carry five-digit codes (40403).
    case confluent
    /// Strimzi bridge: a commit names the next offset to read, stored as given; the answer is 204.
    /// Error bodies carry the HTTP status as their code (404).
    case strimzi
}

/// The embedded format of a pull consumer's records: how keys and values are written in answers.
public enum PullFormat: String, Hashable, Sendable, CaseIterable {
    /// Base64 strings (the default in both APIs).
    case binary
    /// The bytes as a JSON value (a record that is not JSON cannot be answered: 406 for Strimzi).
    case json
    /// The bytes as a JSON string (Strimzi's `text`).
    case text

    /// The `Accept` type of records in this format.
    public var mediaType: String { "application/vnd.kafka.\(rawValue).v2+json" }
}

/// Settings of one pull consumer instance, as the app created it (`POST /consumers/{group}`).
public struct PullConsumerSettings: Hashable, Sendable {
    public var format: PullFormat = .binary
    /// Where a partition with no committed offset starts.
    public var resetPolicy: KafkaConsumerConfig.ResetPolicy = .latest
    /// Whether the records handed out count as processed: their offsets are committed at the next
    /// fetch and when the partitions are given up or the instance is closed (Kafka's auto commit).
    public var autoCommit = true
    /// A fetch waits until at least this many bytes of records are buffered, or its timeout.
    public var fetchMinBytes = 0
    /// The wait of a fetch that names no `timeout`.
    public var requestTimeout: Duration = .seconds(1)
    public var flavour: APIFlavour = .confluent
    public init() {}
}

/// Limits of the pull consumers of one sidecar.
public struct PullConsumerLimits: Hashable, Sendable {
    /// Records fetched and not yet handed to the app, per instance, before its partitions are paused
    /// (or ``maxBufferedBytes`` of their keys and values, whichever comes first). Pausing makes
    /// librdkafka drop what it prefetched, so the buffer should hold a few answers' worth: reading
    /// 100 B records with 1 MB answers, an instance served 5k records/s at 1,000, about 130k at
    /// 10,000 and about 300k at 20,000.
    public var maxBufferedRecords = 20_000
    public var maxBufferedBytes = 16 << 20
    /// The largest answer of one fetch (a smaller `max_bytes` wins), in bytes of keys and values.
    public var maxFetchBytes = 64 << 20
    /// The longest wait a fetch may ask for.
    public var maxFetchTimeout: Duration = .seconds(30)
    /// An instance no call has used for this long is closed (it leaves its group).
    public var idleTimeout: Duration = .seconds(300)
    /// Instances one sidecar keeps at once; creating one more is refused (429).
    public var maxInstances = 64
    /// How long a driver waits before polling again when the buffer is full.
    public var idlePollInterval: Duration = .milliseconds(100)
    /// Fetches one instance keeps waiting at once; one more is refused (429), so clients that
    /// leave long polls behind cannot pile them up.
    public var maxWaitingFetches = 16
    public init() {}
}
