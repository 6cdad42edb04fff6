import MeshCore
import MeshSimulator
import SimKafka
import StreamQuery

/// Checks the stream-query pod at the end of a run against an independent history: the input
/// topic's log as the brokers hold it (a recount), the sink topic's log, and the database's rows.
/// Never the runner's own view.
/// - `stream-query.exact-count`: the count per key is a change per input record: for every key, the
///   sink's changes (redeliveries dropped by their outbox sequence) read 1, 2, 3, … up to the number
///   of records with that key in the input log. A double count or a lost change breaks the run.
/// - `stream-query.no-lost-change`: the sink's outbox sequences are 0…n-1 with no gap, one per
///   input record.
/// - `stream-query.redelivery-identical`: a sequence seen twice is the same record both times.
/// - `stream-query.last-is-latest`: read in log order, as a compacted table keeps it, the last
///   record of every key is its latest change (a resent output never lands after a later change
///   of its key). Checked in runs where the pod never restarted: a dead incarnation's request still
///   in the network can land after its successor's (no transactional fencing yet), and then only
///   the outbox sequence orders a key's changes.
/// - `stream-query.all-consumed`: the stored offsets reach the end of every input partition, and the
///   outbox is empty (every output was acknowledged and its row deleted).
/// - `stream-query.running`: the runner never halted (its stored state always read back).
final class StreamQueryChecker {
    static let invariants = [
        "stream-query.exact-count", "stream-query.no-lost-change", "stream-query.redelivery-identical", "stream-query.last-is-latest",
        "stream-query.all-consumed", "stream-query.running", "kafka.no-lost-ack", "kafka.no-duplicate",
    ]

    private let sim: Simulation
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let database: SimStateDatabase
    private let ledger: StreamQueryLedger

    init(sim: Simulation, kafka: SimKafkaCluster, config: KafkaWorkloadConfig, database: SimStateDatabase, ledger: StreamQueryLedger) {
        self.sim = sim
        self.kafka = kafka
        self.config = config
        self.database = database
        self.ledger = ledger
    }

    func checkEnd() {
        let acknowledged = sim.history.operations.compactMap { op -> KafkaChecker.Acknowledged? in
            guard op.name == "produce", case .ok(let at) = op.outcome else { return nil }
            return KafkaChecker.Acknowledged(value: op.argument, at: at)
        }
        let stored = kafka.committedValues(config.topic)
        if let (invariant, message) = KafkaChecker.violation(acknowledged: acknowledged, stored: stored, consumed: Set(stored), idempotent: true) {
            return sim.violation(invariant, message)
        }
        let queryId = StreamQueryWorkload.persistentQuery(topic: config.topic).id
        // The database: consumed to the end, nothing left in the outbox.
        guard case .success(let state) = database.load(queryId) else {
            return sim.violation("stream-query.all-consumed", "the database does not answer")
        }
        for p in 0..<config.partitions {
            let tp = TopicPartition(config.topic, p)
            let stored = state.offsets.first { $0.topicPartition == tp }?.offset ?? 0
            if stored != kafka.highWatermark(tp) {
                return sim.violation("stream-query.all-consumed", "the query stored \(tp) at \(stored); its log ends at \(kafka.highWatermark(tp))")
            }
        }
        let left = state.rows.filter { $0.key.key.hasPrefix("o/") }
        if let first = left.first {
            return sim.violation("stream-query.all-consumed", "\(left.count) outbox rows are still there at the end, from \(first.key.key)")
        }
        // The recount: records per key in the input log.
        var recount: [String: Int64] = [:]
        var inputRecords: Int64 = 0
        for p in 0..<config.partitions {
            for entry in kafka.readableLog(TopicPartition(config.topic, p)) {
                recount[String(decoding: entry.key ?? [], as: UTF8.self), default: 0] += 1
                inputRecords += 1
            }
        }
        // The sink, by outbox sequence.
        var bySequence: [Int64: SimLogEntry] = [:]
        var lastInLog: [String: Int64?] = [:]
        for p in 0..<StreamQueryWorkload.sinkPartitions {
            for var entry in kafka.readableLog(TopicPartition(StreamQueryWorkload.sinkTopic, p)) {
                lastInLog[String(decoding: entry.key ?? [], as: UTF8.self)] = Self.count(entry.value)
                guard let text = entry.headers.last(where: { $0.key == OutboxEntry.sequenceHeader })?.value,
                      let sequence = Int64(String(decoding: text, as: UTF8.self)) else {
                    return sim.violation("stream-query.no-lost-change", "a sink record at \(p)@\(entry.offset) has no outbox sequence")
                }
                entry.offset = 0
                if let seen = bySequence[sequence], seen != entry {
                    return sim.violation("stream-query.redelivery-identical", "outbox sequence \(sequence) came as two different records: \(Self.describe(seen)) and \(Self.describe(entry))")
                }
                bySequence[sequence] = entry
            }
        }
        let sequences = bySequence.keys.sorted()
        if let gap = sequences.indices.first(where: { sequences[$0] != Int64($0) }) {
            return sim.violation("stream-query.no-lost-change", "the sink has outbox sequence \(sequences[gap]) at position \(gap): a change is missing")
        }
        if Int64(sequences.count) != inputRecords {
            return sim.violation("stream-query.no-lost-change", "the sink has \(sequences.count) changes for \(inputRecords) input records")
        }
        var counted: [String: Int64] = [:]
        for sequence in sequences {
            let entry = bySequence[sequence]!
            let key = String(decoding: entry.key ?? [], as: UTF8.self)
            let n = Self.count(entry.value)
            let expected = counted[key, default: 0] + 1
            guard n == expected else {
                return sim.violation("stream-query.exact-count", "change \(sequence) counts \(key) as \(n.map(String.init) ?? "unreadable"), the recount says \(expected)")
            }
            counted[key] = expected
        }
        for (key, n) in recount.sorted(by: { $0.key < $1.key }) where !ledger.restarted && lastInLog[key] != .some(n) {
            let last = lastInLog[key].map { $0.map(String.init) ?? "unreadable" } ?? "nothing"
            return sim.violation("stream-query.last-is-latest", "the sink's last record for \(key) in log order counts \(last); the latest change counts \(n)")
        }
        if counted != recount {
            let wrong = recount.keys.sorted().first { counted[$0] != recount[$0] } ?? "?"
            return sim.violation("stream-query.exact-count", "\(wrong) is counted \(counted[wrong] ?? 0), the input log holds \(recount[wrong] ?? 0)")
        }
    }

    /// A sink record's key and value, for a message.
    static func describe(_ entry: SimLogEntry) -> String {
        "\(String(decoding: entry.key ?? [], as: UTF8.self))=\(String(decoding: entry.value ?? [], as: UTF8.self))"
    }

    /// `N` of a sink value `{"N":5}`.
    static func count(_ value: [UInt8]?) -> Int64? {
        guard let value else { return nil }
        let text = String(decoding: value, as: UTF8.self)
        guard text.hasPrefix("{\"N\":"), text.hasSuffix("}") else { return nil }
        return Int64(text.dropFirst(5).dropLast())
    }
}
