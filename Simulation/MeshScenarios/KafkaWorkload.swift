import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// Settings of the Kafka pipeline workload: producers append numbered records, a consumer group
/// reads and commits them, the checkers compare what was acknowledged, stored and consumed.
public struct KafkaWorkloadConfig: Hashable, Sendable {
    public var brokers = 3
    public var partitions: Int32 = 4
    public var topic = "events"
    public var acks: KafkaProducerConfig.Acks = .all
    public var idempotent = true
    /// Pause between two records of one producer.
    public var produceInterval: Duration = .milliseconds(5)
    public var sessionTimeout: Duration = .seconds(1)
    /// The engine settings of the scenario's kafka-sidecar pods.
    public var sidecar: ReactiveConsumerConfig?
    /// The rebalance protocol of the kafka-sidecar pods' group.
    public var sidecarRebalance: KafkaConsumerConfig.RebalanceProtocol = .cooperative
    /// The pull consumer limits of the scenario's kafka-pull-sidecar pods.
    public var pull: PullConsumerLimits?
    public init() {}

    /// Pull consumer limits scaled to the simulator's seconds-long runs.
    public static var simulatedPull: PullConsumerLimits {
        var l = PullConsumerLimits()
        l.idleTimeout = .seconds(1)
        l.maxBufferedRecords = 200
        l.idlePollInterval = .milliseconds(50)
        return l
    }

    /// Engine settings scaled to the simulator's seconds-long runs.
    public static var simulatedSidecar: ReactiveConsumerConfig {
        var c = ReactiveConsumerConfig()
        c.maxAttempts = 4
        c.maxBatchRecords = 20
        c.maxBufferedRecords = 200
        c.pushTimeout = .milliseconds(300)
        c.retryBackoff = ExponentialBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))
        c.deadLetterBackoff = ExponentialBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))
        c.revocationGrace = .milliseconds(400)
        c.readinessInterval = .milliseconds(100)
        c.commitRetryDelay = .milliseconds(50)
        return c
    }
}

/// What all Kafka workload processes share with the end-of-run checker (kernel-level, survives crashes).
final class KafkaLedger {
    /// Values each consumer processed, in processing order.
    var consumed: Set<String> = []
    var consumedCount = 0
}

/// Produces `producer-N/incarnation/seq` records until the quiet period, recording each in the history.
final class KafkaProducerProcess: SimProcess {
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let stopAt: MeshInstant
    private var producer: (any KafkaProducer)?
    private var sequence = 0

    init(kafka: SimKafkaCluster, config: KafkaWorkloadConfig, stopAt: MeshInstant) {
        self.kafka = kafka
        self.config = config
        self.stopAt = stopAt
    }

    func start(on host: SimHost) {
        var pc = KafkaProducerConfig()
        pc.clientId = host.name
        pc.idempotent = config.idempotent
        pc.acks = config.acks
        pc.deliveryTimeout = .seconds(5)
        producer = try? kafka.connection(from: host).makeProducer(pc)
        host.setTimer(after: config.produceInterval)
    }

    func receive(_ event: NetEvent, on host: SimHost) {}

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard host.now < stopAt, let producer else { return }
        let value = "\(host.name)/\(host.incarnation)/\(sequence)"
        sequence += 1
        Self.send(ProducerRecord(topic: config.topic, key: Array("k\(sequence % 16)".utf8), value: Array(value.utf8)), as: value, by: producer, on: host)
        host.setTimer(after: config.produceInterval)
    }

    /// Sends `record` and records it in the history as a `produce` of `value`: ok with where it
    /// landed, failed, or unknown when the client cannot tell.
    static func send(_ record: ProducerRecord, as value: String, by producer: any KafkaProducer, on host: SimHost) {
        let history = host.simulation.history
        let op = history.invoke(process: host.name, "produce", value, at: host.now)
        let bound = SimThreadBound((host, history))
        producer.send(record) { result in
            let (host, history) = bound.value
            switch result {
            case .success(let m): history.complete(op, .ok("\(m.topicPartition.partition)@\(m.offset)"), at: host.now)
            case .failure(let e) where e.outcomeUnknown: history.complete(op, .unknown(e.code), at: host.now)
            case .failure(let e): history.complete(op, .failed(e.code), at: host.now)
            }
        }
    }
}

/// A group member that processes records and commits the next offset of each partition after every
/// batch (at-least-once).
final class KafkaConsumerProcess: SimProcess {
    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let ledger: KafkaLedger
    private var consumer: (any KafkaGroupConsumer)?
    /// The next offset to process per partition held, for the before-revoke commit.
    private var processed: [TopicPartition: Int64] = [:]

