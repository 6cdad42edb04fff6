import KafkaSidecar
import Logging
import MeshCore
import NIOCore
import NIOPosix
import Prometheus
import SidecarAuth

/// Settings of the whole Kafka sidecar.
public struct KafkaSidecarSettings: Sendable {
    /// The REST listener (produce, /openapi.json).
    public var listen = MeshAddress(host: "127.0.0.1", port: 9082)
    /// The admin listener (/health/live, /health/ready, /metrics).
    public var admin = MeshAddress(host: "127.0.0.1", port: 9902)
    /// Bounds of the REST listener (body size, connections, request and idle timeouts).
    public var restLimits = RESTLimits()
    /// Largest REST body in bytes (larger: 413).
    public var maxBodyBytes: Int {
        get { restLimits.maxBodyBytes }
        set { restLimits.maxBodyBytes = newValue }
    }
    public var produce = ProduceFrontConfig()
    public var subscriptions: [ReactiveSubscription] = []
    /// Limits of the pull consumers apps create over REST (`/consumers/...`).
    public var pull = PullConsumerLimits()
    /// How pull consumers read commits and write errors, unless an instance asks otherwise.
    public var apiFlavour: APIFlavour = .confluent
    /// The dead-letter endpoints (`/deadletters/{topic}`): templates, limits, the replay timeout.
    public var deadLetters = DeadLetterSettings()
    public var threads = 1
    public init() {}
}

/// The running Kafka sidecar: REST produce, the reactive subscriptions and the admin listener.
public final class KafkaSidecarServer: Sendable {
    /// The version `GET /` reports (as Strimzi's bridge_version).
    public static let version = "0.1.0"
    public let rest: RESTServer
    public let adminServer: RESTServer
    public let drivers: [ReactiveDriver]
    public let pull: PullDriver
    public let deadLetters: DeadLetterService
    private let producer: any KafkaProducer
    private let admin: any KafkaAdmin
    private let ownsGroup: MultiThreadedEventLoopGroup?

    /// Builds everything on `cluster`; nothing listens before ``start()``. With `authenticator`, every
    /// REST request needs a valid bearer token (the admin listener stays open: probes carry none).
    public init(settings: KafkaSidecarSettings, cluster: any KafkaCluster, group: MultiThreadedEventLoopGroup? = nil,
                authenticator: JWTAuthenticator? = nil, logger: Logger) throws {
        // A group passed in stays the caller's to shut down.
        ownsGroup = group == nil ? MultiThreadedEventLoopGroup(numberOfThreads: settings.threads) : nil
        let group = group ?? ownsGroup!
        let registry = PrometheusCollectorRegistry()
        let metrics = KafkaSidecarMetrics(factory: PrometheusMetricsFactory(registry: registry))
        var pc = KafkaProducerConfig()
        pc.clientId = "light-mesh-kafka-sidecar"
        // A REST caller waits for its records' acknowledgements: linger less than the default 5 ms
        // (under load, records still batch while earlier requests are in flight).
        pc.lingerMilliseconds = 1
        let producer = try cluster.makeProducer(pc)
        let admin = try cluster.makeAdmin()
        self.producer = producer
        self.admin = admin
        let drivers = try settings.subscriptions.map { try ReactiveDriver(subscription: $0, cluster: cluster, deadLetters: producer, group: group, logger: logger) }
        self.drivers = drivers
        let produce = ProduceService(producer: producer, config: settings.produce, metrics: metrics)
        let pull = PullDriver(cluster: cluster, limits: settings.pull, flavour: settings.apiFlavour, group: group, logger: logger)
        self.pull = pull
        let metadata = MetadataService(admin: admin)
        var deadLetterSettings = settings.deadLetters
        for sub in settings.subscriptions {
            for t in sub.topics { deadLetterSettings.subscribedTemplates[t] = sub.engine.deadLetterTopic }
        }
        let deadLetters = DeadLetterService(cluster: cluster, admin: admin, producer: producer, settings: deadLetterSettings, group: group, logger: logger)
        self.deadLetters = deadLetters
        rest = RESTServer(listen: settings.listen, group: group, limits: settings.restLimits, authenticator: authenticator) { request, loop in
            // Read-only questions first: GET /topics/{t} is metadata, POST /topics/{t} is produce.
            if let answer = metadata.handle(request, on: loop) { return answer }
            if let answer = produce.handle(request, on: loop) { return answer }
            if let answer = pull.handle(request) { return answer.hop(to: loop) }
            if let answer = deadLetters.handle(request) { return answer.hop(to: loop) }
            if request.path == "/openapi.json" || request.path == "/openapi" {
                guard request.method == .GET || request.method == .HEAD else {
                    return loop.makeSucceededFuture(.kafkaError(405, 405, "\(request.path) takes GET"))
                }
                return loop.makeSucceededFuture(RESTResponse(status: 200, body: Array(KafkaSidecarOpenAPI.document.utf8)))
            }
            // Strimzi bridge's probes and version, on the REST port too (its clients and charts use them).
            switch (request.method, request.path) {
            case (.GET, "/"):
                return loop.makeSucceededFuture(RESTResponse(status: 200, body: Array("{\"bridge_version\":\"\(Self.version)\"}".utf8)))
            case (.GET, "/healthy"):
                return loop.makeSucceededFuture(RESTResponse(status: 200, body: []))
            case (.GET, "/ready"):
                return Self.readiness(admin: admin, drivers: drivers, loop: loop).map { RESTResponse(status: $0.status == 200 ? 200 : 500, body: []) }
            default:
                break
            }
            return loop.makeSucceededFuture(.kafkaError(404, 404, "no route for \(request.method) \(request.path); see /openapi.json"))
        }
        var adminLimits = RESTLimits()
        adminLimits.maxBodyBytes = 0
        adminLimits.maxConnections = 64
        adminServer = RESTServer(listen: settings.admin, group: group, limits: adminLimits) { request, loop in
            switch (request.method, request.path) {
            case (.GET, "/health/live"):
                return loop.makeSucceededFuture(RESTResponse(status: 200, body: Array("{\"status\":\"live\"}\n".utf8)))
            case (.GET, "/health/ready"):
                return Self.readiness(admin: admin, drivers: drivers, loop: loop)
            case (.GET, "/metrics"):
                return Self.lag(admin: admin, drivers: drivers, loop: loop).map { lag in
                    let text = registry.emitToString() + drivers.map { $0.prometheusText() }.joined()
                        + "lightmesh_kafka_pull_instances \(pull.instances)\n" + deadLetters.prometheusText() + lag
                    return RESTResponse(status: 200, contentType: "text/plain; version=0.0.4", body: Array(text.utf8))
                }
            default:
                return loop.makeSucceededFuture(.error(404, "not_found", "admin paths: /health/live /health/ready /metrics"))
            }
        }
    }

