import KafkaSidecar
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The REST produce endpoints on one producer: light-mesh `POST /producers/{topic}`, Confluent v2 /
/// Strimzi `POST /topics/{topic}` and `POST /topics/{topic}/partitions/{p}`.
public final class ProduceService: Sendable {
    private let producer: any KafkaProducer
    private let config: ProduceFrontConfig
    private let metrics: KafkaSidecarMetrics

    public init(producer: any KafkaProducer, config: ProduceFrontConfig, metrics: KafkaSidecarMetrics) {
        self.producer = producer
        self.config = config
        self.metrics = metrics
    }

    /// Answers `request` if it is a produce request; `nil` when the path is not one of these.
    public func handle(_ request: RESTRequest, on loop: any EventLoop) -> EventLoopFuture<RESTResponse>? {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // "", "producers", topic | "", "topics", topic [, "partitions", p]
        let shape: ProduceShape?, topic: String, partition: Int32?
        switch parts.count {
        case 3 where parts[1] == "producers":
            topic = parts[2]
            partition = nil
            shape = .lightMesh
        case 3 where parts[1] == "topics":
            topic = parts[2]
            partition = nil
            shape = nil
        case 5 where parts[1] == "topics" && parts[3] == "partitions":
            topic = parts[2]
            guard let p = Int32(parts[4]), p >= 0 else {
                return loop.makeSucceededFuture(Self.confluentError(ProduceRequestError(status: 404, errorCode: 40402, message: "partition '\(parts[4])' is not a partition number")))
            }
            partition = p
            shape = nil
        default:
            return nil
        }
        let confluent = shape == nil
        func fail(_ e: ProduceRequestError) -> EventLoopFuture<RESTResponse> {
            loop.makeSucceededFuture(confluent ? Self.confluentError(e) : .error(e.status, Self.lightMeshCode(e), e.message))
        }
        guard request.method == .POST else {
            return fail(ProduceRequestError(status: 405, errorCode: 405, message: "\(request.path) takes POST"))
        }
        if let problem = ProduceFront.topicProblem(topic, config: config) { return fail(problem) }
        let contentType = request.headers.first(name: "content-type")
        let resolved: ProduceShape
        if let shape {
            if let contentType, !contentType.lowercased().contains("json") {
                return fail(.unsupportedMediaType("Content-Type must be application/json, not \(contentType)"))
            }
            resolved = shape
        } else {
            guard let s = ProduceShape.confluent(contentType: contentType) else {
                return fail(.unsupportedMediaType("Content-Type must be application/vnd.kafka.json.v2+json, application/vnd.kafka.binary.v2+json or application/vnd.kafka.text.v2+json"))
            }
            resolved = s
        }
        let context = ProduceContext(traceparent: request.headers.first(name: "traceparent"), tracestate: request.headers.first(name: "tracestate"),
                                     correlationId: request.headers.first(name: "x-correlation-id"))
        let records: [ProducerRecord]
        // Span ids need to be unique, not secret: one draw from the OS seeds a fast generator for
        // the request (a system draw per id cost a getrandom call each, 300 per 100-record request).
        var random = SeededRandom(seed: UInt64.random(in: .min ... .max))
        do {
            records = try ProduceFront.decode(resolved, topic: topic, partition: partition, body: Array(buffer: request.body), context: context, config: config, random: &random)
        } catch {
            return fail(error)
        }
        let started = NIODeadline.now()
        let metrics = self.metrics
        if request.query.first("async") == "true" {
            for record in records {
                producer.send(record) { result in metrics.produced(result, since: started) }
            }
            return loop.makeSucceededFuture(RESTResponse(status: 204, body: []))
        }
        let promise = loop.makePromise(of: RESTResponse.self)
        let gather = ResultGather(count: records.count) { results in
            let status = ProduceFront.status(results)
            if confluent {
                if status == 404 {
                    promise.succeed(Self.confluentError(ProduceRequestError(status: 404, errorCode: 40401, message: "topic '\(topic)' not found")))
                } else {
                    promise.succeed(RESTResponse(status: 200, contentType: "application/vnd.kafka.v2+json", body: ProduceFront.confluentAnswer(results)))
                }
            } else {
                promise.succeed(RESTResponse(status: status, body: ProduceFront.lightMeshAnswer(results)))
            }
        }
        for (i, record) in records.enumerated() {
            producer.send(record) { result in
                metrics.produced(result, since: started)
                gather.set(i, result)
            }
        }
        return promise.futureResult
    }

    static func confluentError(_ e: ProduceRequestError) -> RESTResponse {
        RESTResponse(status: e.status, contentType: "application/vnd.kafka.v2+json", body: ProduceFront.errorBody(e))
    }

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

/// Collects per-record results from any thread and calls `done` once, with all of them in order.
final class ResultGather: Sendable {
    private let state: NIOLockedValueBox<(results: [Result<RecordMetadata, KafkaError>?], left: Int)>
    private let done: @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void

    init(count: Int, done: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void) {
        state = NIOLockedValueBox((Array(repeating: nil, count: count), count))
        self.done = done
    }

    func set(_ i: Int, _ result: Result<RecordMetadata, KafkaError>) {
        let finished: [Result<RecordMetadata, KafkaError>]? = state.withLockedValue { s in
            guard s.results[i] == nil else { return nil }
            s.results[i] = result
            s.left -= 1
            return s.left == 0 ? s.results.map { $0! } : nil
        }
        if let finished { done(finished) }
    }
}
