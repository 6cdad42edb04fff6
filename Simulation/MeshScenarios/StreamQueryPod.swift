import MeshCore
import MeshSimulator
import SimKafka
import StreamQuery

/// The continuous query the stream-query scenario runs: a count per key of the producers' records
/// (their keys are `k0`…`k15`, their values plain strings), a table written to its own topic.
enum StreamQueryWorkload {
    static let source = "CREATE STREAM events (k STRING KEY, v STRING) WITH (kafka_topic='events', value_format='KAFKA')"
    static let query = "CREATE TABLE per_key WITH (kafka_topic='per_key', partitions=4) AS SELECT k, COUNT(*) AS n FROM events GROUP BY k EMIT CHANGES"
    static let sinkTopic = "per_key"
    static let sinkPartitions: Int32 = 4

    /// The query, planned against the source (the statements are the scenario's own: they parse).
    static func persistentQuery(topic: String) -> PersistentQuery {
        var catalog = Catalog()
        guard case .createSource(let create) = try? SQLParser.parse(source.replacingOccurrences(of: "'events'", with: "'\(topic)'")),
              let description = try? SourceDescription(create), (try? catalog.add(description)) != nil,
              case .createAsSelect(let ctas) = try? SQLParser.parse(query),
              let q = try? PersistentQuery(ctas, catalog: catalog, number: 1) else {
            preconditionFailure("the stream-query scenario's statements do not plan")
        }
        return q
    }

    /// Runner pacing scaled to the simulator's seconds-long runs.
    static var simulatedRunner: QueryRunner.Settings {
        var s = QueryRunner.Settings()
        s.maxBatchRecords = 50
        s.pollTimeout = .milliseconds(50)
        s.backoff = .milliseconds(20)
        s.maxBackoff = .milliseconds(300)
        s.maxOutputsInFlight = 100
        return s
    }
}

/// What the pod's incarnations share with the checker (kernel-level: it survives the pod's crashes):
/// the highest outbox sequence any incarnation sent (for coverage of redeliveries), and whether the
/// pod ever restarted (the checker then cannot hold the sink's log order to the changes' order).
final class StreamQueryLedger {
    var highestSent: Int64 = -1
    var restarted = false
}

/// A stream-query pod: the production ``QueryRunner`` running the scenario's query on a `SimKafka`
/// consumer (every input partition, manually assigned) and an idempotent producer to the sink, its
/// state in ``SimStateDatabase``. It only carries out the runner's actions. The database's round
/// trip has faults a real connection has: a load or a commit refused, and a commit applied whose
/// answer is lost (the pod cannot tell it from a refused one). A crash loses the runner whole; the
/// next incarnation starts from the database.
final class StreamQueryPod: SimProcess {
    static let group = "stream-query"
    static let loadFails = FaultSite("stream-query.load-fails")
    static let commitRefused = FaultSite("stream-query.commit-refused")
    static let commitAnswerLost = FaultSite("stream-query.commit-answer-lost")

    private let kafka: SimKafkaCluster
    private let database: SimStateDatabase
    private let config: KafkaWorkloadConfig
    private let faults: SimFaultInjector
    private let ledger: StreamQueryLedger
    private let query: PersistentQuery
    private var runner: QueryRunner!
    private var consumer: (any KafkaGroupConsumer)?
    private var producer: (any KafkaProducer)?
    private var assigned = false
    private var timers: [UInt64: QueryRunner.Timer] = [:]
    private var answers: [UInt64: () -> Void] = [:]

    init(kafka: SimKafkaCluster, database: SimStateDatabase, config: KafkaWorkloadConfig, faults: SimFaultInjector, ledger: StreamQueryLedger) {
        self.kafka = kafka
        self.database = database
        self.config = config
        self.faults = faults
        self.ledger = ledger
        query = StreamQueryWorkload.persistentQuery(topic: config.topic)
    }

    var partitions: [TopicPartition] { (0..<config.partitions).map { TopicPartition(config.topic, $0) } }

    func start(on host: SimHost) {
        if host.incarnation > 0 { ledger.restarted = true }
        timers = [:]
        answers = [:]
        assigned = false
        var cc = KafkaConsumerConfig(groupId: Self.group)
        cc.clientId = host.name
        cc.sessionTimeout = config.sessionTimeout
        consumer = try? kafka.connection(from: host).makeConsumer(cc)
        var pc = KafkaProducerConfig()
        pc.clientId = host.name + "-sink"
        pc.idempotent = true
        pc.acks = .all
        // Short, so partitions and clogs make the sink refuse outputs (the runner's resend path).
        pc.deliveryTimeout = .milliseconds(300)
        producer = try? kafka.connection(from: host).makeProducer(pc)
        runner = QueryRunner(query, partitions: partitions, settings: StreamQueryWorkload.simulatedRunner)
        apply(.started, host)
    }

