import Foundation
import MeshCore
import HTTPSidecar
import KafkaSidecar
import MeshSimulator
import SimKafka

/// The outcome of one simulated run.
public struct RunResult: Sendable {
    public var scenario: String
    public var seed: UInt64
    public var profile: FaultProfile
    /// Rolling hash of the event log.
    public var hash: UInt64
    public var events: Int
    public var logLines: Int
    public var virtualTime: Duration
    public var wallTime: Duration
    public var violations: [Violation]
    /// Coverage hits by name, sorted.
    public var coverage: [(name: String, hits: Int)]
    public var operations: (ok: Int, failed: Int, unknown: Int)

    public var passed: Bool { violations.isEmpty }
    public var hashString: String { EventLog.format(hash: hash) }

    /// The one command that replays this run.
    public func replayCommand(scenarioPath: String) -> String {
        "light-mesh sim run \(scenarioPath) --seed \(seed)"
    }
}

/// Builds a simulation from a scenario and a seed, runs it, and checks it.
public enum ScenarioRunner {
    /// Runs `scenario` with `seed`. The fault profile is drawn from the seed unless `profile` is given
    /// (replay passes the recorded one). `sink` receives every log line.
    public static func run(_ scenario: Scenario, seed: UInt64, profile: FaultProfile? = nil, sink: (any LogSink)? = nil) -> RunResult {
        let wallStart = ContinuousClock.now
        let profile = profile ?? scenario.faults.draw(seed: seed)
        let sim = Simulation(seed: seed, network: scenario.network)
        sim.log.sink = sink

        // Hosts: servers first so clients can name them.
        var servers: [HostID] = []
        var clientGroups: [String] = []
        let end = MeshInstant.zero + scenario.duration
        let quietAt = end - scenario.quiet
        // Clients keep issuing after the heal (the liveness phase) until every request can end by
        // the end of the run; a request started once the system had time to settle must succeed.
        let stopIssuing = end - max(scenario.client.deadline, scenario.http?.deadline ?? .zero, scenario.ingress?.deadline ?? .zero)
        let livenessFrom = quietAt + scenario.settle
        for group in scenario.hosts where group.role == .echoServer {
            for i in 0..<group.count {
                let config = scenario.server
                let faults = sim.faults!
                let host = sim.addHost(named: "\(group.name)-\(i)") { _ in EchoServer(config: config, faults: faults) }
                servers.append(host.id)
            }
        }
        for group in scenario.hosts where group.role == .echoClient {
            clientGroups.append(group.name)
            for i in 0..<group.count {
                let config = scenario.client
                let targets = servers
                sim.addHost(named: "\(group.name)-\(i)") { _ in EchoClient(config: config, servers: targets, stopIssuingAt: stopIssuing) }
            }
        }
        var httpClients: [(SimHost, () -> HTTPEgressClient?)] = []
        if let config = scenario.http {
            let ledger = HTTPLedger()
            var upstreams: [(host: HostID, address: MeshAddress)] = []
            for group in scenario.hosts where group.role == .httpUpstream {
                for i in 0..<group.count {
                    let faults = sim.faults!
                    let h = sim.addHost(named: "\(group.name)-\(i)") { _ in HTTPUpstream(config: config, ledger: ledger, faults: faults) }
                    upstreams.append((h.id, MeshAddress(host: h.name, port: HTTPUpstream.port)))
                }
            }
            var tokenServer: HostID?
            for group in scenario.hosts where group.role == .httpTokenServer {
                let faults = sim.faults!
                tokenServer = sim.addHost(named: "\(group.name)-0") { _ in HTTPTokenServer(config: config, ledger: ledger, faults: faults) }.id
            }
            for group in scenario.hosts where group.role == .httpClient {
                for i in 0..<group.count {
                    let pool = scenario.httpPool
                    let box = ClientBox()
                    let faults = sim.faults!
                    let h = sim.addHost(named: "\(group.name)-\(i)") { [tokenServer] _ in
                        let c = HTTPEgressClient(config: config, upstreams: upstreams, poolConfig: pool, stopAt: stopIssuing, calmAt: quietAt,
                                                tokenServer: tokenServer, faults: faults)
                        box.client = c
                        return c
                    }
                    httpClients.append((h, { box.client }))
                }
            }
        }
        if let config = scenario.ingress {
            IngressWiring.addHosts(sim, scenario, config, stopAt: stopIssuing)
        }
        var kafkaRun: (SimKafkaCluster, KafkaWorkloadConfig, KafkaLedger)?
        var sidecarChecker: KafkaSidecarChecker?
        var pullChecker: KafkaPullChecker?
        var replayChecker: DeadLetterReplayChecker?
        var streamQueryChecker: StreamQueryChecker?
        if let config = scenario.kafka {
            var kc = SimKafkaConfig()
            kc.requestTimeout = .milliseconds(500)
            let kafka = SimKafkaCluster(simulation: sim, brokers: config.brokers, config: kc)
            kafka.createTopic(config.topic, partitions: config.partitions)
            let ledger = KafkaLedger()
            let sidecar = config.sidecar.flatMap { engine in scenario.hosts.contains { $0.role == .kafkaSidecar } ? engine : nil }
            var producerIndex = 0
            for group in scenario.hosts where group.role == .kafkaProducer {
                for i in 0..<group.count {
                    let index = producerIndex
                    producerIndex += 1
                    sim.addHost(named: "\(group.name)-\(i)") { _ in
                        sidecar == nil ? KafkaProducerProcess(kafka: kafka, config: config, stopAt: quietAt) as any SimProcess
                            : KafkaRESTProducerProcess(kafka: kafka, config: config, stopAt: quietAt, index: index)
                    }
                }
            }
            if let engine = sidecar {
                kafka.createTopic(config.topic + ".dlq", partitions: 1)
                if let audit = engine.auditTopic { kafka.createTopic(audit, partitions: 1) }
                let appLedger = SidecarAppLedger()
                var apps: [HostID] = []
                for group in scenario.hosts where group.role == .kafkaApp {
                    for i in 0..<group.count {
                        let faults = sim.faults!
                        apps.append(sim.addHost(named: "\(group.name)-\(i)") { _ in KafkaSidecarApp(ledger: appLedger, faults: faults, ordering: engine.ordering) }.id)
                    }
                }
                var podIndex = 0
                for group in scenario.hosts where group.role == .kafkaSidecar {
                    for i in 0..<group.count {
                        let app = apps[podIndex]
                        podIndex += 1
                        sim.addHost(named: "\(group.name)-\(i)") { _ in KafkaSidecarPod(kafka: kafka, config: config, engineConfig: engine, ledger: appLedger, app: { app }) }
                    }
                }
                let checker = KafkaSidecarChecker(sim: sim, kafka: kafka, config: config, maxAttempts: engine.maxAttempts, ledger: appLedger)
                checker.auditTopic = engine.auditTopic
                checker.startSampling()
                sidecarChecker = checker
                if scenario.hosts.contains(where: { $0.role == .kafkaDeadLetterSidecar }) {
                    let replayLedger = ReplayLedger()
                    var pod: HostID?
                    for group in scenario.hosts where group.role == .kafkaDeadLetterSidecar {
                        pod = sim.addHost(named: "\(group.name)-0") { _ in DeadLetterPod(kafka: kafka, settings: DeadLetterSettings()) }.id
                    }
                    for group in scenario.hosts where group.role == .kafkaReplayClient {
                        sim.addHost(named: "\(group.name)-0") { _ in ReplayClient(topic: config.topic, ledger: replayLedger, stopAt: quietAt, sidecar: { pod }) }
                    }
                    replayChecker = DeadLetterReplayChecker(sim: sim, kafka: kafka, config: config, ledger: replayLedger)
                }
            }
            if let limits = config.pull, scenario.hosts.contains(where: { $0.role == .kafkaPullSidecar }) {
                let pullLedger = PullAppLedger()
                var pods: [HostID] = []
                for group in scenario.hosts where group.role == .kafkaPullSidecar {
                    for i in 0..<group.count {
                        pods.append(sim.addHost(named: "\(group.name)-\(i)") { _ in KafkaPullPod(kafka: kafka, config: config, limits: limits) }.id)
                    }
                }
                var appIndex = 0
                for group in scenario.hosts where group.role == .kafkaPullApp {
                    for i in 0..<group.count {
                        let (index, pod, faults) = (appIndex, pods[appIndex], sim.faults!)
                        appIndex += 1
                        sim.addHost(named: "\(group.name)-\(i)") { _ in
                            KafkaPullApp(index: index, topic: config.topic, ledger: pullLedger, faults: faults, idleTimeout: limits.idleTimeout, sidecar: { pod })
                        }
                    }
                }
                let checker = KafkaPullChecker(sim: sim, kafka: kafka, config: config, ledger: pullLedger)
                checker.startSampling()
                pullChecker = checker
            }
            for group in scenario.hosts where group.role == .kafkaConsumer {
                for i in 0..<group.count {
                    sim.addHost(named: "\(group.name)-\(i)") { _ in KafkaConsumerProcess(kafka: kafka, config: config, ledger: ledger) }
                }
            }
            if scenario.hosts.contains(where: { $0.role == .streamQuery }) {
                kafka.createTopic(StreamQueryWorkload.sinkTopic, partitions: StreamQueryWorkload.sinkPartitions)
                let database = SimStateDatabase()
                let queryLedger = StreamQueryLedger()
                for group in scenario.hosts where group.role == .streamQuery {
                    let faults = sim.faults!
                    sim.addHost(named: "\(group.name)-0") { _ in
                        StreamQueryPod(kafka: kafka, database: database, config: config, faults: faults, ledger: queryLedger)
                    }
                }
                streamQueryChecker = StreamQueryChecker(sim: sim, kafka: kafka, config: config, database: database, ledger: queryLedger)
            }
            kafkaRun = (kafka, config, ledger)
        }
        sim.crashObservers.append { [unowned sim] host in sim.history.abandon(process: host.name, at: sim.now) }

        let targets = sim.hosts.filter { h in scenario.faultTargets.contains { h.name.hasPrefix($0 + "-") || h.name == $0 } }.map(\.id)
        sim.log.record(0, -1, .setup, Int64(bitPattern: seed), Int64(sim.hosts.count), "profile \(profile)")
        for host in sim.hosts where !host.isUp { host.boot() }
        sim.enabledInvariants = Set(scenario.invariants)
        let nemesis = Nemesis(simulation: sim, profile: profile, crashTargets: targets)
        nemesis.start(quietAt: quietAt)
        nemesis.schedule(scenario.schedule)

        sim.run(until: end)
        if !sim.isStopped { checkHistory(sim) }
        if !sim.isStopped { checkLiveness(sim, from: livenessFrom) }
        if !sim.isStopped, let (kafka, config, ledger) = kafkaRun, scenario.hosts.contains(where: { $0.role == .kafkaConsumer }) {
            KafkaChecker.check(sim, kafka, config, ledger)
        }
        // Replays first: a replayed copy that lost its source header would look like a producer duplicate.
        if !sim.isStopped, let replayChecker { replayChecker.checkEnd() }
        if !sim.isStopped, let sidecarChecker { sidecarChecker.checkEnd() }
        if !sim.isStopped, let pullChecker { pullChecker.checkEnd() }
        if !sim.isStopped, let streamQueryChecker { streamQueryChecker.checkEnd() }
        for (host, client) in httpClients where !sim.isStopped && host.isUp { client()?.checkQuiescent(host) }

        var ok = 0, failed = 0, unknown = 0
        for op in sim.history.operations {
            switch op.outcome {
            case .ok: ok += 1
            case .failed: failed += 1
            case .unknown, .pending: unknown += 1
            }
        }
        return RunResult(
            scenario: scenario.name, seed: seed, profile: profile, hash: sim.log.hash, events: sim.eventsProcessed,
            logLines: sim.log.count, virtualTime: sim.now - .zero, wallTime: ContinuousClock.now - wallStart,
            violations: sim.violations, coverage: sim.coverage.counts, operations: (ok, failed, unknown))
    }

