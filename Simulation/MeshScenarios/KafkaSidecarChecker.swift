import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// Produces through the REST front: each record is a light-mesh produce body decoded by the
/// production ``ProduceFront`` (JSON values from even hosts, plain strings from odd ones), then sent.
final class KafkaRESTProducerProcess: SimProcess {
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let stopAt: MeshInstant
    private let index: Int
    private var producer: (any KafkaProducer)?
    private var sequence = 0

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
        let name = "\(host.name)/\(host.incarnation)/\(sequence)"
        sequence += 1
        let body = index % 2 == 0
            ? "{\"keyFormat\":\"string\",\"valueFormat\":\"json\",\"records\":[{\"key\":\"k\(sequence % 8)\",\"value\":\"\(name)\"}]}"
            : "{\"records\":[{\"key\":\"k\(sequence % 8)\",\"value\":\"\(name)\",\"headers\":{\"Authorization\":\"Bearer x\"}}]}"
        var random = host.random
        guard let record = try? ProduceFront.decode(.lightMesh, topic: config.topic, body: Array(body.utf8),
                                                    context: ProduceContext(correlationId: name), random: &random).first else {
            host.simulation.violation("kafka-sidecar.produce-front", "the REST front refused \(body)")
            return
        }
        host.random = random
        KafkaProducerProcess.send(record, as: String(decoding: record.value ?? [], as: UTF8.self), by: producer, on: host)
        host.setTimer(after: config.produceInterval)
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
        "kafka.no-lost-ack", "kafka.no-duplicate",
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

    init(sim: Simulation, kafka: SimKafkaCluster, config: KafkaWorkloadConfig, maxAttempts: Int, ledger: SidecarAppLedger) {
        self.sim = sim
        self.kafka = kafka
        self.config = config
        self.maxAttempts = maxAttempts
        self.ledger = ledger
    }

    var deadLetterTopic: String { config.topic + ".dlq" }
    var partitions: [TopicPartition] { (0..<config.partitions).map { TopicPartition(config.topic, $0) } }

    /// Samples the group's committed offsets every 20 ms of virtual time.
    func startSampling() {
        sim.schedule(after: .milliseconds(20), label: "sidecar-checker") { [weak self] in
            guard let self, !self.sim.isStopped else { return }
            self.sample()
            self.startSampling()
        }
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
        if let (invariant, message) = KafkaChecker.violation(acknowledged: acknowledged, stored: kafka.committedValues(config.topic),
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
        if let (invariant, message) = KafkaSidecarChecks.endViolation(state) { sim.violation(invariant, message) }
    }
}
