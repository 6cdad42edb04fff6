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

    /// Answers `request` if it is a produce request; `nil` when the path is not one of these. Every
    /// decision is ``ProduceRoutes``'s; this sends the records and gathers their results.
    public func handle(_ request: RESTRequest, on loop: any EventLoop) -> EventLoopFuture<RESTResponse>? {
        let headers = request.headers
        let produce = ProduceRequest(method: request.method.rawValue, path: request.path, query: request.query,
                                     contentType: headers.first(name: "content-type"), traceparent: headers.first(name: "traceparent"),
                                     tracestate: headers.first(name: "tracestate"), correlationId: headers.first(name: "x-correlation-id"),
                                     body: Array(buffer: request.body))
        // Span ids need to be unique, not secret: one draw from the OS seeds a fast generator for
        // the request (a system draw per id cost a getrandom call each, 300 per 100-record request).
        var random = SeededRandom(seed: UInt64.random(in: .min ... .max))
        let plan: ProducePlan
        switch ProduceRoutes.decide(produce, config: config, random: &random) {
        case .notProduce: return nil
        case .answer(let answer): return loop.makeSucceededFuture(Self.response(answer))
        case .send(let p): plan = p
        }
        let started = NIODeadline.now()
        let metrics = self.metrics
        if plan.async {
            for record in plan.records {
                producer.send(record) { result in metrics.produced(result, since: started) }
            }
            return loop.makeSucceededFuture(Self.response(ProducePlan.accepted))
        }
        let promise = loop.makePromise(of: RESTResponse.self)
        let gather = ResultGather(count: plan.records.count) { results in promise.succeed(Self.response(plan.answer(results))) }
        for (i, record) in plan.records.enumerated() {
            producer.send(record) { result in
                metrics.produced(result, since: started)
                gather.set(i, result)
            }
        }
        return promise.futureResult
    }

    static func response(_ answer: ProduceAnswer) -> RESTResponse {
        RESTResponse(status: answer.status, contentType: answer.contentType, body: answer.body)
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
