import ArgumentParser
import Foundation
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import KafkaRdKafka
import KafkaSidecar
import KafkaSidecarNIO
import Logging
import MeshConfig
import MeshCore
import NIOPosix

struct KafkaSidecarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-sidecar",
        abstract: "Run the Kafka sidecar: Kafka over REST for the app, and a reactive consumer that pushes records to it.",
        discussion: """
            Produce (REST, --listen): POST /producers/{topic} (light-mesh shape), POST /topics/{topic} and \
            /topics/{topic}/partitions/{p} (Confluent REST v2 json.v2 and binary.v2, Strimzi headers and \
            timestamp, ?async=true answers 204). One idempotent producer; per-record results; the inbound \
            traceparent is continued in one new span per request (its records share it) and \
            X-Correlation-Id carried; Authorization and Cookie are never copied into records. GET \
            /openapi.json describes it all.

            Reactive consumer (with --subscribe and --group): records are POSTed to --app in batches as \
            {"records":[...]}; the app answers {"statuses":[{"id","status":"SUCCESS|RETRY|DEADLETTER|DROP"}]}. \
            RETRY and failed pushes retry with jittered exponential backoff; after --max-attempts, or on \
            DEADLETTER, the record is written to the dead-letter topic with lightmesh.dlq.* headers. Per \
            partition, the committed offset never passes a record not finished (answered SUCCESS or DROP, or \
            its dead-letter copy acknowledged), on a rebalance or shutdown either. Nothing is pushed while \
            the app is not ready (--app-ready-path, else: its port accepts connections).

            Pull consumers (REST): POST /consumers/{group} makes an instance (Confluent v2 and Strimzi \
            properties), then .../subscription, GET .../records?timeout=&max_bytes= (waits for records), \
            POST .../offsets (Confluent: offset+1 stored, 200; Strimzi with --api-flavour strimzi or \
            "api_flavour": stored as given, 204; an empty body commits what was returned), .../positions, \
            DELETE. A commit never passes a record the instance did not return. An instance lives in this \
            process and closes after consumers.idle_timeout (5 min) unused.

            Dead letters (REST): GET /deadletters/{topic}?limit= shows the records of {topic}'s dead-letter \
            topic not yet replayed, with why they are there; POST /deadletters/{topic}/replay \
            {"max","until_offset","group"} copies them back to {topic} (lightmesh.dlq.* headers kept, \
            lightmesh.dlq.replayed.from added), committing the replay group only past acknowledged copies: \
            at-least-once, and a replay cut short copies a record at most once more when run again.

            Metadata (REST, read only): GET /topics, /topics/{t}, /topics/{t}/partitions[/{p}[/offsets]], \
            /consumers/{group}/lag; Strimzi's /healthy, /ready and / (bridge_version).

            JWT (--jwks-file or --jwks-url, or rest.jwt in the file): every REST request needs a valid \
            Authorization: Bearer token (401 error_code 40101, a missing scope 403 40301); without it the \
            REST port takes requests unauthenticated, which start-up warns about when it listens beyond loopback.

            Admin (--admin-listen): /health/live, /health/ready (brokers reachable and every app ready), \
            /metrics (Prometheus: produce latency, pushes, retries, outcomes, in flight, lag per partition).

            With --config FILE everything comes from the YAML file and LIGHT_MESH_<KEY_PATH> variables \
            (see fixtures/configs/kafka-sidecar.yaml), including several subscriptions. SIGTERM or SIGINT \
            leaves the groups after committing what is finished, and flushes produced records.
            """
    )

    // Each flag writes the configuration key it stands for (``FlagDocument``), read by the file's
    // reader; a flag not given leaves the key, and its default, to the settings.
    @Option(help: "YAML configuration; LIGHT_MESH_<KEY_PATH> variables override it. With it, the file and the variables configure everything.") var config: String?
    @Option(help: "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].") var bootstrap: String?
    @Option(help: "Consumer group of the reactive subscription.") var group: String?
    @Option(name: .customLong("subscribe"), help: "Topic the reactive consumer reads (repeatable).") var topics: [String] = []
    @Option(help: "The app's push endpoint (default \(ReactiveSubscription.defaultApp)).") var app: String?
    @Option(help: "The app's readiness path on the push endpoint's origin (without it: ready while its port accepts connections).") var appReadyPath: String?
    @Option(help: "Dead-letter topic; {topic} is the record's topic (default \(ReactiveConsumerConfig().deadLetterTopic)).") var deadLetterTopic: String?
    @Option(help: "Pushes of one record before it is dead-lettered (default \(ReactiveConsumerConfig().maxAttempts)).") var maxAttempts: Int?
    @Option(help: "Record order towards the app: partition (default), key or none.") var ordering: String?
    @Option(help: "Seconds the app may take to answer a push (default \(ReactiveConsumerConfig().pushTimeout.seconds)).") var pushTimeout: Double?
    @Option(help: "Records in one push (default \(ReactiveConsumerConfig().maxBatchRecords)).") var maxBatch: Int?
    @Option(help: "Records fetched and not finished before partitions pause (default \(ReactiveConsumerConfig().maxBufferedRecords)).") var maxBuffered: Int?
    @Option(help: "Pushes in flight at once (default \(ReactiveConsumerConfig().maxConcurrentPushes)).") var maxConcurrentPushes: Int?
    @Option(help: "REST listen address, HOST:PORT (default \(KafkaSidecarSettings().listen): loopback).") var listen: String?
    @Option(help: "Admin listen address, HOST:PORT (default \(KafkaSidecarSettings().admin)).") var adminListen: String?
    @Option(help: "Largest REST body in bytes, larger: 413 (default \(KafkaSidecarSettings().maxBodyBytes)).") var maxBodyBytes: Int?
    @Option(help: "REST connections open at once, more are closed on accept (default \(RESTLimits().maxConnections)).") var maxConnections: Int?
    @Option(help: "Seconds a whole REST request (head and body) may take to arrive, else 408 (default \(RESTLimits().requestTimeout.seconds)).") var requestTimeout: Double?
    @Option(help: "Event-loop threads (default \(KafkaSidecarSettings().threads)).") var threads: Int?
    @Option(help: "Pull consumers' API: confluent (commits store offset+1, answer 200; five-digit error codes) or strimzi (offsets stored as given, 204; HTTP codes) (default \(KafkaSidecarSettings().apiFlavour.rawValue)).") var apiFlavour: String?
    @OptionGroup(title: "JWT verification on the REST port") var jwt: JWTOptions

    func validate() throws { _ = try settings() }

    /// The bootstrap servers and sidecar settings: from the configuration file when given, else from
    /// the flags, read by the same reader.
    func settings() throws -> (bootstrap: String, settings: KafkaSidecarSettings, jwt: JWTSettings?) {
        if let config {
            do { return try KafkaSidecarConfigFile.load(config) } catch let error as ConfigError { throw ValidationError("\(config): \(error)") }
        }
        let flags = try flagDocument()
        do {
            return try KafkaSidecarConfigFile.read(try flags.document(), environment: [:])
        } catch let error as ConfigError {
            throw flags.explain(error)
        }
    }

    /// The flags given, as the configuration keys they stand for.
    func flagDocument() throws -> FlagDocument {
        var d = FlagDocument()
        d.name(["kafka", "bootstrap"], flags: "--bootstrap")
        d.set(["kafka", "bootstrap"], bootstrap, flag: "--bootstrap")
        d.set(["rest", "listen"], listen, flag: "--listen")
        d.set(["rest", "max_body_bytes"], maxBodyBytes, flag: "--max-body-bytes")
        d.set(["rest", "max_connections"], maxConnections, flag: "--max-connections")
        d.set(["rest", "request_timeout"], FlagDocument.seconds(requestTimeout), flag: "--request-timeout")
        try jwt.write(into: &d, at: ["rest", "jwt"])
        d.set(["admin", "listen"], adminListen, flag: "--admin-listen")
        d.set(["threads"], threads, flag: "--threads")
        d.set(["consumers", "api_flavour"], apiFlavour, flag: "--api-flavour")
        // One subscription from the flags (several only in a file).
        var sub: [String: Any] = [:]
        let fields: [(String, Any?, String)] = [
            ("group", group, "--group"), ("topics", topics.isEmpty ? nil : topics, "--subscribe"), ("app", app, "--app"),
            ("ready_path", appReadyPath, "--app-ready-path"), ("dead_letter_topic", deadLetterTopic, "--dead-letter-topic"),
            ("max_attempts", maxAttempts, "--max-attempts"), ("ordering", ordering, "--ordering"),
            ("push_timeout", FlagDocument.seconds(pushTimeout), "--push-timeout"), ("max_batch", maxBatch, "--max-batch"),
            ("max_buffered", maxBuffered, "--max-buffered"), ("max_concurrent_pushes", maxConcurrentPushes, "--max-concurrent-pushes"),
        ]
        for (key, value, flag) in fields {
            d.name(["subscriptions[0]", key], flags: flag)
            if let value { sub[key] = value }
        }
        // The reader decides what a subscription needs (a group and a topic), after the bootstrap.
        if !sub.isEmpty { d.set(["subscriptions"], [sub], flag: "--group") }
        return d
    }

    func run() async throws {
        let (bootstrap, settings, jwt) = try settings()
        let server = try await KafkaSidecarCommand.start(bootstrap: bootstrap, settings: settings, jwt: jwt)
        await waitForSignal()
        try await server.stop()
    }

    /// Starts the sidecar on `bootstrap` and says where it listens (shared with `up`).
    static func start(bootstrap: String, settings: KafkaSidecarSettings, jwt: JWTSettings?) async throws -> KafkaSidecarServer {
        var logger = Logger(label: "light-mesh.kafka-sidecar")
        logger.logLevel = .notice
        signal(SIGPIPE, SIG_IGN)
        var cluster = RdKafkaClusterSettings(bootstrapServers: bootstrap)
        var kafkaLogger = Logger(label: "light-mesh.kafka")
        kafkaLogger.logLevel = .warning
        cluster.logger = kafkaLogger
        // The JWKS loader (a URL is fetched again on an unknown kid) runs on the shared NIO group.
        let authenticator = try await jwt?.makeAuthenticator(group: MultiThreadedEventLoopGroup.singleton)
        let server = try KafkaSidecarServer(settings: settings, cluster: RdKafkaCluster(cluster), authenticator: authenticator, logger: logger)
        let (rest, admin) = try await server.start()
        if authenticator == nil, !["127.0.0.1", "::1", "localhost"].contains(settings.listen.host) {
            logger.warning("the REST listener is bound to \(settings.listen.host), beyond loopback, and takes requests without authentication: anyone who can reach it can produce to any topic (set rest.jwt or --jwks-file)")
        }
        var line = "kafka-sidecar: REST on \(rest), admin on \(admin), brokers \(bootstrap)"
        for s in settings.subscriptions { line += "; group \(s.group) reads \(s.topics.joined(separator: ",")) and pushes to \(s.app)" }
        FileHandle.standardError.write(Data((line + "\n").utf8))
        return server
    }
}