    /// Binds both listeners and starts the subscriptions; returns the REST and admin addresses.
    public func start() async throws -> (rest: MeshAddress, admin: MeshAddress) {
        let r = try await rest.start()
        let a = try await adminServer.start()
        for d in drivers { try d.start() }
        return (r, a)
    }

    /// Leaves the groups (committing what is finished), flushes produced records, closes listeners.
    public func stop() async throws {
        try await rest.stop()
        await pull.stop()
        for d in drivers { await d.stop() }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            producer.flush(timeout: .seconds(10)) { _ in done.resume() }
        }
        try await adminServer.stop()
        try await ownsGroup?.shutdownGracefully()
    }

    /// Ready when the brokers answer and every subscription's app is ready.
    static func readiness(admin: any KafkaAdmin, drivers: [ReactiveDriver], loop: any EventLoop) -> EventLoopFuture<RESTResponse> {
        let promise = loop.makePromise(of: Bool.self)
        admin.listTopics { result in if case .success = result { promise.succeed(true) } else { promise.succeed(false) } }
        loop.scheduleTask(in: .seconds(2)) { promise.succeed(false) }
        return promise.futureResult.map { broker in
            let apps = drivers.filter { !$0.snapshot.appReady }.map { $0.subscription.group }
            if broker && apps.isEmpty { return RESTResponse(status: 200, body: Array("{\"status\":\"ready\"}\n".utf8)) }
            var reasons: [String] = []
            if !broker { reasons.append(JSONText.quoted("broker unreachable")) }
            for g in apps { reasons.append(JSONText.quoted("app of \(g) not ready")) }
            return RESTResponse(status: 503, body: Array("{\"status\":\"not_ready\",\"reasons\":[\(reasons.joined(separator: ","))]}\n".utf8))
        }
    }

    /// `lightmesh_kafka_consumer_lag{group,topic,partition}` for every assigned partition: the log end
    /// minus the commit watermark, or minus the group's committed offset where nothing was fetched
    /// since the assignment; from the brokers at scrape time (what does not answer within a second is
    /// left out).
    static func lag(admin: any KafkaAdmin, drivers: [ReactiveDriver], loop: any EventLoop) -> EventLoopFuture<String> {
        let futures = drivers.map { driver -> EventLoopFuture<String> in
            let snapshot = driver.snapshot
            let group = driver.subscription.group
            guard !snapshot.assigned.isEmpty else { return loop.makeSucceededFuture("") }
            let committed = loop.makePromise(of: [PartitionOffset].self)
            if snapshot.watermarks.count < snapshot.assigned.count {
                admin.groupOffsets(group) { result in committed.succeed((try? result.get()) ?? []) }
                loop.scheduleTask(in: .seconds(1)) { committed.succeed([]) }
            } else {
                committed.succeed([])
            }
            return committed.futureResult.flatMap { committedOffsets in
                let parts = snapshot.assigned.compactMap { tp -> EventLoopFuture<String> in
                    guard let mark = snapshot.watermarks.first(where: { $0.topicPartition == tp })?.offset
                            ?? committedOffsets.first(where: { $0.topicPartition == tp })?.offset else { return loop.makeSucceededFuture("") }
                    let p = loop.makePromise(of: String.self)
                    admin.watermarks(tp) { result in
                        if case .success(let w) = result {
                            p.succeed("lightmesh_kafka_consumer_lag{group=\"\(prometheusLabel(group))\",topic=\"\(prometheusLabel(tp.topic))\",partition=\"\(tp.partition)\"} \(max(0, w.high - mark))\n")
                        } else {
                            p.succeed("")
                        }
                    }
                    loop.scheduleTask(in: .seconds(1)) { p.succeed("") }
                    return p.futureResult
                }
                return EventLoopFuture.whenAllComplete(parts, on: loop).map { $0.compactMap { try? $0.get() }.joined() }
            }
        }
        return EventLoopFuture.whenAllComplete(futures, on: loop).map { $0.compactMap { try? $0.get() }.joined() }
    }
}
