import HTTPSidecarEngines
import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// The Kafka sidecar in the simulator: the production ``ReactiveConsumer`` engine driven by a
/// `SimKafka` group consumer and producer, pushing to its app over simulated HTTP/1.1 connections
/// (``SimFetcher``: the production link and request head, the production ``PushRequest``). Like the
/// NIO driver it only moves events and actions; every decision is the engine's.
final class KafkaSidecarPod: SimProcess {
    static let group = "sidecar"

    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let engineConfig: ReactiveConsumerConfig
    private let app: () -> HostID?
    private var engine: ReactiveConsumer!
    private var consumer: (any KafkaGroupConsumer)?
    private var producer: (any KafkaProducer)?
    private var timers: [UInt64: ReactiveConsumer.Timer] = [:]
    private var releases: [UInt64: @Sendable ([PartitionOffset]) -> Void] = [:]
    private var nextRevocation: UInt64 = 1
    /// The pod's HTTP client to its app; the link's timeout is the push timeout and a second, as
    /// the NIO driver's fetcher has it.
    private let fetcher: SimFetcher
    /// The apps' ledger, told which pushes the engine gave up on (see ``SidecarAppLedger/abandonedPushes``).
    private let ledger: SidecarAppLedger
    /// Each push under way's `traceparent`, by batch.
    private var pushTraces: [UInt64: String] = [:]
    /// Set while the next poll waits (the buffer is full), with how many records it may take.
    private var pollTimer: (token: TimerToken, maxRecords: Int)?
    private weak var host: SimHost?

    init(kafka: SimKafkaCluster, config: KafkaWorkloadConfig, engineConfig: ReactiveConsumerConfig, ledger: SidecarAppLedger,
         app: @escaping () -> HostID?) {
        self.ledger = ledger
        self.kafka = kafka
        self.config = config
        self.engineConfig = engineConfig
        self.app = app
        fetcher = SimFetcher(url: SidecarAppHTTP.url, port: SidecarAppHTTP.port, timeout: engineConfig.pushTimeout + .seconds(1),
                             maxIdle: engineConfig.maxConcurrentPushes)
    }

    func start(on host: SimHost) {
        self.host = host
        fetcher.reset()
        engine = ReactiveConsumer(config: engineConfig, random: SeededRandom(seed: host.random.next()),
                                  epochMillis: { 1_700_000_000_000 + $0.nanoseconds / 1_000_000 }, faults: host.simulation.faults)
        var cc = KafkaConsumerConfig(groupId: Self.group)
        cc.clientId = host.name
        cc.sessionTimeout = config.sessionTimeout
        cc.revocationTimeout = engineConfig.revocationGrace + .milliseconds(500)
        cc.rebalanceProtocol = config.sidecarRebalance
        var pc = KafkaProducerConfig()
        pc.clientId = host.name + "-dlq"
        pc.deliveryTimeout = .seconds(5)
        let connection = kafka.connection(from: host)
        consumer = try? connection.makeConsumer(cc)
        producer = try? connection.makeProducer(pc)
        let me = SimThreadBound(self)
        consumer?.onRevoke { revocation, release in
            let pod = me.value
            let id = pod.nextRevocation
            pod.nextRevocation += 1
            pod.releases[id] = release
            pod.apply(.revoking(id: id, revocation))
        }
        try? consumer?.subscribe([config.topic])
        apply(.started)
    }

    /// Feeds one event to the engine and carries out its actions.
    private func apply(_ event: ReactiveConsumer.Event) {
        guard let host, host.isUp else { return }
        for action in engine.handle(event, now: host.now) { perform(action, host) }
    }