/// `light-mesh kafka-sidecar --config FILE`: every key validated, every scalar overridable by
/// `LIGHT_MESH_<PATH>` (see ``SidecarConfigFile``).
enum KafkaSidecarConfigFile {
    static func load(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (bootstrap: String, settings: KafkaSidecarSettings, jwt: JWTSettings?) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ConfigError(key: "", "cannot read \(path)") }
        let document = try YAMLFields.document(text, source: path)
        guard !document.keys.isEmpty else { throw ConfigError(key: "", "\(path) is empty; write at least the kafka section") }
        return try read(document, environment: environment)
    }

    /// Reads a configuration document: a file's, or the flags' (``FlagDocument``, with no environment).
    static func read(_ document: YAMLFields, environment: [String: String]) throws -> (bootstrap: String, settings: KafkaSidecarSettings, jwt: JWTSettings?) {
        var top = SidecarConfigFile.Section(document, environment, SidecarConfigFile.ConsultedVariables())
        var s = KafkaSidecarSettings()
        var kafka = try top.child("kafka")
        guard let bootstrap = try kafka.string("bootstrap"), !bootstrap.isEmpty else { throw ConfigError(key: "kafka.bootstrap", "is required (HOST:PORT[,...])") }
        try kafka.done()
        var rest = try top.child("rest")
        s.listen = try rest.address("listen") ?? s.listen
        s.maxBodyBytes = try rest.int("max_body_bytes", min: 1) ?? s.maxBodyBytes
        s.produce.maxRecordsPerRequest = try rest.int("max_records", min: 1) ?? s.produce.maxRecordsPerRequest
        if let denied = try rest.strings("denied_headers") { s.produce.deniedHeaders.formUnion(denied.map { $0.lowercased() }) }
        s.restLimits.maxConnections = try rest.int("max_connections", min: 1) ?? s.restLimits.maxConnections
        s.restLimits.requestTimeout = try rest.duration("request_timeout") ?? s.restLimits.requestTimeout
        s.restLimits.idleTimeout = try rest.duration("idle_timeout") ?? s.restLimits.idleTimeout
        s.produce.allowInternalTopics = try rest.bool("allow_internal_topics") ?? s.produce.allowInternalTopics
        var jwtSection = try rest.child("jwt")
        let jwt = try JWTSettings.read(&jwtSection)
        try rest.done()
        var admin = try top.child("admin")
        s.admin = try admin.address("listen") ?? s.admin
        try admin.done()
        s.threads = try top.int("threads", min: 1) ?? s.threads
        var consumers = try top.child("consumers")
        if let text = try consumers.string("api_flavour") {
            guard let f = APIFlavour(rawValue: text) else { throw ConfigError(key: consumers.name("api_flavour"), "must be confluent or strimzi") }
            s.apiFlavour = f
        }
        s.pull.maxInstances = try consumers.int("max_instances", min: 1) ?? s.pull.maxInstances
        s.pull.idleTimeout = try consumers.duration("idle_timeout") ?? s.pull.idleTimeout
        s.pull.maxBufferedRecords = try consumers.int("max_buffered", min: 1) ?? s.pull.maxBufferedRecords
        s.pull.maxBufferedBytes = try consumers.int("max_buffered_bytes", min: 1) ?? s.pull.maxBufferedBytes
        s.pull.maxFetchBytes = try consumers.int("max_fetch_bytes", min: 1) ?? s.pull.maxFetchBytes
        s.pull.maxFetchTimeout = try consumers.duration("max_fetch_timeout") ?? s.pull.maxFetchTimeout
        guard s.pull.idleTimeout > .zero else { throw ConfigError(key: consumers.name("idle_timeout"), "must be positive") }
        try consumers.done()
        var deadLetters = try top.child("deadletters")
        s.deadLetters.topicTemplate = try deadLetters.string("topic") ?? s.deadLetters.topicTemplate
        s.deadLetters.groupTemplate = try deadLetters.string("group") ?? s.deadLetters.groupTemplate
        s.deadLetters.timeout = try deadLetters.duration("replay_timeout") ?? s.deadLetters.timeout
        s.deadLetters.batchSize = try deadLetters.int("batch_size", min: 1) ?? s.deadLetters.batchSize
        guard s.deadLetters.timeout > .zero else { throw ConfigError(key: deadLetters.name("replay_timeout"), "must be positive") }
        try deadLetters.done()
        for var sub in try top.children("subscriptions") {
            guard let group = try sub.string("group"), !group.isEmpty else { throw ConfigError(key: sub.name("group"), "is required") }
            guard let topics = try sub.strings("topics"), !topics.isEmpty else { throw ConfigError(key: sub.name("topics"), "needs at least one topic") }
            var r = ReactiveSubscription(group: group, topics: topics, app: try sub.string("app") ?? ReactiveSubscription.defaultApp,
                                         readyPath: try sub.string("ready_path"))
            if let text = try sub.string("ordering") {
                guard let o = RecordOrdering(rawValue: text) else { throw ConfigError(key: sub.name("ordering"), "must be partition, key or none") }
                r.engine.ordering = o
            }
            r.engine.deadLetterTopic = try sub.string("dead_letter_topic") ?? r.engine.deadLetterTopic
            r.engine.maxAttempts = try sub.int("max_attempts", min: 1) ?? r.engine.maxAttempts
            r.engine.maxBatchRecords = try sub.int("max_batch", min: 1) ?? r.engine.maxBatchRecords
            r.engine.maxBufferedRecords = try sub.int("max_buffered", min: 1) ?? r.engine.maxBufferedRecords
            r.engine.maxConcurrentPushes = try sub.int("max_concurrent_pushes", min: 1) ?? r.engine.maxConcurrentPushes
            r.engine.pushTimeout = try sub.duration("push_timeout") ?? r.engine.pushTimeout
            r.engine.revocationGrace = try sub.duration("revocation_grace") ?? r.engine.revocationGrace
            r.engine.readinessInterval = try sub.duration("readiness_interval") ?? r.engine.readinessInterval
            if let v = try sub.bool("json_values") { r.engine.jsonValues = v }
            r.engine.auditTopic = try sub.string("audit_topic")
            r.engine.auditBatchRecords = try sub.int("audit_batch", min: 1) ?? r.engine.auditBatchRecords
            r.engine.auditInterval = try sub.duration("audit_interval") ?? r.engine.auditInterval
            var backoff = try sub.child("retry_backoff")
            let initial = try backoff.duration("initial") ?? r.engine.retryBackoff.initial
            let maximum = try backoff.duration("max") ?? r.engine.retryBackoff.maximum
            guard initial > .zero, maximum >= initial else { throw ConfigError(key: backoff.name("max"), "needs 0 < initial <= max") }
            r.engine.retryBackoff = ExponentialBackoff(initial: initial, maximum: maximum)
            try backoff.done()
            if let p = try sub.string("rebalance") {
                guard let v = KafkaConsumerConfig.RebalanceProtocol(rawValue: p) else { throw ConfigError(key: sub.name("rebalance"), "must be cooperative or eager") }
                r.rebalanceProtocol = v
            }
            r.sessionTimeout = try sub.duration("session_timeout") ?? r.sessionTimeout
            try sub.done()
            try check(r, at: sub.name(""))
            s.subscriptions.append(r)
        }
        try top.done()
        return (bootstrap, s, jwt)
    }

    /// Refuses settings the engine cannot honour, naming where they came from.
    static func check(_ r: ReactiveSubscription, at path: String) throws {
        guard FetchURL(r.app) != nil else { throw ConfigError(key: path + "app", "'\(r.app)' is not an http(s)://HOST:PORT/PATH URL") }
        guard r.engine.maxAttempts >= 1 else { throw ConfigError(key: path + "max_attempts", "must be at least 1") }
        guard r.engine.maxBatchRecords >= 1, r.engine.maxBufferedRecords >= r.engine.maxBatchRecords else {
            throw ConfigError(key: path + "max_buffered", "must be at least max_batch (\(r.engine.maxBatchRecords))")
        }
        guard r.engine.pushTimeout > .zero else { throw ConfigError(key: path + "push_timeout", "must be positive") }
        guard r.engine.deadLetterTopic.contains("{topic}") || !r.topics.contains(r.engine.deadLetterTopic) else {
            throw ConfigError(key: path + "dead_letter_topic", "must not be a topic the subscription reads")
        }
        if let ready = r.readyPath, !ready.hasPrefix("/") { throw ConfigError(key: path + "ready_path", "must start with /") }
    }
}
