import Foundation
import HTTPSidecar
import KafkaSidecar
import MeshConfig
import MeshCore
import MeshSimulator
import Yams

/// A simulation scenario, read from YAML in `fixtures/scenarios/`: hosts, network, workload, faults
/// (fixed or swarm ranges), the invariants checked and the coverage expected, and the duration.
public struct Scenario: Sendable {
    public struct HostGroup: Sendable, Hashable {
        public var name: String
        public var count: Int
        public var role: Role
        public enum Role: String, Sendable, Hashable, CaseIterable {
            case echoServer = "echo-server", echoClient = "echo-client"
            case kafkaProducer = "kafka-producer", kafkaConsumer = "kafka-consumer"
            /// A Kafka sidecar pod (the production reactive consumer engine) and the app it pushes to.
            case kafkaSidecar = "kafka-sidecar", kafkaApp = "kafka-app"
            /// A Kafka sidecar pod serving pull consumers over REST (the production engine and
            /// routes) and the app that polls it.
            case kafkaPullSidecar = "kafka-pull-sidecar", kafkaPullApp = "kafka-pull-app"
            /// A Kafka sidecar pod serving the dead-letter endpoints over REST (the production job and
            /// routes), and the operator's script that replays through it (with a kafka-sidecar).
            case kafkaDeadLetterSidecar = "kafka-deadletter-sidecar", kafkaReplayClient = "kafka-replay-client"
            /// A pod running the production continuous-query runner over the producers' topic, its
            /// state in a simulated database (the stream-query workload).
            case streamQuery = "stream-query"
            case httpUpstream = "http-upstream", httpClient = "http-client", httpTokenServer = "http-token-server"
            /// The ingress workload: a sidecar pod running the production ingress decisions, its app,
            /// and clients (a group named `internal…` calls from 10.0.0.0/8, others from 192.0.2.0/24).
            case ingressSidecar = "ingress-sidecar", ingressApp = "ingress-app", ingressClient = "ingress-client"
        }
    }

    public var name: String
    /// Where it was loaded from (used in replay commands).
    public var path: String
    public var description: String
    /// Virtual time the run lasts.
    public var duration: Duration
    /// Faults stop and heal this long before the end, so liveness can be checked.
    public var quiet: Duration
    /// After the heal, how long the system may take to recover before every new request must
    /// succeed (the liveness phase runs from `duration - quiet + settle`).
    public var settle: Duration = .zero
    public var network: NetworkConfig
    public var hosts: [HostGroup]
    public var server: EchoServerConfig
    public var client: EchoClientConfig
    /// The Kafka pipeline workload, when the scenario has kafka-producer / kafka-consumer hosts.
    public var kafka: KafkaWorkloadConfig?
    /// The egress workload, when the scenario has http-upstream / http-client hosts.
    public var http: HTTPEgressConfig?
    public var httpPool = UpstreamPool.Config()
    /// The ingress workload, when the scenario has ingress-sidecar / ingress-app / ingress-client hosts.
    public var ingress: IngressWorkloadConfig?
    public var faults: FaultRanges
    /// Host-name prefixes the nemesis may crash, clog and hold.
    public var faultTargets: [String]
    /// Faults at fixed times, applied in every run on top of the drawn profile.
    public var schedule: [ScheduledFault]
    /// Invariants enforced in this scenario (all of the workload's by default).
    public var invariants: [String]
    /// Coverage names a swarm must hit at least once, or it fails.
    public var expectSometimes: [String]
    /// A stable hash of the file's text, recorded in logs so replay notices an edited scenario.
    public var contentHash: UInt64

