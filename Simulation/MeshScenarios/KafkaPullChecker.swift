import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// Checks the pull consumers against an independent history: what the producers were told (the
/// history), what the brokers hold (the logs and the pull group's committed offsets, from the
/// cluster's state) and what the apps processed (``PullAppLedger``). Never the engine's own view.
/// - `kafka-pull.no-commit-past-unprocessed`: sampled every 20 ms, no committed offset of the group
///   passes a record no app processed (a record handed to an app that walked away from it must come
///   back, not be committed).
/// - `kafka-pull.all-processed`: at the end, every record in the log was processed by some app.
/// - `kafka-pull.committed-to-end`: at the end, the group has committed every partition to its end
///   (Confluent apps name the last record they processed, Strimzi apps the next offset: a flavour
///   read the wrong way leaves the last record uncommitted, or commits one the app never saw).
/// - `kafka-pull.no-commit-past-handed` is the apps' own check: a commit past what they were given is refused.
final class KafkaPullChecker {
    static let invariants = [
        "kafka-pull.no-commit-past-unprocessed", "kafka-pull.all-processed", "kafka-pull.committed-to-end",
        "kafka-pull.no-commit-past-handed", "kafka-pull.rest-wellformed", "kafka.no-lost-ack", "kafka.no-duplicate",
    ]

    private let sim: Simulation
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    let ledger: PullAppLedger
    private var checkedBelow: [TopicPartition: Int64] = [:]

    init(sim: Simulation, kafka: SimKafkaCluster, config: KafkaWorkloadConfig, ledger: PullAppLedger) {
        self.sim = sim
        self.kafka = kafka
        self.config = config
        self.ledger = ledger
    }

    var partitions: [TopicPartition] { (0..<config.partitions).map { TopicPartition(config.topic, $0) } }

    /// Samples the group's committed offsets every 20 ms of virtual time.
    func startSampling() {
        sim.every(.milliseconds(20), label: "pull-checker") { [weak self] in self?.sample() }
    }

    /// Nothing below a committed offset is unprocessed (checked once per offset).
    func sample() {
        let committed = kafka.committedOffsets(KafkaPullPod.group)
        for tp in partitions {
            guard let c = committed[tp], c > (checkedBelow[tp] ?? 0) else { continue }
            let from = checkedBelow[tp] ?? 0
            let processed = ledger.processed[tp] ?? []
            for entry in kafka.readableLog(tp) where entry.offset >= from && entry.offset < c && !processed.contains(entry.offset) {
                sim.violation("kafka-pull.no-commit-past-unprocessed",
                              "the pull group committed \(tp) at \(c), past offset \(entry.offset), which no app processed")
                return
            }
            checkedBelow[tp] = c
        }
    }

    /// End of run: the samples once more, every acknowledged record stored once, every record
    /// processed and the group committed to the end of every partition.
    func checkEnd() {
        sample()
        if sim.isStopped { return }
        let acknowledged = sim.history.operations.compactMap { op -> KafkaChecker.Acknowledged? in
            guard op.name == "produce", case .ok(let at) = op.outcome else { return nil }
            return KafkaChecker.Acknowledged(value: op.argument, at: at)
        }
        var processedValues: Set<String> = []
        for tp in partitions {
            let processed = ledger.processed[tp] ?? []
            for entry in kafka.readableLog(tp) {
                guard processed.contains(entry.offset) else {
                    return sim.violation("kafka-pull.all-processed", "offset \(entry.offset) of \(tp) was never processed by an app")
                }
                processedValues.insert(String(decoding: entry.value ?? [], as: UTF8.self))
            }
        }
        if let (invariant, message) = KafkaChecker.violation(acknowledged: acknowledged, stored: kafka.committedValues(config.topic),
                                                             consumed: processedValues, idempotent: true) {
            return sim.violation(invariant == "kafka.all-consumed" ? "kafka-pull.all-processed" : invariant, message)
        }
        let committed = kafka.committedOffsets(KafkaPullPod.group)
        for tp in partitions {
            let end = kafka.highWatermark(tp)
            let c = committed[tp] ?? 0
            if end > 0 && c != end {
                return sim.violation("kafka-pull.committed-to-end",
                                     "the pull group committed \(tp) at \(c); its log ends at \(end) (\(kafka.groupDescription(KafkaPullPod.group)))")
            }
        }
    }
}
