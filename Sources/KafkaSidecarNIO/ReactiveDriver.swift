import Foundation
import HTTPSidecarEngines
import HTTPClientNIO
import KafkaSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Runs one subscription's ``ReactiveConsumer`` on a Kafka group consumer and an HTTP client to the
/// app, confined to one event loop. It only moves events and actions: every decision (what to push,
/// timeouts, retries, dead letters, commits, pauses, the before-revoke step) is the engine's, the
/// same engine the simulator runs.
public final class ReactiveDriver: @unchecked Sendable {
    /// What /metrics and /health/ready read, copied after every engine step.
    public struct Snapshot: Sendable {
        public var stats = ReactiveConsumer.Stats()
        public var watermarks: [PartitionOffset] = []
        public var assigned: [TopicPartition] = []
        public var appReady = false
    }

    public let subscription: ReactiveSubscription
    private let loop: any EventLoop
    private let engine: ReactiveConsumer
    private let consumer: any KafkaGroupConsumer
    private let deadLetters: any KafkaProducer
    private let app: FetchURL
    private let fetcher: HTTPFetcher
    private let logger: Logger
    private var releases: [UInt64: @Sendable ([PartitionOffset]) -> Void] = [:]
    private var nextRevocation: UInt64 = 1
    private var random = SeededRandom(seed: UInt64.random(in: .min ... .max))
    private var stopping = false
    private let published = NIOLockedValueBox(Snapshot())

