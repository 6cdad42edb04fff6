import KafkaSidecar
import MeshCore
import NIOCore

/// The REST port's read-only metadata: ``MetadataRoutes`` decides, this asks the cluster (each
/// question bounded by `timeout`; no answer in time is 504) and hands the results back.
public final class MetadataService: Sendable {
    private let admin: any KafkaAdmin
    private let timeout: Duration

    public init(admin: any KafkaAdmin, timeout: Duration = .seconds(5)) {
        self.admin = admin
        self.timeout = timeout
    }

    /// Answers `request` if it is a metadata question; `nil` otherwise.
    public func handle(_ request: RESTRequest, on loop: any EventLoop) -> EventLoopFuture<RESTResponse>? {
        switch MetadataRoutes.decide(method: request.method.rawValue, path: request.path) {
        case .notMetadata:
            return nil
        case .refuse(let e):
            return loop.makeSucceededFuture(PullDriver.response(PullAnswers.refusal(e, .confluent)))
        case .query(let query):
            return answer(query, on: loop).map(PullDriver.response)
        }
    }

    private func answer(_ query: MetadataQuery, on loop: any EventLoop) -> EventLoopFuture<RESTAnswer> {
        let asked: EventLoopFuture<RESTAnswer>
        switch query {
        case .topics:
            asked = ask(loop) { done in self.admin.listTopics { done($0) } }.map(MetadataRoutes.topics)
        case .topic(let t), .partitions(let t), .partition(let t, _):
            asked = ask(loop) { done in self.admin.listTopics { done($0) } }.map { MetadataRoutes.topic(query, $0.first { $0.name == t }) }
        case .partitionOffsets(let t, let p):
            asked = ask(loop) { done in self.admin.listTopics { done($0) } }.flatMap { topics in
                guard let found = topics.first(where: { $0.name == t }), p < found.partitions else {
                    return loop.makeSucceededFuture(MetadataRoutes.topic(.partition(t, p), topics.first { $0.name == t }))
                }
                return self.ask(loop) { done in self.admin.watermarks(TopicPartition(t, p)) { done($0) } }.map(MetadataRoutes.offsets)
            }
        case .lag(let group):
            asked = ask(loop) { done in self.admin.groupOffsets(group) { done($0) } }.flatMap { committed in
                let ends = committed.map { c in
                    self.ask(loop) { done in self.admin.watermarks(c.topicPartition) { done($0) } }.map { (c.topicPartition, $0.high) }
                }
                return EventLoopFuture.whenAllComplete(ends, on: loop).map { results in
                    MetadataRoutes.lag(group: group, committed: committed,
                                       ends: Dictionary(results.compactMap { try? $0.get() }, uniquingKeysWith: { a, _ in a }))
                }
            }
        }
        let timeout = self.timeout
        return asked.recover { error in
            let e = error as? KafkaError ?? KafkaError(code: "timeout", message: "the brokers did not answer in \(timeout)")
            return PullAnswers.refusal(e.code == "timeout" ? PullError(status: 504, code: 50401, message: e.message) : .kafka(e), .confluent)
        }
    }

    /// One admin call as a future, failed with a timeout if it does not answer in time.
    private func ask<T: Sendable>(_ loop: any EventLoop, _ call: @escaping @Sendable (@escaping @Sendable (Result<T, KafkaError>) -> Void) -> Void) -> EventLoopFuture<T> {
        let promise = loop.makePromise(of: T.self)
        call { promise.completeWith($0.mapError { $0 as any Error }) }
        let timeout = self.timeout
        loop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            promise.fail(KafkaError(code: "timeout", message: "the brokers did not answer in \(timeout)"))
        }
        return promise.futureResult
    }
}
