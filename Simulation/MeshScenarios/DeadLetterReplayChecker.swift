import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// Checks dead-letter replays against an independent history: the brokers' logs (the dead-letter
/// topic and the original topic with its replayed copies) and what the replay client was told
/// (``ReplayLedger``). Never the engine's view. At the end of a run:
/// - `kafka-deadletters.final-replay`: after the heal, a replay answered complete;
/// - `kafka-deadletters.none-lost`: every dead letter below that replay's coverage is back in the
///   original topic, as a copy naming it in `lightmesh.dlq.replayed.from`;
/// - `kafka-deadletters.copies-whole`: each copy holds its dead letter's key, value and headers;
/// - `kafka-deadletters.at-most-once-more`: no dead letter was copied more often than once plus the
///   replays that did not answer complete (a crash or a failure may copy a batch once more; a
///   complete replay never copies what an earlier one committed).
final class DeadLetterReplayChecker {
    static let invariants = [
        "kafka-deadletters.final-replay", "kafka-deadletters.none-lost", "kafka-deadletters.copies-whole",
        "kafka-deadletters.at-most-once-more", "kafka-deadletters.rest-wellformed",
    ]

    private let sim: Simulation
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    let ledger: ReplayLedger

    init(sim: Simulation, kafka: SimKafkaCluster, config: KafkaWorkloadConfig, ledger: ReplayLedger) {
        self.sim = sim
        self.kafka = kafka
        self.config = config
        self.ledger = ledger
    }

    /// A copy's source, `{topic}/{partition}/{offset}`, from its replayed-from header.
    static func source(_ entry: SimLogEntry) -> String? {
        entry.headers.last { $0.key == DeadLetterEntry.replayedFromHeader }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    func checkEnd() {
        guard let coverage = ledger.finalCoverage else {
            return sim.violation("kafka-deadletters.final-replay", "no replay answered complete after the heal (\(ledger.started) sent, \(ledger.completed) complete)")
        }
        let deadLetterTopic = config.topic + ".dlq"
        var copies: [String: [SimLogEntry]] = [:]
        for p in 0..<config.partitions {
            for entry in kafka.readableLog(TopicPartition(config.topic, p)) {
                if let s = Self.source(entry) { copies[s, default: []].append(entry) }
            }
        }
        let allowed = 1 + ledger.started - ledger.completed
        for (p, reached) in coverage.sorted(by: { $0.key < $1.key }) {
            for entry in kafka.readableLog(TopicPartition(deadLetterTopic, p)) {
                let name = "\(deadLetterTopic)/\(p)/\(entry.offset)"
                let found = copies[name] ?? []
                if entry.offset < reached && found.isEmpty {
                    return sim.violation("kafka-deadletters.none-lost", "\(name) is below the final replay's \(reached) but has no copy in \(config.topic)")
                }
                for copy in found where copy.key != entry.key || copy.value != entry.value || Array(copy.headers.prefix(entry.headers.count)) != entry.headers {
                    return sim.violation("kafka-deadletters.copies-whole", "the copy at \(copy.offset) of \(name) differs from it")
                }
                if found.count > allowed {
                    return sim.violation("kafka-deadletters.at-most-once-more",
                                         "\(name) was copied \(found.count) times; \(ledger.started - ledger.completed) of \(ledger.started) replays did not complete")
                }
            }
        }
    }
}