    /// Loads and validates a scenario file.
    public static func load(path: String) throws -> Scenario {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(key: "", "cannot read scenario file \(path)")
        }
        return try parse(text, path: path)
    }

    /// Parses scenario YAML; every unknown or malformed key is refused with its path.
    public static func parse(_ text: String, path: String) throws -> Scenario {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw ConfigError(key: "", "\(path) is not valid YAML: \(error)") }
        var top = try YAMLFields(root, path: "")
        guard let name = try top.string("name") else { throw ConfigError(key: "name", "is required") }
        var s = Scenario(
            name: name, path: path, description: try top.string("description") ?? "",
            duration: try top.duration("duration") ?? .seconds(10), quiet: try top.duration("quiet") ?? .seconds(2),
            network: NetworkConfig(), hosts: [], server: EchoServerConfig(), client: EchoClientConfig(), kafka: nil, http: nil,
            faults: FaultRanges(), faultTargets: [], schedule: [], invariants: Scenario.echoInvariants, expectSometimes: try top.strings("expect_sometimes") ?? [],
            contentHash: StableHash.fnv1a(text))
        guard s.quiet < s.duration else { throw ConfigError(key: "quiet", "must be shorter than duration") }
        s.settle = try top.duration("settle") ?? s.quiet / 3
        guard s.settle < s.quiet else { throw ConfigError(key: "settle", "must be shorter than quiet") }

        var net = try top.child("network")
        s.network.latencyMin = try net.duration("latency_min") ?? s.network.latencyMin
        s.network.latencyTailMean = try net.duration("latency_tail_mean") ?? s.network.latencyTailMean
        s.network.capacity = try net.int("capacity") ?? s.network.capacity
        s.network.reorderDelay = try net.duration("reorder_delay") ?? s.network.reorderDelay
        s.network.retransmitDelay = try net.duration("retransmit_delay") ?? s.network.retransmitDelay
        try net.rejectUnknownKeys()

        for var group in try top.children("hosts") {
            guard let gname = try group.string("name") else { throw ConfigError(key: group.path + ".name", "is required") }
            let roleText = try group.string("role") ?? ""
            guard let role = HostGroup.Role(rawValue: roleText) else {
                throw ConfigError(key: group.path + ".role", "unknown role '\(roleText)' (known: \(HostGroup.Role.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let count = try group.int("count") ?? 1
            guard count >= 1 else { throw ConfigError(key: group.path + ".count", "must be at least 1") }
            s.hosts.append(HostGroup(name: gname, count: count, role: role))
            try group.rejectUnknownKeys()
        }
        let roles = Set(s.hosts.map(\.role))
        let echo = roles.contains(.echoServer) || roles.contains(.echoClient)
        let pull = roles.contains(.kafkaPullSidecar) || roles.contains(.kafkaPullApp)
        let streamQuery = roles.contains(.streamQuery)
        let kafka = roles.contains(.kafkaProducer) || roles.contains(.kafkaConsumer) || roles.contains(.kafkaSidecar) || pull || streamQuery
        let sidecar = roles.contains(.kafkaSidecar)
        let replay = roles.contains(.kafkaDeadLetterSidecar) || roles.contains(.kafkaReplayClient)
        if replay && !(sidecar && s.hosts.filter({ $0.role == .kafkaDeadLetterSidecar }).map(\.count) == [1]
                       && s.hosts.filter({ $0.role == .kafkaReplayClient }).map(\.count) == [1]) {
            throw ConfigError(key: "hosts", "replays need a kafka-sidecar group (to dead-letter), one kafka-deadletter-sidecar host and one kafka-replay-client host")
        }
        let http = roles.contains(.httpUpstream) || roles.contains(.httpClient)
        let ingress = roles.contains(.ingressSidecar) || roles.contains(.ingressApp) || roles.contains(.ingressClient)
        guard echo || kafka || http || ingress else { throw ConfigError(key: "hosts", "needs an echo, kafka, http or ingress workload") }
        if ingress {
            guard s.hosts.filter({ $0.role == .ingressSidecar }).map(\.count) == [1], s.hosts.filter({ $0.role == .ingressApp }).map(\.count) == [1],
                  roles.contains(.ingressClient) else {
                throw ConfigError(key: "hosts", "the ingress workload needs one ingress-sidecar host, one ingress-app host and an ingress-client group")
            }
            try parseIngress(&top, into: &s)
            s.invariants = IngressChecks.invariants
        } else if top.has("ingress") {
            throw ConfigError(key: "ingress", "given, but no ingress hosts")
        }
        if http && !(roles.contains(.httpUpstream) && roles.contains(.httpClient)) {
            throw ConfigError(key: "hosts", "the http workload needs an http-upstream and an http-client group")
        }
        if http {
            try parseHTTP(&top, into: &s)
            s.invariants = (echo ? Scenario.echoInvariants : []) + HTTPEgressChecks.invariants
        } else if top.has("http") {
            throw ConfigError(key: "http", "given, but no http-upstream / http-client hosts")
        }
        if echo && !(roles.contains(.echoServer) && roles.contains(.echoClient)) {
            throw ConfigError(key: "hosts", "the echo workload needs an echo-server and an echo-client group")
        }
        if kafka && !(roles.contains(.kafkaProducer) && (roles.contains(.kafkaConsumer) || sidecar || pull || streamQuery)) {
            throw ConfigError(key: "hosts", "the kafka workload needs a kafka-producer group and a kafka-consumer, kafka-sidecar, kafka-pull-sidecar or stream-query group")
        }
        if streamQuery && s.hosts.filter({ $0.role == .streamQuery }).map(\.count) != [1] {
            // One runner reads every partition (no repartitioning yet): a second would count twice.
            throw ConfigError(key: "hosts", "the stream-query workload runs one stream-query host")
        }
        let pullSidecars = s.hosts.filter { $0.role == .kafkaPullSidecar }.map(\.count).reduce(0, +)
        let pullApps = s.hosts.filter { $0.role == .kafkaPullApp }.map(\.count).reduce(0, +)
        if pullSidecars != pullApps {
            throw ConfigError(key: "hosts", "each kafka-pull-sidecar needs its kafka-pull-app: \(pullSidecars) sidecars, \(pullApps) apps")
        }
        let sidecars = s.hosts.filter { $0.role == .kafkaSidecar }.map(\.count).reduce(0, +)
        let apps = s.hosts.filter { $0.role == .kafkaApp }.map(\.count).reduce(0, +)
        if sidecars != apps {
            throw ConfigError(key: "hosts", "each kafka-sidecar needs its kafka-app: \(sidecars) sidecars, \(apps) apps")
        }
        if kafka {
            var k = try top.child("kafka")
            var config = KafkaWorkloadConfig()
            config.brokers = try k.int("brokers") ?? config.brokers
            config.partitions = Int32(try k.int("partitions") ?? Int(config.partitions))
            if let acks = try k.string("acks") {
                guard let a = KafkaProducerConfig.Acks(rawValue: acks == "1" ? "1" : acks) else { throw ConfigError(key: "kafka.acks", "must be all, 1 or 0") }
                config.acks = a
            }
            if let idem = try k.string("idempotent") { config.idempotent = idem == "true" }
            config.produceInterval = try k.duration("produce_interval") ?? config.produceInterval
            config.sessionTimeout = try k.duration("session_timeout") ?? config.sessionTimeout
            guard config.brokers >= 1, config.partitions >= 1 else { throw ConfigError(key: "kafka", "needs at least one broker and one partition") }
            if k.has("sidecar") {
                var sc = try k.child("sidecar")
                var engine = KafkaWorkloadConfig.simulatedSidecar
                if let text = try sc.string("ordering") {
                    guard let o = RecordOrdering(rawValue: text) else { throw ConfigError(key: "kafka.sidecar.ordering", "must be partition, key or none") }
                    engine.ordering = o
                }
                engine.maxAttempts = try sc.int("max_attempts") ?? engine.maxAttempts
                engine.maxBatchRecords = try sc.int("max_batch") ?? engine.maxBatchRecords
                engine.maxBufferedRecords = try sc.int("max_buffered") ?? engine.maxBufferedRecords
                engine.pushTimeout = try sc.duration("push_timeout") ?? engine.pushTimeout
                engine.revocationGrace = try sc.duration("revocation_grace") ?? engine.revocationGrace
                if try sc.bool("audit") == true {
                    engine.auditTopic = config.topic + ".audit"
                    engine.auditBatchRecords = 20
                    engine.auditInterval = .milliseconds(200)
                    engine.auditBufferLimit = 100_000
                }
                if let text = try sc.string("rebalance") {
                    guard let r = KafkaConsumerConfig.RebalanceProtocol(rawValue: text) else { throw ConfigError(key: "kafka.sidecar.rebalance", "must be cooperative or eager") }
                    config.sidecarRebalance = r
                }
                guard engine.maxAttempts >= 1, engine.maxBatchRecords >= 1, engine.maxBufferedRecords >= engine.maxBatchRecords else {
                    throw ConfigError(key: "kafka.sidecar", "max_attempts and max_batch must be at least 1, max_buffered at least max_batch")
                }
                try sc.rejectUnknownKeys()
                config.sidecar = engine
            } else if sidecar {
                config.sidecar = KafkaWorkloadConfig.simulatedSidecar
            }
            if k.has("pull") {
                var pc = try k.child("pull")
                var limits = KafkaWorkloadConfig.simulatedPull
                limits.idleTimeout = try pc.duration("idle_timeout") ?? limits.idleTimeout
                limits.maxBufferedRecords = try pc.int("max_buffered") ?? limits.maxBufferedRecords
                guard limits.idleTimeout > .zero, limits.maxBufferedRecords >= 1 else {
                    throw ConfigError(key: "kafka.pull", "idle_timeout must be positive, max_buffered at least 1")
                }
                try pc.rejectUnknownKeys()
                config.pull = limits
            } else if pull {
                config.pull = KafkaWorkloadConfig.simulatedPull
            }
            try k.rejectUnknownKeys()
            s.kafka = config
            var invariants: [String] = echo ? Scenario.echoInvariants : []
            if http { invariants += HTTPEgressChecks.invariants }
            if roles.contains(.kafkaConsumer) { invariants += KafkaChecker.invariants }
            if sidecar { invariants += KafkaSidecarChecker.invariants }
            if pull { invariants += KafkaPullChecker.invariants }
            if replay { invariants += DeadLetterReplayChecker.invariants }
            if streamQuery { invariants += StreamQueryChecker.invariants }
            s.invariants = invariants
        } else if top.has("kafka") {
            throw ConfigError(key: "kafka", "given, but no kafka-producer / kafka-consumer hosts")
        }

        var w = try top.child("workload")
        if let t = try w.string("transport") {
            guard let transport = EchoClientConfig.Transport(rawValue: t) else { throw ConfigError(key: "workload.transport", "must be datagram or stream") }
            s.client.transport = transport
        }
        s.client.concurrency = try w.int("concurrency") ?? s.client.concurrency
        s.client.thinkTime = try w.duration("think_time") ?? s.client.thinkTime
        s.client.attemptTimeout = try w.duration("attempt_timeout") ?? s.client.attemptTimeout
        s.client.deadline = try w.duration("deadline") ?? s.client.deadline
        var backoff = try w.child("backoff")
        let initial = try backoff.duration("initial") ?? s.client.backoff.initial
        let maximum = try backoff.duration("max") ?? s.client.backoff.maximum
        guard initial > .zero, maximum >= initial else { throw ConfigError(key: "workload.backoff", "needs 0 < initial <= max") }
        s.client.backoff = ExponentialBackoff(initial: initial, maximum: maximum)
        try backoff.rejectUnknownKeys()
        var budget = try w.child("retry_budget")
        s.client.budgetRatio = try budget.double("ratio") ?? s.client.budgetRatio
        s.client.budgetMinPerSecond = try budget.double("min_per_second") ?? s.client.budgetMinPerSecond
        try budget.rejectUnknownKeys()
        var service = try w.child("service_time")
        s.server.serviceMin = try service.duration("min") ?? s.server.serviceMin
        s.server.serviceTailMean = try service.duration("tail_mean") ?? s.server.serviceTailMean
        try service.rejectUnknownKeys()
        if let bug = try w.string("planted_bug") {
            guard let planted = EchoClientConfig.PlantedBug(rawValue: bug) else {
                throw ConfigError(key: "workload.planted_bug", "unknown bug '\(bug)' (known: none, reuse-request-id)")
            }
            s.client.plantedBug = planted
        }
        guard s.client.concurrency >= 1 else { throw ConfigError(key: "workload.concurrency", "must be at least 1") }
        guard s.client.deadline + .milliseconds(1) < s.duration - s.quiet else {
            throw ConfigError(key: "workload.deadline", "must be shorter than duration minus quiet")
        }
        try w.rejectUnknownKeys()

        var f = try top.child("faults")
        s.faultTargets = try f.strings("targets")
            ?? (s.hosts.filter { $0.role == .echoServer || $0.role == .httpUpstream }.map(\.name) + (s.kafka == nil ? [] : ["broker"]))
        func rate(_ key: String, _ f: inout YAMLFields) throws -> FaultRanges.Rate? {
            guard f.has(key) else { return nil }
            var r = try f.child(key)
            let p = try r.probability("p") ?? 1
            let (lo, hi) = try r.numberRange("range") ?? (0, 0)
            try r.rejectUnknownKeys()
            return FaultRanges.Rate(probability: p, low: lo, high: hi)
        }
        func periodic(_ key: String, _ f: inout YAMLFields) throws -> (FaultRanges.Periodic, YAMLFields)? {
            guard f.has(key) else { return nil }
            var r = try f.child(key)
            let p = try r.probability("p") ?? 1
            guard let every = try r.durationRange("every") else { throw ConfigError(key: r.path + ".every", "is required") }
            let length = try r.durationRange("length") ?? (Duration.milliseconds(100)...Duration.milliseconds(100))
            return (FaultRanges.Periodic(probability: p, every: every, length: length), r)
        }
        s.faults.loss = try rate("loss", &f)
        s.faults.duplicate = try rate("duplicate", &f)
        s.faults.reorder = try rate("reorder", &f)
        for key in ["crash", "partition", "clog", "hold"] {
            guard let (p, r) = try periodic(key, &f) else { continue }
            try r.rejectUnknownKeys()
            switch key {
            case "crash": s.faults.crash = p
            case "partition": s.faults.partition = p
            case "clog": s.faults.clog = p
            default: s.faults.hold = p
            }
        }
        if let (p, fields) = try periodic("latency_spike", &f) {
            var r = fields
            if let (lo, hi) = try r.numberRange("factor") { s.faults.spikeFactor = .init(probability: 1, low: lo, high: hi) }
            try r.rejectUnknownKeys()
            s.faults.latencySpike = p
        }
        if f.has("buggify") {
            var b = try f.child("buggify")
            let p = try b.probability("p") ?? 1
            let (lo, hi) = try b.numberRange("fire") ?? (0.05, 0.05)
            s.faults.buggify = .init(probability: p, low: lo, high: hi)
            s.faults.buggifyEnable = try b.probability("enable") ?? s.faults.buggifyEnable
            try b.rejectUnknownKeys()
        }
        try f.rejectUnknownKeys()

        let names = Set(s.hostNames)
        for var entry in try top.children("schedule") {
            guard let at = try entry.duration("at") else { throw ConfigError(key: entry.path + ".at", "is required") }
            guard at < s.duration - s.quiet else { throw ConfigError(key: entry.path + ".at", "must fall before the quiet period") }
            var actions: [ScheduledFault.Action] = []
            func host(_ key: String) throws -> String? {
                guard let h = try entry.string(key) else { return nil }
                guard names.contains(h) else { throw ConfigError(key: "\(entry.path).\(key)", "unknown host '\(h)' (hosts: \(s.hostNames.joined(separator: ", ")))") }
                return h
            }
            if let h = try host("crash") { actions.append(.crash(h)) }
            if let h = try host("restart") { actions.append(.restart(h)) }
            if let h = try host("clog") { actions.append(.clog(h)) }
            if let h = try host("unclog") { actions.append(.unclog(h)) }
            if let h = try host("hold") { actions.append(.hold(h)) }
            if let h = try host("release") { actions.append(.release(h)) }
            if entry.has("heal") { _ = entry.node("heal"); actions.append(.heal) }
            if entry.has("partition") {
                var p = try entry.child("partition")
                let a = try p.strings("a") ?? [], b = try p.strings("b") ?? []
                for h in a + b where !names.contains(h) { throw ConfigError(key: p.path, "unknown host '\(h)'") }
                guard !a.isEmpty, !b.isEmpty else { throw ConfigError(key: p.path, "needs non-empty a and b host lists") }
                let oneWay = try p.string("one_way").map { $0 == "true" } ?? false
                try p.rejectUnknownKeys()
                actions.append(.partition(a: a, b: b, oneWay: oneWay))
            }
            guard actions.count == 1 else {
                throw ConfigError(key: entry.path, "needs exactly one of crash, restart, partition, heal, clog, unclog, hold, release")
            }
            try entry.rejectUnknownKeys()
            s.schedule.append(ScheduledFault(at: at, actions[0]))
        }

        if let listed = try top.strings("invariants") {
            let known = Scenario.echoInvariants + KafkaChecker.invariants + HTTPEgressChecks.invariants + KafkaSidecarChecker.invariants + IngressChecks.invariants
            for name in listed where !known.contains(name) {
                throw ConfigError(key: "invariants", "unknown invariant '\(name)' (known: \(known.joined(separator: ", ")))")
            }
            s.invariants = listed
        }
        try top.rejectUnknownKeys()
        return s
    }

    /// A workload's `service_time: {min, tail_mean}` (a fixed part and an exponential tail).
    static func serviceTime(_ section: inout YAMLFields, default d: (Duration, Duration)) throws -> (Duration, Duration) {
        var service = try section.child("service_time")
        let times = (try service.duration("min") ?? d.0, try service.duration("tail_mean") ?? d.1)
        try service.rejectUnknownKeys()
        return times
    }

    /// Reads the `ingress:` section.
    static func parseIngress(_ top: inout YAMLFields, into s: inout Scenario) throws {
        var i = try top.child("ingress")
        var c = IngressWorkloadConfig()
        c.concurrency = try i.int("concurrency") ?? c.concurrency
        c.thinkTime = try i.duration("think_time") ?? c.thinkTime
        c.deadline = try i.duration("deadline") ?? c.deadline
        c.upstreamTimeout = try i.duration("upstream_timeout") ?? c.upstreamTimeout
        c.pipelineShare = try i.probability("pipeline_share") ?? c.pipelineShare
        c.smugglingShare = try i.probability("smuggling_share") ?? c.smugglingShare
        c.corsShare = try i.probability("cors_share") ?? c.corsShare
        c.jwtShare = try i.probability("jwt_share") ?? c.jwtShare
        c.headerTimeout = try i.duration("header_timeout") ?? c.headerTimeout
        c.maxBodyBytes = try i.int("max_body_bytes") ?? c.maxBodyBytes
        c.oversizeShare = try i.probability("oversize_share") ?? c.oversizeShare
        c.stallShare = try i.probability("stall_share") ?? c.stallShare
        (c.serviceMin, c.serviceTailMean) = try serviceTime(&i, default: (c.serviceMin, c.serviceTailMean))
        guard c.concurrency >= 1, c.upstreamTimeout < c.deadline else {
            throw ConfigError(key: "ingress", "concurrency must be at least 1 and upstream_timeout shorter than deadline")
        }
        guard c.headerTimeout < c.upstreamTimeout, c.maxBodyBytes >= 64 else {
            throw ConfigError(key: "ingress", "header_timeout must be shorter than upstream_timeout (a stalled body is 408, not 504), and max_body_bytes at least 64")
        }
        try i.rejectUnknownKeys()
        s.ingress = c
    }

    /// Reads the `http:` section (egress workload and the pool's resilience settings).
    static func parseHTTP(_ top: inout YAMLFields, into s: inout Scenario) throws {
        var h = try top.child("http")
        var c = HTTPEgressConfig()
        c.concurrency = try h.int("concurrency") ?? c.concurrency
        c.thinkTime = try h.duration("think_time") ?? c.thinkTime
        c.attemptTimeout = try h.duration("attempt_timeout") ?? c.attemptTimeout
        c.connectTimeout = try h.duration("connect_timeout") ?? c.connectTimeout
        c.deadline = try h.duration("deadline") ?? c.deadline
        c.unsafeShare = try h.probability("unsafe_share") ?? c.unsafeShare
        c.appDisconnect = try h.probability("app_disconnect") ?? c.appDisconnect
        c.upstreamTLS = try h.bool("upstream_tls") ?? c.upstreamTLS
        if let p = try h.string("policy") {
            guard let policy = LoadBalancingPolicy(rawValue: p) else {
                throw ConfigError(key: "http.policy", "unknown policy '\(p)' (known: \(LoadBalancingPolicy.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            c.policy = policy
        }
        (c.serviceMin, c.serviceTailMean) = try serviceTime(&h, default: (c.serviceMin, c.serviceTailMean))
        var pool = UpstreamPool.Config()
        pool.policy = c.policy
        // The same reader as the HTTP sidecar's configuration file (`egress.services.NAME`).
        try PoolSections.read(&h, into: &pool)
        c.discoveryChurn = try h.durationRange("discovery_churn")
        var rate = try h.child("rate_limit")
        if let r = try rate.double("rate") {
            guard r > 0 else { throw ConfigError(key: "http.rate_limit.rate", "must be positive") }
            c.rateLimit = RateLimiter.Config(rate: r, burst: max(1, try rate.int("burst") ?? 10))
        }
        try rate.rejectUnknownKeys()
        if h.has("oauth") {
            var o = try h.child("oauth")
            var cache = TokenCache.Config()
            c.tokenLifetime = try o.duration("lifetime") ?? c.tokenLifetime
            cache.expiryMargin = try o.duration("expiry_margin") ?? cache.expiryMargin
            cache.refreshShare = try o.probability("refresh_share") ?? cache.refreshShare
            cache.retryAfterFailure = try o.duration("retry_after_failure") ?? cache.retryAfterFailure
            try o.rejectUnknownKeys()
            c.oauth = cache
            guard s.hosts.contains(where: { $0.role == .httpTokenServer && $0.count == 1 }) else {
                throw ConfigError(key: "http.oauth", "needs one http-token-server host (a group with count 1)")
            }
        }
        try h.rejectUnknownKeys()
        s.http = c
        s.httpPool = pool
    }

    /// The invariants the echo workload checks.
    public static let echoInvariants = ["echo.complete", "echo.right-response", "echo.liveness"]

    /// Names of the hosts this scenario creates, in creation order.
    public var hostNames: [String] {
        hosts.flatMap { g in (0..<g.count).map { "\(g.name)-\($0)" } } + (0..<(kafka?.brokers ?? 0)).map { "broker-\($0 + 1)" }
    }
}
