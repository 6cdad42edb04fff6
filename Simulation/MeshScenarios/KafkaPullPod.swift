import HTTPSidecar
import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// Where the simulated pull sidecar serves its REST port.
enum PullSidecarHTTP {
    static let port = 8082
}

/// The Kafka sidecar's pull consumers in the simulator: an HTTP/1.1 server on the REST port (each
/// request read with the product's framing scanner), the production ``PullRoutes`` and
/// ``PullAnswers``, and one production ``PullConsumer`` engine per instance on a `SimKafka` group
/// consumer. Like the NIO ``PullDriver`` it only moves events and actions; every decision is the
/// engine's. A crash loses every instance (their group consumers' sessions expire).
final class KafkaPullPod: SimProcess {
    static let group = "pull"

    /// One instance: its engine, its group consumer, the calls waiting for an answer (stream and call).
    private final class Running {
        let engine: PullConsumer
        var consumer: any KafkaGroupConsumer
        var generation: UInt64 = 0
        var calls: [UInt64: (call: PullCall, stream: StreamID)] = [:]
        var releases: [UInt64: @Sendable ([PartitionOffset]) -> Void] = [:]
        var nextRevocation: UInt64 = 1
        init(engine: PullConsumer, consumer: any KafkaGroupConsumer) {
            self.engine = engine
            self.consumer = consumer
        }
    }

    private let kafka: SimKafkaCluster
    private let config: KafkaWorkloadConfig
    private let limits: PullConsumerLimits
    private var registry: PullConsumerRegistry!
    private var running: [ObjectIdentifier: Running] = [:]
    private var port = SimRESTPort()
    private var timers: [UInt64: (Running, PullConsumer.Timer)] = [:]
    private var pollTimers: [UInt64: () -> Void] = [:]
    private weak var host: SimHost?

    init(kafka: SimKafkaCluster, config: KafkaWorkloadConfig, limits: PullConsumerLimits) {
        self.kafka = kafka
        self.config = config
        self.limits = limits
    }

    func start(on host: SimHost) {
        self.host = host
        registry = PullConsumerRegistry(limits: limits, random: SeededRandom(seed: host.random.next()))
        running = [:]
        port = SimRESTPort()
        timers = [:]
        pollTimers = [:]
        host.listen(port: PullSidecarHTTP.port)
    }

    // MARK: the REST port

    func receive(_ event: NetEvent, on host: SimHost) {
        for r in port.receive(event, on: host, invariant: "kafka-pull.rest-wellformed") { request(r.reader, on: r.stream, slot: r.slot, host) }
    }