    func receive(_ event: NetEvent, on host: SimHost) {}

    private func apply(_ event: QueryRunner.Event, _ host: SimHost) {
        guard host.isUp else { return }
        for action in runner.handle(event) { perform(action, host) }
        if runner.phase == .throttled { host.simulation.coverage.hit("stream-query.throttled") }
    }

    /// `work` after a database round trip (1-4 ms), unless the pod crashed meanwhile.
    private func afterRoundTrip(_ host: SimHost, _ work: @escaping () -> Void) {
        answers[host.setTimer(after: .microseconds(Int64(1000 + host.random.next() % 3000))).rawValue] = work
    }

    private func perform(_ action: QueryRunner.Action, _ host: SimHost) {
        let me = SimThreadBound((self, host))
        let incarnation = host.incarnation
        @Sendable func deliver(_ event: QueryRunner.Event) {
            let (pod, host) = me.value
            guard host.isUp, host.incarnation == incarnation else { return }
            pod.apply(event, host)
        }
        switch action {
        case .loadState(let ticket, let namespace):
            afterRoundTrip(host) { [self] in
                if faults.fires(Self.loadFails) {
                    return apply(.stateLoaded(ticket: ticket, .failure(MeshError(code: "store_unavailable", message: "the load failed"))), host)
                }
                apply(.stateLoaded(ticket: ticket, database.load(namespace)), host)
            }
        case .seek(let targets):
            guard let consumer else { return }
            if !assigned {
                try? consumer.assign(partitions)
                assigned = true
            }
            for (tp, target) in targets.sorted(by: { $0.key < $1.key }) { try? consumer.seek(tp, to: target) }
            if runner.rebuilds > 0 { host.simulation.coverage.hit("stream-query.rebuilt") }
        case .poll(let ticket, let maxRecords, let timeout):
            consumer?.poll(maxRecords: maxRecords, timeout: timeout) { events in
                var records: [ConsumerRecord] = []
                for case .records(let batch) in events { records += batch }
                deliver(.polled(ticket: ticket, records))
            }
        case .commit(let ticket, let batch):
            // The request reaches the database now; its answer comes back after the round trip
            // (a crash meanwhile leaves it applied and unanswered).
            let refused = faults.fires(Self.commitRefused)
            let result = refused ? .failure(MeshError(code: "store_unavailable", message: "the commit was refused")) : database.commit(batch)
            let lost = !refused && faults.fires(Self.commitAnswerLost)
            host.log("stream-query.commit", Int64(ticket), Int64(batch.writes.count), refused ? "refused" : lost ? "applied, answer lost" : "\(result)")
            afterRoundTrip(host) { [self] in
                apply(.committed(ticket: ticket, lost ? .failure(MeshError(code: "store_unavailable", message: "the answer was lost")) : result), host)
            }
        case .send(let entries):
            guard let producer else { return }
            host.log("stream-query.send", entries.first?.sequence ?? -1, Int64(entries.count), "in flight \(runner.inFlight)")
            for entry in entries {
                if entry.sequence <= ledger.highestSent { host.simulation.coverage.hit("stream-query.redelivered") }
                ledger.highestSent = max(ledger.highestSent, entry.sequence)
            }
            // One call per action, as the production driver makes it.
            producer.sendBatch(entries.map(\.record)) { results in
                for (entry, result) in zip(entries, results) {
                    if case .failure(let e) = result {
                        me.value.1.log("stream-query.send-failed", entry.sequence, 0, e.code)
                        me.value.1.simulation.coverage.hit("stream-query.output-refused")
                    }
                    deliver(.sent(sequence: entry.sequence, result.map { _ in () }))
                }
            }
        case .armTimer(let timer, let delay):
            timers[host.setTimer(after: delay).rawValue] = timer
        case .halt(let why):
            host.simulation.violation("stream-query.running", why)
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        if let work = answers.removeValue(forKey: token.rawValue) { return work() }
        if let timer = timers.removeValue(forKey: token.rawValue) { apply(.timerFired(timer), host) }
    }
}
