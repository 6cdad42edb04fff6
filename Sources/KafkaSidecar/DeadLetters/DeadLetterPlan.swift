import MeshCore

/// Settings of the REST port's dead-letter endpoints.
public struct DeadLetterSettings: Hashable, Sendable {
    /// The dead-letter topic of a topic: `{topic}` is replaced (the reactive consumer's default).
    public var topicTemplate = "{topic}.dlq"
    /// Templates of topics a reactive subscription reads, from its own `dead_letter_topic`: those win.
    public var subscribedTemplates: [String: String] = [:]
    /// The replay group when a request names none: `{topic}` is replaced.
    public var groupTemplate = "lightmesh-replay.{topic}"
    /// Records one replay moves when it names no `max`, and the most it may name.
    public var defaultReplayMax = 1_000
    public var maxReplayMax = 100_000
    /// Records one inspection shows when it names no `limit`, and the most it may name.
    public var defaultInspectLimit = 100
    public var maxInspectLimit = 1_000
    /// Records copied per batch (each batch is acknowledged, then committed).
    public var batchSize = 500
    /// A job answers with what it did by then; a batch in flight still ends and is committed first.
    public var timeout: Duration = .seconds(30)
    public init() {}

    public func deadLetterTopic(for topic: String) -> String {
        (subscribedTemplates[topic] ?? topicTemplate).replacingOccurrences(of: "{topic}", with: topic)
    }
    public func group(for topic: String) -> String { groupTemplate.replacingOccurrences(of: "{topic}", with: topic) }
}

/// What one dead-letter job does.
public struct DeadLetterPlan: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// Copy records back to `topic` and commit the replay group past them.
        case replay
        /// Read records from the replay group's committed offsets on, committing nothing.
        case inspect
    }

    public var kind: Kind
    /// The original topic.
    public var topic: String
    public var deadLetterTopic: String
    /// The group whose committed offsets say what was replayed already.
    public var group: String
    /// A replay's `max`, an inspection's `limit`.
    public var limit: Int
    /// Only records below this offset of each dead-letter partition (a replay's `until_offset`).
    public var untilOffset: Int64?
    public var batchSize: Int
    public var timeout: Duration

    public init(kind: Kind, topic: String, deadLetterTopic: String, group: String, limit: Int, untilOffset: Int64? = nil,
                batchSize: Int = 500, timeout: Duration = .seconds(30)) {
        self.kind = kind
        self.topic = topic
        self.deadLetterTopic = deadLetterTopic
        self.group = group
        self.limit = limit
        self.untilOffset = untilOffset
        self.batchSize = batchSize
        self.timeout = timeout
    }
}

/// One dead-letter record as the reactive consumer wrote it, its `lightmesh.dlq.*` headers read.
public struct DeadLetterEntry: Hashable, Sendable {
    /// Added to a replayed copy: `{dead-letter topic}/{partition}/{offset}` it was copied from.
    public static let replayedFromHeader = "lightmesh.dlq.replayed.from"

    public var record: ConsumerRecord

    public init(_ record: ConsumerRecord) { self.record = record }

    /// The last `lightmesh.dlq.NAME` header's text (a record dead-lettered twice carries both sets; the last is the newest).
    public func header(_ name: String) -> String? {
        record.headers.last { $0.key == "lightmesh.dlq." + name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    public var originalTopic: String? { header("original.topic") }
}

/// What a job did, for its answer.
public struct DeadLetterReport: Hashable, Sendable {
    public struct Partition: Hashable, Sendable {
        public var partition: Int32
        /// Where the job started (the replay group's committed offset, or the first offset kept).
        public var from: Int64
        /// Where it got to: for a replay, what the group has now committed.
        public var to: Int64
        /// Where it was to stop (the partition's end when it started, or `until_offset`).
        public var stop: Int64
    }

    public var plan: DeadLetterPlan
    /// The dead-letter topic does not exist.
    public var notFound: Bool
    /// Records copied back and committed past.
    public var copied: Int
    /// Records of other topics passed over (a shared dead-letter topic).
    public var skipped: Int
    public var partitions: [Partition]
    /// An inspection's records.
    public var entries: [DeadLetterEntry]
    public var deadlinePassed: Bool
    public var failure: KafkaError?

    /// Every partition reached its stop, or the budget was spent, with no failure.
    public var complete: Bool {
        failure == nil && !notFound && (copied + skipped + entries.count >= plan.limit || partitions.allSatisfy { $0.to >= $0.stop })
    }
}