    private func perform(_ action: ReactiveConsumer.Action, _ host: SimHost) {
        let me = SimThreadBound((self, host))
        let incarnation = host.incarnation
        /// Runs `event` on this incarnation's engine, if it is still alive.
        @Sendable func deliver(_ event: ReactiveConsumer.Event) {
            let (pod, host) = me.value
            guard host.isUp, host.incarnation == incarnation else { return }
            pod.apply(event)
        }
        switch action {
        case .push(let batch):
            guard let app = app() else { return }
            var random = host.random
            let push = PushRequest(batch, jsonValues: engineConfig.jsonValues, random: &random)
            host.random = random
            host.log("sidecar.push", Int64(batch.id), Int64(batch.entries.count),
                     "\(batch.topicPartition) \(batch.entries.first!.record.offset)... \(push.fields.last?.1 ?? "")")
            let id = batch.id
            pushTraces[id] = push.fields.last?.1
            fetcher.send(.POST, fetcher.url.target, fields: push.fields, body: push.body, to: app, on: host) { result in
                me.value.0.pushTraces[id] = nil
                switch result {
                case .success(let answer):
                    let decoded = PushCodec.decode(status: answer.status, body: answer.body)
                    if case .failed = decoded { host.simulation.coverage.hit("kafka-sidecar.push-failed") }
                    deliver(.pushAnswered(batch: id, decoded))
                case .failure(let error):
                    host.simulation.coverage.hit("kafka-sidecar.push-failed")
                    deliver(.pushAnswered(batch: id, .failed(reason: "push failed: \(error)")))
                }
            }
        case .abandonPush(let batch):
            // As in NIO: the engine ignores a late answer; the link's timeout closes a silent exchange.
            // The request may still reach the app later (held by the network).
            if let trace = pushTraces.removeValue(forKey: batch) { ledger.abandonedPushes.insert(trace) }
        case .pause(let tps):
            host.simulation.coverage.hit("kafka-sidecar.pause")
            consumer?.pause(tps)
        case .resume(let tps):
            consumer?.resume(tps)
        case .produceDeadLetter(let ticket, let record):
            host.log("sidecar.dead-letter", Int64(ticket))
            host.simulation.coverage.hit("kafka-sidecar.dead-letter")
            producer?.send(record) { result in deliver(.deadLetterWritten(ticket: ticket, result)) }
        case .writeAudit(let ticket, let records):
            host.log("sidecar.audit", Int64(ticket), Int64(records.count))
            producer?.sendBatch(records) { results in
                if results.contains(where: { if case .success = $0 { true } else { false } }) { me.value.1.simulation.coverage.hit("kafka-sidecar.audit-written") }
                deliver(.auditWritten(ticket: ticket, results))
            }
        case .commit(let ticket, let offsets):
            host.log("sidecar.commit", Int64(ticket), offsets.first?.offset ?? -1, "\(offsets.map { "\($0.topicPartition)@\($0.offset)" })")
            consumer?.commit(offsets) { result in deliver(.commitDone(ticket: ticket, result)) }
        case .release(let id, let offsets):
            host.log("sidecar.release", Int64(id), Int64(offsets.count))
            host.simulation.coverage.hit("kafka-sidecar.release")
            releases.removeValue(forKey: id)?(offsets)
        case .armTimer(let timer, let delay):
            timers[host.setTimer(after: delay).rawValue] = timer
        case .poll(let maxRecords, let after):
            if after == .zero {
                poll(maxRecords: maxRecords, host)
            } else {
                pollTimer = (host.setTimer(after: after), maxRecords)
            }
        case .probeApp:
            guard let app = app() else { return }
            fetcher.send(.GET, SidecarAppHTTP.readyPath, fields: [], body: [], to: app, on: host) { result in
                if case .success(let answer) = result { deliver(.appReadiness(ready: PushRequest.isReady(status: answer.status))) } else { deliver(.appReadiness(ready: false)) }
            }
        }
    }

    /// One poll, as the engine asked; what it returns goes back to the engine, which asks for the next.
    private func poll(maxRecords: Int, _ host: SimHost) {
        guard let consumer else { return }
        let incarnation = host.incarnation
        let me = SimThreadBound((self, host))
        consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(100)) { events in
            let (pod, host) = me.value
            guard host.isUp, host.incarnation == incarnation else { return }
            host.log("sidecar.polled", Int64(events.count), pod.engine.appReady ? 1 : 0, "\(events.map { e -> String in if case .records(let r) = e { "records \(r.count)" } else { "\(e)" } })")
            pod.apply(.polled(events))
        }
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        _ = fetcher.receive(event, on: host)
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        if fetcher.timerFired(token, on: host) { return }
        if let (t, maxRecords) = pollTimer, t == token {
            pollTimer = nil
            return poll(maxRecords: maxRecords, host)
        }
        guard let timer = timers.removeValue(forKey: token.rawValue) else { return }
        apply(.timerFired(timer))
    }
}
