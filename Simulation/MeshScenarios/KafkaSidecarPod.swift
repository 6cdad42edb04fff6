import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// The Kafka sidecar in the simulator: the production ``ReactiveConsumer`` engine driven by a
/// `SimKafka` group consumer and producer, pushing to its app over the simulated network. Like the
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
    private var nextProbe: UInt64 = 1
    /// Set while polling waits for room in the buffer.
    private var pollTimer: TimerToken?
    private weak var host: SimHost?

    init(kafka: SimKafkaCluster, config: KafkaWorkloadConfig, engineConfig: ReactiveConsumerConfig, app: @escaping () -> HostID?) {
        self.kafka = kafka
        self.config = config
        self.engineConfig = engineConfig
        self.app = app
    }

    func start(on host: SimHost) {
        self.host = host
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
        poll(host)
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
            let trace = PushCodec.traceparent(for: batch, random: &random)
            host.random = random
            host.log("sidecar.push", Int64(batch.id), Int64(batch.entries.count), "\(batch.topicPartition) \(batch.entries.first!.record.offset)... \(trace)")
            host.send(to: app, port: SidecarAppWire.port, SidecarAppWire.frame(SidecarAppWire.push, batch.id, PushCodec.encode(batch, jsonValues: engineConfig.jsonValues)))
        case .abandonPush:
            break  // datagrams cannot be cancelled; a late answer is ignored by the engine
        case .pause(let tps):
            host.simulation.coverage.hit("kafka-sidecar.pause")
            consumer?.pause(tps)
        case .resume(let tps):
            consumer?.resume(tps)
        case .produceDeadLetter(let ticket, let record):
            host.log("sidecar.dead-letter", Int64(ticket))
            host.simulation.coverage.hit("kafka-sidecar.dead-letter")
            producer?.send(record) { result in deliver(.deadLetterWritten(ticket: ticket, result)) }
        case .commit(let ticket, let offsets):
            host.log("sidecar.commit", Int64(ticket), offsets.first?.offset ?? -1, "\(offsets.map { "\($0.topicPartition)@\($0.offset)" })")
            consumer?.commit(offsets) { result in deliver(.commitDone(ticket: ticket, result)) }
        case .release(let id, let offsets):
            host.log("sidecar.release", Int64(id), Int64(offsets.count))
            host.simulation.coverage.hit("kafka-sidecar.release")
            releases.removeValue(forKey: id)?(offsets)
        case .armTimer(let timer, let delay):
            timers[host.setTimer(after: delay).rawValue] = timer
        case .probeApp:
            guard let app = app() else { return }
            host.send(to: app, port: SidecarAppWire.port, SidecarAppWire.frame(SidecarAppWire.probe, nextProbe))
            nextProbe += 1
        }
    }

    private func poll(_ host: SimHost) {
        guard let consumer else { return }
        let incarnation = host.incarnation
        let me = SimThreadBound((self, host))
        consumer.poll(maxRecords: engine.nextPoll.maxRecords, timeout: .milliseconds(100)) { events in
            let (pod, host) = me.value
            guard host.isUp, host.incarnation == incarnation else { return }
            host.log("sidecar.polled", Int64(events.count), pod.engine.appReady ? 1 : 0, "\(events.map { e -> String in if case .records(let r) = e { "records \(r.count)" } else { "\(e)" } })")
            for event in events {
                switch event {
                case .assigned(let tps): pod.apply(.assigned(tps))
                case .revoked(let tps): pod.apply(.revoked(tps))
                case .lost(let tps): pod.apply(.lost(tps))
                case .records(let records): pod.apply(.records(records))
                case .error: break
                }
            }
            let next = pod.engine.nextPoll
            if next.after == .zero {
                pod.poll(host)
            } else {
                pod.pollTimer = host.setTimer(after: next.after)
            }
        }
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        guard case .datagram(_, _, let payload) = event, let kind = payload.first,
              let f = SidecarAppWire.parse(payload, hasStatus: true) else { return }
        switch kind {
        case SidecarAppWire.answer:
            let answer = PushCodec.decode(status: f.status, body: Array(f.body))
            if case .failed = answer { host.simulation.coverage.hit("kafka-sidecar.push-failed") }
            apply(.pushAnswered(batch: f.id, answer))
        case SidecarAppWire.ready:
            apply(.appReadiness(ready: f.status == 1))
        default:
            break
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        if token == pollTimer {
            pollTimer = nil
            return poll(host)
        }
        guard let timer = timers.removeValue(forKey: token.rawValue) else { return }
        apply(.timerFired(timer))
    }
}
