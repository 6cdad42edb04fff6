import Foundation
import MeshCore

/// Which REST request shape a produce request uses.
public enum ProduceShape: String, Hashable, Sendable {
    /// `POST /producers/{topic}`: `{keyFormat, valueFormat, records:[{key, value, partition?, headers?,
    /// traceabilityId?, correlationId?}]}`.
    case lightMesh
    /// `POST /topics/{topic}[/partitions/{p}]` with `application/vnd.kafka.json.v2+json`: keys and
    /// values are JSON values, stored as the bytes sent (Strimzi's `headers` and `timestamp` accepted too).
    case confluentJSON
    /// The same with `application/vnd.kafka.binary.v2+json`: keys and values are base64.
    case confluentBinary
    /// The same with Strimzi's `application/vnd.kafka.text.v2+json`: keys and values are strings.
    case confluentText

    /// The shape a `/topics/...` request's `Content-Type` names, or `nil` when it names none we take.
    public static func confluent(contentType: String?) -> ProduceShape? {
        guard let type = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() else { return nil }
        switch type {
        case "application/vnd.kafka.json.v2+json": return .confluentJSON
        case "application/vnd.kafka.binary.v2+json": return .confluentBinary
        case "application/vnd.kafka.text.v2+json": return .confluentText
        default: return nil
        }
    }
}

extension ProduceShape {
    /// How keys and values are written when the body does not say.
    var defaultFormat: ProduceFront.Format {
        switch self {
        case .lightMesh, .confluentText: .string
        case .confluentJSON: .json
        case .confluentBinary: .binary
        }
    }
}

/// A produce request that cannot be taken, with the HTTP status and Confluent's error code.
public struct ProduceRequestError: Error, Hashable, Sendable {
    public var status: Int
    /// Confluent REST's error code (40401 unknown topic, 415 content type, 422 constraint, 42201 key,
    /// 42202 value, 41301 too many records, ...).
    public var errorCode: Int
    public var message: String
    public init(status: Int, errorCode: Int, message: String) {
        self.status = status
        self.errorCode = errorCode
        self.message = message
    }
    static func key(_ message: String) -> Self { Self(status: 422, errorCode: 42201, message: message) }
    static func value(_ message: String) -> Self { Self(status: 422, errorCode: 42202, message: message) }
    /// The body is not JSON (or not the JSON shape asked for at all).
    static func body(_ message: String) -> Self { Self(status: 400, errorCode: 400, message: message) }
    /// Well-formed JSON that breaks a rule of the API (empty records, an unknown field, a conflict).
    static func constraint(_ message: String) -> Self { Self(status: 422, errorCode: 422, message: message) }
    /// The Content-Type names no shape the endpoint takes.
    public static func unsupportedMediaType(_ message: String) -> Self { Self(status: 415, errorCode: 415, message: message) }
}

/// Settings of the REST produce front.
public struct ProduceFrontConfig: Hashable, Sendable {
    /// Record headers never written, whatever the request says (compared case-insensitively).
    public var deniedHeaders: Set<String> = ["authorization", "proxy-authorization", "cookie", "set-cookie"]
    /// Records in one request.
    public var maxRecordsPerRequest = 10_000
    /// Produce to topics whose names start with `__` (`__consumer_offsets`, `__transaction_state`):
    /// Kafka's own; off by default.
    public var allowInternalTopics = false
    public init() {}
}

/// What the request carried besides its body: the trace and correlation the records continue.
public struct ProduceContext: Sendable {
    public var traceparent: String?
    public var tracestate: String?
    public var correlationId: String?
    public init(traceparent: String? = nil, tracestate: String? = nil, correlationId: String? = nil) {
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.correlationId = correlationId
    }
}

/// REST produce requests into `ProducerRecord`s and per-record results back into answers, for all
/// the shapes. Pure functions: the NIO front and the simulator's producers call the same ones.
public enum ProduceFront {
    /// Header names the sidecar writes itself on every record (a request's own are dropped).
    static let reservedHeaders: Set<String> = ["traceparent", "tracestate", "x-correlation-id", "x-traceability-id"]

