import KafkaSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore

/// Runs the REST port's dead-letter jobs (``DeadLetterJob``: replay and inspection), confined to
/// one event loop. Each job gets a consumer of its replay group (manually assigned, so it joins no
/// group and disturbs no member), copies with the sidecar's producer and asks the admin seam for
/// the topic's ends. It only moves events and actions: what is copied, committed and answered is
/// the engine's. One replay per topic at a time on a sidecar (a second one: 409).
public final class DeadLetterService: @unchecked Sendable {
    private final class Running: @unchecked Sendable {
        let job: DeadLetterJob
        let consumer: any KafkaGroupConsumer
        let promise: EventLoopPromise<RESTResponse>
        init(job: DeadLetterJob, consumer: any KafkaGroupConsumer, promise: EventLoopPromise<RESTResponse>) {
            self.job = job
            self.consumer = consumer
            self.promise = promise
        }
    }

    private let loop: any EventLoop
    private let cluster: any KafkaCluster
    private let admin: any KafkaAdmin
    private let producer: any KafkaProducer
    private let settings: DeadLetterSettings
    private let logger: Logger
    private var replaying: Set<String> = []
    private let counters = NIOLockedValueBox((replayed: 0, replays: [String: Int]()))

    public init(cluster: any KafkaCluster, admin: any KafkaAdmin, producer: any KafkaProducer, settings: DeadLetterSettings,
                group: any EventLoopGroup, logger: Logger) {
        self.cluster = cluster
        self.admin = admin
        self.producer = producer
        self.settings = settings
        self.logger = logger
        loop = group.next()
    }

    /// Answers `request` if it is a dead-letter path; `nil` otherwise.
    public func handle(_ request: RESTRequest) -> EventLoopFuture<RESTResponse>? {
        guard request.path.hasPrefix("/deadletters") else { return nil }
        switch DeadLetterRoutes.decide(method: request.method.rawValue, path: request.path, query: request.query,
                                       body: Array(buffer: request.body), settings: settings) {
        case .notDeadLetter:
            return nil
        case .refuse(let e):
            return loop.makeSucceededFuture(PullDriver.response(PullAnswers.refusal(e, .confluent)))
        case .run(let plan):
            return loop.flatSubmit { [self] in run(plan) }
        }
    }

    /// `lightmesh_kafka_deadletters_replayed_total` and `lightmesh_kafka_deadletter_replays_total{outcome}`.
    public func prometheusText() -> String {
        let (replayed, replays) = counters.withLockedValue { $0 }
        var text = "# TYPE lightmesh_kafka_deadletters_replayed_total counter\nlightmesh_kafka_deadletters_replayed_total \(replayed)\n"
        text += "# TYPE lightmesh_kafka_deadletter_replays_total counter\n"
        for outcome in ["complete", "partial", "failed"] {
            text += "lightmesh_kafka_deadletter_replays_total{outcome=\"\(outcome)\"} \(replays[outcome] ?? 0)\n"
        }
        return text
    }

    private func run(_ plan: DeadLetterPlan) -> EventLoopFuture<RESTResponse> {
        if plan.kind == .replay {
            guard replaying.insert(plan.topic).inserted else {
                return loop.makeSucceededFuture(PullDriver.response(PullAnswers.refusal(DeadLetterRoutes.replayRunning(plan.topic), .confluent)))
            }
        }
        var config = KafkaConsumerConfig(groupId: plan.group)
        config.clientId = "light-mesh-deadletters"
        config.resetPolicy = .earliest
        let consumer: any KafkaGroupConsumer
        do {
            consumer = try cluster.makeConsumer(config)
        } catch {
            if plan.kind == .replay { replaying.remove(plan.topic) }
            return loop.makeSucceededFuture(PullDriver.response(PullAnswers.refusal(.kafka(error), .confluent)))
        }
        let r = Running(job: DeadLetterJob(plan: plan), consumer: consumer, promise: loop.makePromise())
        apply(r, .started)
        return r.promise.futureResult
    }

    private func apply(_ r: Running, _ event: DeadLetterJob.Event) {
        loop.assertInEventLoop()
        for action in r.job.handle(event) { perform(r, action) }
    }

    private func later(_ r: Running, _ event: DeadLetterJob.Event) {
        loop.execute { [self] in apply(r, event) }
    }

    private func perform(_ r: Running, _ action: DeadLetterJob.Action) {
        switch action {
        case .describe(let topic):
            admin.listTopics { [self] result in
                switch result {
                case .failure(let e): later(r, .described(.failure(e)))
                case .success(let topics):
                    guard let found = topics.first(where: { $0.name == topic }), found.partitions > 0 else { return later(r, .described(.success([:]))) }
                    watermarks((0..<found.partitions).map { TopicPartition(topic, $0) }, r)
                }
            }
        case .fetchCommitted(let tps):
            r.consumer.committed(tps) { [self] result in later(r, .committedFetched(result)) }
        case .assign(let tps):
            do { try r.consumer.assign(tps) } catch { later(r, .failed(error)) }
        case .poll(let maxRecords):
            r.consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(200)) { [self] events in later(r, .polled(events)) }
        case .produce(let ticket, let records):
            producer.sendBatch(records) { [self] results in later(r, .delivered(ticket: ticket, results)) }
        case .commit(let ticket, let offsets):
            r.consumer.commit(offsets) { [self] result in later(r, .commitDone(ticket: ticket, result)) }
        case .armDeadline(let after):
            loop.scheduleTask(in: .nanoseconds(after.nanoseconds)) { [self] in apply(r, .deadlineFired) }
        case .finish(let report):
            let plan = report.plan
            if plan.kind == .replay {
                replaying.remove(plan.topic)
                let outcome = report.failure != nil ? "failed" : report.complete ? "complete" : "partial"
                counters.withLockedValue { c in
                    c.replayed += report.copied
                    c.replays[outcome, default: 0] += 1
                }
                logger.info("dead-letter replay of \(plan.topic) from \(plan.deadLetterTopic): \(report.copied) copied, \(outcome)\(report.failure.map { ": \($0)" } ?? "")")
            }
            r.promise.succeed(PullDriver.response(DeadLetterRoutes.answer(report)))
            r.consumer.close {}
        }
    }

    /// Every partition's watermarks, then `.described` (a partition that does not answer fails the job).
    private func watermarks(_ tps: [TopicPartition], _ r: Running) {
        let found = NIOLockedValueBox((ends: [TopicPartition: Watermarks](), left: tps.count, failed: false))
        for tp in tps {
            admin.watermarks(tp) { [self] result in
                let done: Result<[TopicPartition: Watermarks], KafkaError>? = found.withLockedValue { f in
                    guard !f.failed else { return nil }
                    switch result {
                    case .failure(let e):
                        f.failed = true
                        return .failure(e)
                    case .success(let w):
                        f.ends[tp] = w
                        f.left -= 1
                        return f.left == 0 ? .success(f.ends) : nil
                    }
                }
                if let done { later(r, .described(done)) }
            }
        }
    }
}