    init(kafka: SimKafkaCluster, config: KafkaWorkloadConfig, ledger: KafkaLedger) {
        self.kafka = kafka
        self.config = config
        self.ledger = ledger
    }

    func start(on host: SimHost) {
        var cc = KafkaConsumerConfig(groupId: "pipeline")
        cc.clientId = host.name
        cc.sessionTimeout = config.sessionTimeout
        consumer = try? kafka.connection(from: host).makeConsumer(cc)
        // The before-revoke step: commit what this member processed of the partitions it gives up.
        let processed = SimThreadBound(self)
        consumer?.onRevoke { revocation, release in
            let offsets = revocation.partitions.compactMap { tp in processed.value.processed[tp].map { PartitionOffset(tp, $0) } }
            release(offsets)
        }
        try? consumer?.subscribe([config.topic])
        poll(host)
    }

    func receive(_ event: NetEvent, on host: SimHost) {}

    private func poll(_ host: SimHost) {
        guard let consumer else { return }
        let incarnation = host.incarnation
        let bound = SimThreadBound((self, host))
        consumer.poll(maxRecords: 200, timeout: .milliseconds(100)) { events in
            let (process, host) = bound.value
            guard host.isUp, host.incarnation == incarnation else { return }
            process.handle(events, consumer, host)
        }
    }

    private func handle(_ events: [ConsumerEvent], _ consumer: any KafkaGroupConsumer, _ host: SimHost) {
        do {
            var next: [TopicPartition: Int64] = [:]
            for case .records(let records) in events {
                for r in records {
                    ledger.consumed.insert(String(decoding: r.value ?? [], as: UTF8.self))
                    ledger.consumedCount += 1
                    next[r.topicPartition] = r.offset + 1
                }
            }
            processed.merge(next) { _, new in new }
            for event in events {
                switch event {
                case .revoked(let tps), .lost(let tps): for tp in tps { processed[tp] = nil }
                default: break
                }
            }
            host.simulation.coverage.sometimes(events.contains { if case .revoked = $0 { true } else { false } }, "kafka.consumer-revoked")
            if !next.isEmpty {
                let offsets = next.sorted { $0.key < $1.key }.map { PartitionOffset($0.key, $0.value) }
                let coverage = SimThreadBound(host.simulation.coverage)
                consumer.commit(offsets) { result in
                    if case .failure = result { coverage.value.hit("kafka.commit-refused") }
                }
            }
            poll(host)
        }
    }
}

/// End-of-run checks for the Kafka pipeline.
enum KafkaChecker {
    static let invariants = ["kafka.no-lost-ack", "kafka.no-duplicate", "kafka.all-consumed"]

    static func check(_ sim: Simulation, _ kafka: SimKafkaCluster, _ config: KafkaWorkloadConfig, _ ledger: KafkaLedger) {
        let acknowledged = sim.history.operations.compactMap { op -> Acknowledged? in
            guard op.name == "produce", case .ok(let at) = op.outcome else { return nil }
            return Acknowledged(value: op.argument, at: at)
        }
        if let (invariant, message) = violation(acknowledged: acknowledged, stored: kafka.committedValues(config.topic),
                                                consumed: ledger.consumed, idempotent: config.idempotent) {
            sim.violation(invariant, message)
        }
    }

    /// A record the producers were told is stored, and where.
    struct Acknowledged {
        var value: String
        var at: String
    }

    /// The first broken promise, checked against what the producers were told (`acknowledged`), what
    /// the partitions hold (`stored`, readable values in log order) and what the group's consumers
    /// saw (`consumed`): each acknowledged record is stored, once when the producers are
    /// idempotent, and was consumed.
    static func violation(acknowledged: [Acknowledged], stored: [String], consumed: Set<String>, idempotent: Bool) -> (String, String)? {
        var seen: [String: Int] = [:]
        for v in stored { seen[v, default: 0] += 1 }
        for ack in acknowledged {
            guard let n = seen[ack.value] else {
                return ("kafka.no-lost-ack", "\(ack.value) was acknowledged at \(ack.at) but is not in the log")
            }
            if idempotent && n > 1 {
                return ("kafka.no-duplicate", "\(ack.value) is in the log \(n) times")
            }
            guard consumed.contains(ack.value) else {
                return ("kafka.all-consumed", "\(ack.value) was acknowledged at \(ack.at) but never consumed by the group")
            }
        }
        return nil
    }
}