    /// Why `topic` cannot be produced to, or `nil`: Kafka's legal names (`[a-zA-Z0-9._-]`, at most
    /// 249, not `.` or `..`), and Kafka's internal topics (`__` prefix) unless allowed.
    public static func topicProblem(_ topic: String, config: ProduceFrontConfig = ProduceFrontConfig()) -> ProduceRequestError? {
        let legal = !topic.isEmpty && topic.utf8.count <= 249 && topic != "." && topic != ".."
            && topic.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
            }
        guard legal else {
            return ProduceRequestError(status: 400, errorCode: 40003, message: "'\(topic)' is not a legal topic name ([a-zA-Z0-9._-], at most 249)")
        }
        // ci/mutants: internal-topic-accepted (the next line)
        if topic.hasPrefix("__") && !config.allowInternalTopics {
            return ProduceRequestError(status: 403, errorCode: 40301, message: "'\(topic)' is one of Kafka's internal topics")
        }
        return nil
    }

    // MARK: answers

    /// The Confluent v2 produce answer: one entry per record, in request order; failures carry
    /// 50003 when retriable, else 50002.
    public static func confluentAnswer(_ results: [Result<RecordMetadata, KafkaError>]) -> [UInt8] {
        var w = JSONWriter(capacity: 32 + results.count * 72)
        w.raw("{\"offsets\":[")
        for (n, result) in results.enumerated() {
            if n > 0 { w.raw(",") }
            switch result {
            case .success(let m):
                w.raw("{\"partition\":")
                w.int(m.topicPartition.partition)
                w.raw(",\"offset\":")
                w.int(m.offset)
                w.raw(",\"error_code\":null,\"error\":null}")
            case .failure(let e):
                w.raw("{\"partition\":null,\"offset\":null,\"error_code\":")
                w.int(e.retriable ? 50003 : 50002)
                w.raw(",\"error\":")
                w.string(e.description)
                w.raw("}")
            }
        }
        w.raw("],\"key_schema_id\":null,\"value_schema_id\":null}")
        return w.bytes
    }

    /// The light-mesh produce answer: `{"results":[{"topic","partition","offset"} | {"error":{"code",
    /// "message","retriable"}}]}`, in request order.
    public static func lightMeshAnswer(_ results: [Result<RecordMetadata, KafkaError>]) -> [UInt8] {
        var w = JSONWriter(capacity: 32 + results.count * 72)
        w.raw("{\"results\":[")
        // Every record of a request goes to one topic: its JSON is written once and copied.
        var topic: (name: String, json: [UInt8])?
        for (n, result) in results.enumerated() {
            if n > 0 { w.raw(",") }
            switch result {
            case .success(let m):
                w.raw("{\"topic\":")
                if topic?.name != m.topicPartition.topic {
                    var quoted = JSONWriter(capacity: m.topicPartition.topic.utf8.count + 2)
                    quoted.string(m.topicPartition.topic)
                    topic = (m.topicPartition.topic, quoted.bytes)
                }
                w.raw(topic!.json)
                w.raw(",\"partition\":")
                w.int(m.topicPartition.partition)
                w.raw(",\"offset\":")
                w.int(m.offset)
                w.raw("}")
            case .failure(let e):
                w.raw("{\"error\":{\"code\":")
                w.string(e.code)
                w.raw(",\"message\":")
                w.string(e.message)
                w.raw(",\"retriable\":")
                w.bool(e.retriable)
                w.raw("}}")
            }
        }
        w.raw("]}")
        return w.bytes
    }

    /// The HTTP status of a produce answer: 200 when every record was stored; 404 (40401) when the
    /// topic does not exist; 207 when some were; 503 when none was and all may be retried; else 500.
    public static func status(_ results: [Result<RecordMetadata, KafkaError>]) -> Int {
        var ok = 0, retriable = 0, unknownTopic = 0
        for r in results {
            switch r {
            case .success: ok += 1
            case .failure(let e):
                if e.retriable { retriable += 1 }
                if e.code.hasPrefix("unknown_topic") { unknownTopic += 1 }
            }
        }
        if ok == results.count { return 200 }
        if unknownTopic == results.count { return 404 }
        if ok > 0 { return 207 }
        return retriable == results.count ? 503 : 500
    }

    /// A Confluent-style error body.
    public static func errorBody(_ error: ProduceRequestError) -> [UInt8] {
        JSONText.kafkaError(code: error.errorCode, message: error.message)
    }
}
