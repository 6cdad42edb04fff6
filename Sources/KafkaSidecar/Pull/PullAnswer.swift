import MeshCore

/// Why a pull consumer call is refused: the HTTP status and the Confluent five-digit code (the
/// Strimzi flavour answers with the status as its code), and a message for people.
public struct PullError: Error, Hashable, Sendable {
    public var status: Int
    public var code: Int
    public var message: String

    public init(status: Int, code: Int, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public static let instanceNotFound = PullError(status: 404, code: 40403, message: "Consumer instance not found.")
    public static let topicNotFound = PullError(status: 404, code: 40401, message: "Topic not found.")
    public static func instanceExists(_ name: String) -> PullError {
        PullError(status: 409, code: 40902, message: "Consumer with specified consumer ID '\(name)' already exists in the specified consumer group.")
    }
    public static func tooManyInstances(_ limit: Int) -> PullError {
        PullError(status: 429, code: 42901, message: "this sidecar already keeps \(limit) consumer instances")
    }
    public static func notAssigned(_ tp: TopicPartition, flavour: APIFlavour) -> PullError {
        // Confluent: IllegalStateException (409 40903); Strimzi: 404.
        flavour == .confluent
            ? PullError(status: 409, code: 40903, message: "Illegal state: partition \(tp) is not assigned to this consumer")
            : PullError(status: 404, code: 40403, message: "partition \(tp) is not assigned to this consumer")
    }
    public static func illegalState(_ message: String) -> PullError {
        PullError(status: 409, code: 40903, message: "Illegal state: \(message)")
    }
    public static func constraint(_ message: String) -> PullError {
        PullError(status: 422, code: 42204, message: message)
    }
    public static func kafka(_ error: KafkaError) -> PullError {
        PullError(status: 500, code: error.retriable ? 50003 : 50002, message: "Kafka error: \(error.message)")
    }
}

/// What a pull consumer answers one call with.
public enum PullAnswer: Hashable, Sendable {
    /// Records for a fetch, in offset order per partition (possibly none).
    case records([ConsumerRecord])
    /// The call is done (subscribe, assign, seek, commit, delete).
    case done
    /// The topics subscribed to.
    case subscription(topics: [String])
    /// The partitions assigned.
    case assignment([TopicPartition])
    /// Committed offsets (as Kafka stores them: the next offset to read).
    case committed([PartitionOffset])
    case refused(PullError)
}