    private func request(_ reader: SimHTTP1.RequestReader, on s: StreamID, slot: UInt64, _ host: SimHost) {
        let (path, query) = QueryString.split(target: reader.target)
        let pull = PullRequest(method: "\(reader.head.method.name)", path: String(path), query: query, accept: reader.field("accept"), body: reader.body)
        let decision = PullRoutes.decide(pull, flavour: .confluent)
        host.log("pull.request", Int64(slot), 0, "\(pull.method) \(reader.target)")
        switch decision {
        case .notPull:
            answer(s, slot, RESTAnswer(status: 404, contentType: "application/json", body: Array(#"{"error_code":404,"message":"not found"}"#.utf8)))
        case .refuse(let e):
            answer(s, slot, PullAnswers.refusal(e, .confluent))
        case .create(let group, let name, let settings):
            answer(s, slot, create(group, name, settings, host))
        case .call(let group, let name, let call):
            guard let instance = registry.instance(group: group, name: name), let r = running[ObjectIdentifier(instance)] else {
                return answer(s, slot, PullAnswers.refusal(.instanceNotFound, .confluent))
            }
            if case .fetch = call, let problem = PullRoutes.acceptProblem(pull.accept, format: instance.settings.format, flavour: instance.settings.flavour) {
                return answer(s, slot, PullAnswers.refusal(problem, instance.settings.flavour))
            }
            // Call numbers are the pod's, so the slot table below cannot mix up two instances' calls.
            let id = nextCall
            nextCall += 1
            r.calls[id] = (call, s)
            callSlots[id] = slot
            apply(r, call.event(call: id, assigned: r.engine.assignedPartitions), host)
        }
    }

    /// Slots of calls waiting for the engine (call id → the connection's slot; call ids are per
    /// instance, so the slot is kept with the instance's call entry).
    private var callSlots: [UInt64: UInt64] = [:]
    private var nextCall: UInt64 = 1

    private func create(_ group: String, _ name: String?, _ settings: PullConsumerSettings, _ host: SimHost) -> RESTAnswer {
        let instance: PullConsumer
        switch registry.create(group: group, name: name, settings: settings, now: host.now) {
        case .failure(let e): return PullAnswers.refusal(e, settings.flavour)
        case .success(let made): instance = made
        }
        guard let consumer = makeConsumer(instance, host) else {
            registry.forget(instance)
            return PullAnswers.refusal(.kafka(KafkaError(code: "unavailable", message: "no consumer")), settings.flavour)
        }
        let r = Running(engine: instance, consumer: consumer)
        running[ObjectIdentifier(instance)] = r
        install(r, host)
        apply(r, .started, host)
        return PullAnswers.created(group: group, name: instance.name, origin: "http://\(host.name):\(PullSidecarHTTP.port)")
    }

    private func answer(_ s: StreamID, _ slot: UInt64, _ a: RESTAnswer) {
        guard let host else { return }
        port.answer(s, slot, a, on: host, log: "pull.answer")
    }

    // MARK: driving

    private func makeConsumer(_ instance: PullConsumer, _ host: SimHost) -> (any KafkaGroupConsumer)? {
        var cc = KafkaConsumerConfig(groupId: instance.group)
        cc.clientId = host.name + "-" + instance.name
        cc.sessionTimeout = config.sessionTimeout
        cc.resetPolicy = instance.settings.resetPolicy
        cc.revocationTimeout = .milliseconds(500)
        return try? kafka.connection(from: host).makeConsumer(cc)
    }

    private func install(_ r: Running, _ host: SimHost) {
        let generation = r.generation
        let me = SimThreadBound((self, host, r))
        let incarnation = host.incarnation
        r.consumer.onRevoke { revocation, release in
            let (pod, host, r) = me.value
            guard host.isUp, host.incarnation == incarnation, r.generation == generation else { return release([]) }
            let id = r.nextRevocation
            r.nextRevocation += 1
            r.releases[id] = release
            host.simulation.coverage.hit("kafka-pull.revoke-step")
            pod.apply(r, .revoking(id: id, revocation), host)
        }
    }

    private func apply(_ r: Running, _ event: PullConsumer.Event, _ host: SimHost) {
        guard host.isUp else { return }
        for action in r.engine.handle(event, now: host.now) { perform(r, action, host) }
    }

    private func perform(_ r: Running, _ action: PullConsumer.Action, _ host: SimHost) {
        let me = SimThreadBound((self, host, r))
        let incarnation = host.incarnation
        @Sendable func deliver(_ event: PullConsumer.Event) {
            let (pod, host, r) = me.value
            guard host.isUp, host.incarnation == incarnation else { return }
            pod.apply(r, event, host)
        }
        switch action {
        case .subscribe(let topics):
            try? r.consumer.subscribe(topics)
        case .assign(let tps):
            try? r.consumer.assign(tps)
        case .unsubscribe:
            let old = r.consumer
            r.generation += 1
            if let fresh = makeConsumer(r.engine, host) {
                r.consumer = fresh
                install(r, host)
            }
            old.close {}
        case .poll(let id, let maxRecords, let after):
            let generation = r.generation
            let poll = {
                r.consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(100)) { events in
                    let current = me.value.2.generation == generation
                    deliver(.polled(id: id, current ? events : []))
                }
            }
            if after == .zero { poll() } else { pollTimers[host.setTimer(after: after).rawValue] = poll }
        case .pause(let tps):
            host.simulation.coverage.hit("kafka-pull.pause")
            r.consumer.pause(tps)
        case .resume(let tps):
            r.consumer.resume(tps)
        case .seek(let tp, let target):
            try? r.consumer.seek(tp, to: target)
        case .commit(let ticket, let offsets):
            host.log("pull.commit", Int64(ticket), offsets.first?.offset ?? -1, "\(r.engine.name) \(offsets.map { "\($0.topicPartition)@\($0.offset)" })")
            r.consumer.commit(offsets) { result in deliver(.commitDone(ticket: ticket, result)) }
        case .fetchCommitted(let ticket, let tps):
            r.consumer.committed(tps) { result in deliver(.committedFetched(ticket: ticket, result)) }
        case .release(let id, let offsets):
            host.log("pull.release", Int64(id), Int64(offsets.count), r.engine.name)
            r.releases.removeValue(forKey: id)?(offsets)
        case .answer(let id, let a):
            guard let (call, stream) = r.calls.removeValue(forKey: id), let slot = callSlots.removeValue(forKey: id) else { return }
            answer(stream, slot, PullAnswers.encode(a, call: call, settings: r.engine.settings, assigned: r.engine.assignedPartitions))
        case .armTimer(let timer, let delay):
            timers[host.setTimer(after: delay).rawValue] = (r, timer)
        case .close:
            host.log("pull.close", 0, 0, r.engine.name)
            host.simulation.coverage.hit("kafka-pull.closed")
            r.consumer.close {
                let (pod, host, r) = me.value
                guard host.isUp, host.incarnation == incarnation else { return }
                pod.registry.forget(r.engine)
                pod.running[ObjectIdentifier(r.engine)] = nil
            }
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        if let poll = pollTimers.removeValue(forKey: token.rawValue) { return poll() }
        guard let (r, timer) = timers.removeValue(forKey: token.rawValue) else { return }
        apply(r, .timerFired(timer), host)
    }
}