    /// The liveness phase: faults stopped at the heal, and after `settle` every request the clients
    /// started must have succeeded (judged from what the clients got; a request its own app gave up,
    /// `499`, is not the system's failure). A sidecar that failed everything after a fault would pass
    /// every safety check; it fails this one.
    static func checkLiveness(_ sim: Simulation, from: MeshInstant) {
        for op in sim.history.operations where (op.name == "echo" || op.name == "http" || op.name == "ingress") && op.invoked >= from {
            switch op.outcome {
            case .ok, .unknown, .pending:
                continue  // pending ones are the complete check's
            case .failed(let why):
                if why.hasPrefix("499") { continue }
                sim.violation(op.name + ".liveness",
                              "\(op.argument) started at \(op.invoked), after the heal had settled (\(from)), failed: \(why)")
                return
            }
        }
    }

    /// End-of-run checks over the whole history: every request ended (ok or failed), every echo answer
    /// is the one its request asked for, and every HTTP request's answer began by its deadline (the
    /// egress exchange keeps it; the simulated app has no timer of its own that could end a request
    /// for it).
    static func checkHistory(_ sim: Simulation) {
        for op in sim.history.operations where op.name == "echo" || op.name == "http" || op.name == "ingress" {
            switch op.outcome {
            case .pending:
                sim.violation(op.name + ".complete", "\(op.argument) invoked at \(op.invoked) never ended")
            case .ok(let body) where op.name == "echo" && body != op.argument:
                sim.violation("echo.right-response", "\(op.argument) received the response meant for \(body) at \(op.completed.map { "\($0)" } ?? "?")")
            case .ok, .failed, .unknown:
                // Judged at the answer's start: a body cut off later (a stalled upstream, or the
                // app's own pod crashing mid-body) does not make its start late.
                if op.name == "http", let deadline = op.deadline, let answered = op.answerBegan ?? op.completed, answered > deadline {
                    sim.violation("http.deadline", "\(op.argument) invoked at \(op.invoked) was answered at \(answered), after its deadline \(deadline)")
                }
            }
            if sim.isStopped { return }
        }
    }
}

/// Holds the current process of a host so the end-of-run checks can reach it.
final class ClientBox {
    var client: HTTPEgressClient?
}
