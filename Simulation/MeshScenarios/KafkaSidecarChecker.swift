import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// Produces through the REST front: each request goes through the production ``ProduceRoutes`` (path,
/// method, Content-Type, body), as the NIO driver runs it. Valid requests alternate between the
/// light-mesh shape (JSON values, even hosts) and Confluent's json.v2 (string values, odd hosts);
/// one in eight is hostile, from ``hostile``, and must be refused with its status and produce nothing
/// (`kafka-sidecar.produce-front`).
final class KafkaRESTProducerProcess: SimProcess {
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let stopAt: MeshInstant
    private let index: Int
    private var producer: (any KafkaProducer)?
    private var sequence = 0

    /// Requests the front must refuse, with the status each must get: (method, path, Content-Type, body, status).
    static let hostile: [(String, String, String?, String, Int)] = [
        ("POST", "/topics/__consumer_offsets", "application/vnd.kafka.json.v2+json", #"{"records":[{"value":1}]}"#, 403),
        ("POST", "/topics/a%20b", "application/vnd.kafka.json.v2+json", #"{"records":[{"value":1}]}"#, 400),
        ("GET", "/topics/TOPIC", "application/vnd.kafka.json.v2+json", "", 405),
        ("POST", "/topics/TOPIC/partitions/-1", "application/vnd.kafka.json.v2+json", #"{"records":[{"value":1}]}"#, 404),
        ("POST", "/topics/TOPIC", "text/plain", #"{"records":[{"value":1}]}"#, 415),
        ("POST", "/topics/TOPIC", "application/vnd.kafka.json.v2+json", #"{"records":[]}"#, 422),
        ("POST", "/topics/TOPIC", "application/vnd.kafka.json.v2+json", #"{"records":[{"value":1,"extra":2}]}"#, 422),
        ("POST", "/topics/TOPIC", "application/vnd.kafka.json.v2+json", #"{"records":[{"value":1}],"records":[]}"#, 422),
        ("POST", "/topics/TOPIC", "application/vnd.kafka.json.v2+json", #"{"records":[{"value":1"#, 400),
        ("POST", "/topics/TOPIC", "application/vnd.kafka.binary.v2+json", #"{"records":[{"value":"not base64!"}]}"#, 422),
        ("POST", "/producers/TOPIC", "application/json",
         #"{"records":[{"value":"v","headers":{"traceparent\u0000":"x"}}]}"#, 422),
        ("POST", "/producers/TOPIC", "application/json",
         #"{"records":[{"value":"v","headers":[{"name":"traceparent","value":"a"},{"name":"traceparent","value":"b"}]}]}"#, 422),
    ]

    init(kafka: SimKafkaCluster, config: KafkaWorkloadConfig, stopAt: MeshInstant, index: Int) {
        self.kafka = kafka
        self.config = config
        self.stopAt = stopAt
        self.index = index
    }

    func start(on host: SimHost) {
        var pc = KafkaProducerConfig()
        pc.clientId = host.name
        pc.deliveryTimeout = .seconds(5)
        producer = try? kafka.connection(from: host).makeProducer(pc)
        host.setTimer(after: config.produceInterval)
    }

    func receive(_ event: NetEvent, on host: SimHost) {}

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard host.now < stopAt, let producer else { return }
        defer { host.setTimer(after: config.produceInterval) }
        var random = host.random
        defer { host.random = random }
        if random.next() % 8 == 0 {
            return refuseHostile(Self.hostile[Int(random.next() % UInt64(Self.hostile.count))], host: host, random: &random)
        }
        let name = "\(host.name)/\(host.incarnation)/\(sequence)"
        sequence += 1
        let request = index % 2 == 0
            ? ProduceRequest(method: "POST", path: "/producers/\(config.topic)", contentType: "application/json", correlationId: name,
                             body: Array("{\"keyFormat\":\"json\",\"valueFormat\":\"json\",\"records\":[{\"key\":\"k\(sequence % 8)\",\"value\":\"\(name)\"}]}".utf8))
            : ProduceRequest(method: "POST", path: "/topics/\(config.topic)", contentType: "application/vnd.kafka.json.v2+json", correlationId: name,
                             body: Array("{\"records\":[{\"key\":\"k\(sequence % 8)\",\"value\":\"\(name)\",\"headers\":{\"Authorization\":\"Bearer x\"}}]}".utf8))
        guard case .send(let plan) = ProduceRoutes.decide(request, config: ProduceFrontConfig(), random: &random), !plan.batch.isEmpty else {
            host.simulation.violation("kafka-sidecar.produce-front", "the REST front refused \(String(decoding: request.body, as: UTF8.self))")
            return
        }
        // Both shapes keep JSON keys and values as the bytes sent, so a key is the same key (`"k3"`)
        // from either shape: it lands on one partition and is one lane for keyed ordering. (With a
        // string key in one shape and a JSON one in the other, `k3` and `"k3"` would be two Kafka keys
        // that an app reading the push cannot tell apart.)
        let record = plan.batch.record(0)
        KafkaProducerProcess.send(record, as: String(decoding: record.value ?? [], as: UTF8.self), by: producer, on: host)
    }

    /// A hostile request must be refused with its status: nothing of it is produced.
    private func refuseHostile(_ h: (String, String, String?, String, Int), host: SimHost, random: inout SeededRandom) {
        let (path, query) = QueryString.split(target: h.1.replacingOccurrences(of: "TOPIC", with: config.topic))
        let request = ProduceRequest(method: h.0, path: String(path), query: query, contentType: h.2, body: Array(h.3.utf8))
        switch ProduceRoutes.decide(request, config: ProduceFrontConfig(), random: &random) {
        case .answer(let answer) where answer.status == h.4:
            host.simulation.coverage.hit("kafka-sidecar.hostile-refused")
        case .answer(let answer):
            host.simulation.violation("kafka-sidecar.produce-front", "\(h.0) \(h.1) \(h.3) was answered \(answer.status), not \(h.4)")
        case .send(let plan):
            host.simulation.violation("kafka-sidecar.produce-front", "\(h.0) \(h.1) \(h.3) was accepted: \(plan.batch.count) record(s) to produce")
        case .notProduce:
            host.simulation.violation("kafka-sidecar.produce-front", "\(h.0) \(h.1) was not taken as a produce request")
        }
    }
}

/// Checks the Kafka sidecar against an independent history: what the producers were told (the
/// history), what the brokers hold (the logs and the group's committed offsets, read from the
/// cluster's state) and what the apps saw and decided (``SidecarAppLedger``). Never the engine's own
/// view.
final class KafkaSidecarChecker {
    static let invariants = [
        "kafka-sidecar.no-commit-past-unfinished", "kafka-sidecar.commit-monotonic", "kafka-sidecar.all-finished",
        "kafka-sidecar.committed-to-end", "kafka-sidecar.dead-letter-copies", "kafka-sidecar.as-decided", "kafka-sidecar.order",
        "kafka-sidecar.push-wellformed", "kafka-sidecar.produce-front", "kafka-sidecar.no-credentials",
        "kafka.no-lost-ack", "kafka.no-duplicate", "kafka-sidecar.audit-truthful",
    ]

    private let sim: Simulation
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let maxAttempts: Int
    let ledger: SidecarAppLedger
    private var lastCommitted: [TopicPartition: Int64] = [:]
    private var checkedBelow: [TopicPartition: Int64] = [:]
    /// (partition, offset) of every record the dead-letter topic holds, as its headers name it.
    private var deadLetteredOffsets: [TopicPartition: Set<Int64>] = [:]
    private var deadLetterScanned: Int64 = 0

    /// The audit topic of the pods, when they write one.
    var auditTopic: String?

    init(sim: Simulation, kafka: SimKafkaCluster, config: KafkaWorkloadConfig, maxAttempts: Int, ledger: SidecarAppLedger) {
        self.sim = sim
        self.kafka = kafka
        self.config = config
        self.maxAttempts = maxAttempts
        self.ledger = ledger
        ledger.hasDeadLetterCopy = { [weak self] tp, offset in
            guard let self else { return false }
            self.scanDeadLetters()
            return self.deadLetteredOffsets[tp]?.contains(offset) == true
        }
    }

    var deadLetterTopic: String { config.topic + ".dlq" }
    var partitions: [TopicPartition] { (0..<config.partitions).map { TopicPartition(config.topic, $0) } }

    /// Samples the group's committed offsets every 20 ms of virtual time.
    func startSampling() {
        sim.every(.milliseconds(20), label: "sidecar-checker") { [weak self] in self?.sample() }
    }

    /// A finished record: an app answered SUCCESS or DROP for it, or the dead-letter topic holds its copy.
    private func finished(_ tp: TopicPartition, _ offset: Int64) -> Bool {
        ledger.finishedByApp[tp]?.contains(offset) == true || deadLetteredOffsets[tp]?.contains(offset) == true
    }

    /// Reads the dead-letter copies written since the last scan.
    private func scanDeadLetters() {
        let fresh = kafka.readableLog(TopicPartition(deadLetterTopic, 0)).filter { $0.offset >= deadLetterScanned }
        guard let last = fresh.last else { return }
        deadLetteredOffsets.merge(KafkaSidecarChecks.deadLettered(fresh, topic: config.topic)) { $0.union($1) }
        deadLetterScanned = last.offset + 1
    }

    /// Committed offsets never go backwards, and nothing below one is unfinished.
    func sample() {
        scanDeadLetters()
        let committed = kafka.committedOffsets(KafkaSidecarPod.group)
        for tp in partitions {
            guard let c = committed[tp] else { continue }
            let below = checkedBelow[tp] ?? 0
            if let (invariant, message) = KafkaSidecarChecks.commitViolation(tp, previous: lastCommitted[tp], committed: c, checkedBelow: below,
                                                                             finished: { self.finished(tp, $0) }) {
                sim.violation(invariant, message)
                return
            }
            lastCommitted[tp] = c
            checkedBelow[tp] = max(below, c)
        }
    }

    /// End of run: the samples once more, then every acknowledged record stored once and handled,
    /// and the end state (``KafkaSidecarChecks/endViolation(_:)``).
    func checkEnd() {
        sample()
        if sim.isStopped { return }
        let acknowledged = sim.history.operations.compactMap { op -> KafkaChecker.Acknowledged? in
            guard op.name == "produce", case .ok(let at) = op.outcome else { return nil }
            return KafkaChecker.Acknowledged(value: op.argument, at: at)
        }
        // Reached the app, or dead-lettered after every push of it failed (so no app saw it).
        var handled = ledger.delivered
        for tp in partitions {
            let dead = deadLetteredOffsets[tp] ?? []
            for entry in kafka.readableLog(tp) where dead.contains(entry.offset) { handled.insert(String(decoding: entry.value ?? [], as: UTF8.self)) }
        }
        // Replayed dead letters are copies on purpose (judged by the replay checker), not producer duplicates.
        let stored = partitions.flatMap { kafka.readableLog($0) }.filter { DeadLetterReplayChecker.source($0) == nil }
            .map { String(decoding: $0.value ?? [], as: UTF8.self) }
        if let (invariant, message) = KafkaChecker.violation(acknowledged: acknowledged, stored: stored,
                                                             consumed: handled, idempotent: true) {
            sim.violation(invariant == "kafka.all-consumed" ? "kafka-sidecar.all-finished" : invariant, message)
            return
        }
        let state = KafkaSidecarChecks.EndState(
            topic: config.topic,
            logs: Dictionary(uniqueKeysWithValues: partitions.map { ($0, kafka.readableLog($0)) }),
            highWatermarks: Dictionary(uniqueKeysWithValues: partitions.map { ($0, kafka.highWatermark($0)) }),
            committed: kafka.committedOffsets(KafkaSidecarPod.group),
            deadLetters: kafka.readableLog(TopicPartition(deadLetterTopic, 0)),
            finishedByApp: ledger.finishedByApp, verdicts: ledger.verdicts, maxAttempts: maxAttempts)
        if let (invariant, message) = KafkaSidecarChecks.endViolation(state) { return sim.violation(invariant, message) }
        if let audit = auditTopic, let (invariant, message) = KafkaSidecarChecks.auditViolation(kafka.readableLog(TopicPartition(audit, 0)), state) {
            sim.violation(invariant, message)
        }
    }
}
