import KafkaSidecar
import MeshCore
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
            producer.sendPacked(plan.batch) { results in metrics.produced(results, since: started) }
            return loop.makeSucceededFuture(Self.response(ProducePlan.accepted))
        }
        let promise = loop.makePromise(of: RESTResponse.self)
        let (topic, flavour) = (plan.topic, plan.flavour)
        producer.sendPacked(plan.batch) { results in
            metrics.produced(results, since: started)
            promise.succeed(Self.response(ProducePlan.answer(results, topic: topic, flavour: flavour)))
        }
        return promise.futureResult
    }

    static func response(_ answer: RESTAnswer) -> RESTResponse {
        RESTResponse(status: answer.status, contentType: answer.contentType, body: answer.body)
    }
}