    /// Creates the consumer; nothing runs before ``start()``.
    public init(subscription: ReactiveSubscription, cluster: any KafkaCluster, deadLetters: any KafkaProducer,
                group: any EventLoopGroup, logger: Logger) throws {
        guard let app = FetchURL(subscription.app) else { throw KafkaError(code: "invalid_config", message: "app URL '\(subscription.app)' is not http://HOST:PORT/PATH") }
        self.subscription = subscription
        self.app = app
        loop = group.next()
        self.deadLetters = deadLetters
        self.logger = logger
        fetcher = try HTTPFetcher(app, group: loop, timeout: subscription.engine.pushTimeout + .seconds(1), maxIdle: subscription.engine.maxConcurrentPushes,
                                maxResponseBytes: subscription.maxAnswerBytes)
        var cc = KafkaConsumerConfig(groupId: subscription.group)
        cc.clientId = "light-mesh-kafka-sidecar"
        cc.rebalanceProtocol = subscription.rebalanceProtocol
        cc.sessionTimeout = subscription.sessionTimeout
        cc.revocationTimeout = subscription.engine.revocationGrace + .seconds(2)
        consumer = try cluster.makeConsumer(cc)
        let wallOffset = Int64(Date().timeIntervalSince1970 * 1000) - Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000)
        engine = ReactiveConsumer(config: subscription.engine, random: SeededRandom(seed: UInt64.random(in: .min ... .max)),
                                  epochMillis: { wallOffset + $0.nanoseconds / 1_000_000 })
    }

    private var now: MeshInstant { MeshInstant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds)) }

    /// Subscribes and starts polling and probing the app.
    public func start() throws {
        consumer.onRevoke { [self] revocation, release in
            loop.execute { [self] in
                let id = nextRevocation
                nextRevocation += 1
                releases[id] = release
                apply(.revoking(id: id, revocation))
            }
        }
        try consumer.subscribe(subscription.topics)
        loop.execute { [self] in apply(.started) }
    }

    /// Stops polling and leaves the group: the before-revoke step lets answers in flight finish (up
    /// to the revocation grace) and commits what is finished.
    public func stop() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute { [self] in
                stopping = true
                consumer.close { done.resume() }
            }
        }
    }

    public var snapshot: Snapshot { published.withLockedValue { $0 } }

    // MARK: driving

    /// One poll, as the engine asked; what it returns goes back to the engine, which asks for the next.
    private func poll(maxRecords: Int) {
        guard !stopping else { return }
        consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(100)) { [self] events in
            loop.execute { [self] in
                for event in events {
                    switch event {
                    case .assigned(let tps): logger.info("assigned \(tps)")
                    case .lost(let tps): logger.warning("lost \(tps) (session expired or fenced); their next owner starts from the last commit")
                    case .error(let e): logger.notice("consumer: \(e)")
                    case .revoked, .records: break
                    }
                }
                apply(.polled(events))
            }
        }
    }

    private func apply(_ event: ReactiveConsumer.Event) {
        loop.assertInEventLoop()
        for action in engine.handle(event, now: now) { perform(action) }
        published.withLockedValue { $0 = Snapshot(stats: engine.stats, watermarks: engine.watermarks, assigned: engine.assignedPartitions, appReady: engine.appReady) }
    }

    private func perform(_ action: ReactiveConsumer.Action) {
        switch action {
        case .push(let batch):
            let push = PushRequest(batch, jsonValues: subscription.engine.jsonValues, random: &random)
            fetcher.call(method: .POST, target: app.target, headers: push.fields, body: ByteBuffer(bytes: push.body), on: loop).whenComplete { [self] result in
                switch result {
                case .success(let r): apply(.pushAnswered(batch: batch.id, PushCodec.decode(status: r.status, body: Array(buffer: r.body))))
                case .failure(let e): apply(.pushAnswered(batch: batch.id, .failed(reason: "push failed: \(e)")))
                }
            }
        case .abandonPush:
            // The engine ignores a late answer; the fetcher closes the exchange when its whole-answer
            // deadline (the push timeout and a second) passes, however slowly the app drips bytes.
            break
        case .pause(let tps):
            consumer.pause(tps)
        case .resume(let tps):
            consumer.resume(tps)
        case .produceDeadLetter(let ticket, let record):
            deadLetters.send(record) { [self] result in
                if case .failure(let e) = result { logger.warning("dead-letter write to \(record.topic) failed: \(e); retrying") }
                loop.execute { [self] in apply(.deadLetterWritten(ticket: ticket, result)) }
            }
        case .writeAudit(let ticket, let records):
            deadLetters.sendBatch(records) { [self] results in
                loop.execute { [self] in apply(.auditWritten(ticket: ticket, results)) }
            }
        case .commit(let ticket, let offsets):
            consumer.commit(offsets) { [self] result in
                loop.execute { [self] in apply(.commitDone(ticket: ticket, result)) }
            }
        case .release(let id, let offsets):
            releases.removeValue(forKey: id)?(offsets)
        case .armTimer(let timer, let delay):
            loop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { [self] in apply(.timerFired(timer)) }
        case .probeApp:
            probe()
        case .poll(let maxRecords, let after):
            if after == .zero {
                poll(maxRecords: maxRecords)
            } else {
                loop.scheduleTask(in: .nanoseconds(after.nanoseconds)) { [self] in poll(maxRecords: maxRecords) }
            }
        }
    }

    /// Readiness: the app's readiness path answers below 400, or, without one, the push port accepts a connection.
    private func probe() {
        if let path = subscription.readyPath {
            fetcher.call(method: .GET, target: path, headers: [], body: nil, on: loop).whenComplete { [self] result in
                if case .success(let r) = result { apply(.appReadiness(ready: PushRequest.isReady(status: r.status))) } else { apply(.appReadiness(ready: false)) }
            }
            return
        }
        ClientBootstrap(group: loop).connectTimeout(.seconds(1)).connect(host: app.host, port: app.port).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                channel.close(promise: nil)
                apply(.appReadiness(ready: true))
            case .failure:
                apply(.appReadiness(ready: false))
            }
        }
    }

    /// Prometheus lines for this subscription, from the engine's statistics.
    public func prometheusText() -> String {
        let s = snapshot
        let g = "group=\"\(prometheusLabel(subscription.group))\""
        var out = ""
        func line(_ name: String, _ labels: String, _ value: Int) { out += "\(name){\(labels)} \(value)\n" }
        line("lightmesh_kafka_pushes_total", g, s.stats.pushes)
        line("lightmesh_kafka_pushed_records_total", g, s.stats.pushedRecords)
        line("lightmesh_kafka_push_failures_total", g, s.stats.failedPushes)
        line("lightmesh_kafka_retries_total", g, s.stats.retries)
        line("lightmesh_kafka_records_finished_total", g + ",outcome=\"succeeded\"", s.stats.succeeded)
        line("lightmesh_kafka_records_finished_total", g + ",outcome=\"dropped\"", s.stats.dropped)
        line("lightmesh_kafka_records_finished_total", g + ",outcome=\"dead_lettered\"", s.stats.deadLettered)
        line("lightmesh_kafka_commits_total", g, s.stats.commits)
        line("lightmesh_kafka_records_in_flight", g, s.stats.inFlightRecords)
        line("lightmesh_kafka_records_buffered", g, s.stats.buffered)
        line("lightmesh_kafka_app_ready", g, s.appReady ? 1 : 0)
        if subscription.engine.auditTopic != nil {
            line("lightmesh_kafka_audit_records_total", g + ",result=\"written\"", s.stats.audited)
            line("lightmesh_kafka_audit_records_total", g + ",result=\"refused\"", s.stats.auditFailed)
            line("lightmesh_kafka_audit_records_total", g + ",result=\"dropped\"", s.stats.auditDropped)
        }
        for w in s.watermarks {
            line("lightmesh_kafka_commit_watermark", g + ",topic=\"\(prometheusLabel(w.topicPartition.topic))\",partition=\"\(w.topicPartition.partition)\"", Int(w.offset))
        }
        return out
    }
}
