import MeshCore

/// A REST request as the produce front reads it: method, path and query, the fields it uses, the body.
public struct ProduceRequest: Sendable {
    public var method: String
    /// The path without the query.
    public var path: String
    public var query: QueryString
    public var contentType: String?
    public var traceparent: String?
    public var tracestate: String?
    public var correlationId: String?
    public var body: [UInt8]

    public init(method: String, path: String, query: QueryString = QueryString(""), contentType: String?, traceparent: String? = nil,
                tracestate: String? = nil, correlationId: String? = nil, body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.contentType = contentType
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.correlationId = correlationId
        self.body = body
    }
}

/// Which error and answer shapes a request gets: Confluent v2 / Strimzi (`/topics/...`) or light-mesh
/// (`/producers/...`).
public enum ProduceFlavour: Hashable, Sendable {
    case confluent
    case lightMesh
}

/// What the produce front makes of a request, before anything is sent.
public enum ProduceDecision: Sendable {
    /// Not a produce path: another route may take it.
    case notProduce
    /// Answered at once (refused), nothing produced.
    case answer(RESTAnswer)
    /// Send these records; answer with ``ProducePlan/answer(_:)`` once every result is in, or at
    /// once with ``ProducePlan/accepted`` when ``ProducePlan/async``.
    case send(ProducePlan)
}

/// Records to send for one accepted request, and how to answer it.
public struct ProducePlan: Sendable {
    public var topic: String { batch.topic }
    public var batch: PackedRecords
    public var flavour: ProduceFlavour
    /// `?async=true`: answered 204 before the results are known.
    public var async: Bool

    /// The answer of an `async` request.
    public static let accepted = RESTAnswer(status: 204, contentType: "application/json", body: [])

    /// The answer once every record's result is in (in request order).
    public func answer(_ results: [Result<RecordMetadata, KafkaError>]) -> RESTAnswer {
        Self.answer(results, topic: topic, flavour: flavour)
    }

    /// The answer to a request to `topic` in `flavour` once every result is in (a completion can keep
    /// these two instead of the whole plan and its records).
    public static func answer(_ results: [Result<RecordMetadata, KafkaError>], topic: String, flavour: ProduceFlavour) -> RESTAnswer {
        let status = ProduceFront.status(results)
        switch flavour {
        case .confluent:
            if status == 404 {
                return ProduceRoutes.refusal(ProduceRequestError(status: 404, errorCode: 40401, message: "topic '\(topic)' not found"), .confluent)
            }
            return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: ProduceFront.confluentAnswer(results))
        case .lightMesh:
            return RESTAnswer(status: status, contentType: "application/json", body: ProduceFront.lightMeshAnswer(results))
        }
    }
}

/// The REST produce endpoints, sans-IO: light-mesh `POST /producers/{topic}`, Confluent v2 / Strimzi
/// `POST /topics/{topic}` and `POST /topics/{topic}/partitions/{p}`. It owns the routing and every
/// check (method 405, topic names 40003 and internal topics 403, partitions 40402, Content-Type 415,
/// the body's rules through ``ProduceFront``); the NIO driver and the simulator's producers run it.
public enum ProduceRoutes {
    /// Decides `request`; `random` seeds the span ids of the records' trace hops.
    public static func decide(_ request: ProduceRequest, config: ProduceFrontConfig, random: inout SeededRandom) -> ProduceDecision {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false)
        // "", "producers", topic | "", "topics", topic [, "partitions", p]
        let flavour: ProduceFlavour, topic: String, partition: Int32?
        switch parts.count {
        case 3 where parts[1] == "producers":
            (flavour, topic, partition) = (.lightMesh, String(parts[2]), nil)
        case 3 where parts[1] == "topics":
            (flavour, topic, partition) = (.confluent, String(parts[2]), nil)
        case 5 where parts[1] == "topics" && parts[3] == "partitions":
            guard let p = Int32(parts[4]), p >= 0 else {
                return .answer(refusal(ProduceRequestError(status: 404, errorCode: 40402, message: "partition '\(parts[4])' is not a partition number"),
                                       .confluent))
            }
            (flavour, topic, partition) = (.confluent, String(parts[2]), p)
        default:
            return .notProduce
        }
        guard request.method == "POST" else {
            return .answer(refusal(ProduceRequestError(status: 405, errorCode: 405, message: "\(request.path) takes POST"), flavour))
        }
        if let problem = ProduceFront.topicProblem(topic, config: config) { return .answer(refusal(problem, flavour)) }
        let shape: ProduceShape
        switch flavour {
        case .lightMesh:
            if let contentType = request.contentType, !contentType.lowercased().contains("json") {
                return .answer(refusal(.unsupportedMediaType("Content-Type must be application/json, not \(contentType)"), flavour))
            }
            shape = .lightMesh
        case .confluent:
            guard let s = ProduceShape.confluent(contentType: request.contentType) else {
                return .answer(refusal(.unsupportedMediaType(
                    "Content-Type must be application/vnd.kafka.json.v2+json, application/vnd.kafka.binary.v2+json or application/vnd.kafka.text.v2+json"),
                    flavour))
            }
            shape = s
        }
        let context = ProduceContext(traceparent: request.traceparent, tracestate: request.tracestate, correlationId: request.correlationId)
        do {
            let batch = try ProduceFront.decode(shape, topic: topic, partition: partition, body: request.body, context: context, config: config,
                                                random: &random)
            return .send(ProducePlan(batch: batch, flavour: flavour, async: request.query.first("async") == "true"))
        } catch {
            return .answer(refusal(error, flavour))
        }
    }

    /// A refusal in the request's flavour: Confluent's `{"error_code","message"}`, or light-mesh's
    /// `{"error":{"code","message"}}` with a stable code.
    public static func refusal(_ error: ProduceRequestError, _ flavour: ProduceFlavour) -> RESTAnswer {
        switch flavour {
        case .confluent:
            return RESTAnswer(status: error.status, contentType: RESTAnswer.kafkaV2Type, body: ProduceFront.errorBody(error))
        case .lightMesh:
            return RESTAnswer(status: error.status, contentType: "application/json",
                                 body: JSONText.lightMeshError(code: lightMeshCode(error), message: error.message))
        }
    }

    /// The light-mesh shape's stable code for a refusal.
    static func lightMeshCode(_ e: ProduceRequestError) -> String {
        switch e.errorCode {
        case 42201: "invalid_key"
        case 42202: "invalid_value"
        case 415: "unsupported_media_type"
        case 405: "method_not_allowed"
        case 40301: "internal_topic"
        case 422: "invalid_request"
        case 41301: "too_many_records"
        case 40003: "invalid_topic"
        default: "invalid_body"
        }
    }
}
