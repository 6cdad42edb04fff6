import KafkaSidecar
import MeshCore
import MeshSimulator
import SimKafka

/// Where the simulated dead-letter sidecar serves its REST port.
enum DeadLetterSidecarHTTP {
    static let port = 8083
}

/// The Kafka sidecar's dead-letter endpoints in the simulator: an HTTP/1.1 server on the REST port
/// (requests read with the product's framing scanner), the production ``DeadLetterRoutes`` and one
/// production ``DeadLetterJob`` per request, on a `SimKafka` consumer, producer and admin. Like the
/// NIO ``DeadLetterService`` it only moves events and actions. A crash loses the jobs running: what
/// they copied and did not commit is copied again by the next replay.
final class DeadLetterPod: SimProcess {
    private final class Running {
        let job: DeadLetterJob
        let consumer: any KafkaGroupConsumer
        let stream: StreamID
        let slot: UInt64
        init(job: DeadLetterJob, consumer: any KafkaGroupConsumer, stream: StreamID, slot: UInt64) {
            self.job = job
            self.consumer = consumer
            self.stream = stream
            self.slot = slot
        }
    }

    private let kafka: SimKafkaCluster
    private let settings: DeadLetterSettings
    private var producer: (any KafkaProducer)?
    private var admin: (any KafkaAdmin)?
    private var port = SimRESTPort()
    private var replaying: Set<String> = []
    private var deadlines: [UInt64: Running] = [:]
    private weak var host: SimHost?

    init(kafka: SimKafkaCluster, settings: DeadLetterSettings) {
        self.kafka = kafka
        self.settings = settings
    }

    func start(on host: SimHost) {
        self.host = host
        port = SimRESTPort()
        replaying = []
        deadlines = [:]
        var pc = KafkaProducerConfig()
        pc.clientId = host.name
        // Short, so copies fail under partitions and a replay must commit only what was acknowledged.
        pc.deliveryTimeout = .milliseconds(600)
        producer = try? kafka.connection(from: host).makeProducer(pc)
        admin = try? kafka.connection(from: host).makeAdmin()
        host.listen(port: DeadLetterSidecarHTTP.port)
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        for r in port.receive(event, on: host, invariant: "kafka-deadletters.rest-wellformed") { request(r.reader, on: r.stream, slot: r.slot, host) }
    }

    private func request(_ reader: SimHTTP1.RequestReader, on s: StreamID, slot: UInt64, _ host: SimHost) {
        let (path, query) = QueryString.split(target: reader.target)
        switch DeadLetterRoutes.decide(method: "\(reader.head.method.name)", path: String(path), query: query, body: reader.body, settings: settings) {
        case .notDeadLetter:
            answer(s, slot, PullAnswers.refusal(.notFound(String(path)), .confluent))
        case .refuse(let e):
            answer(s, slot, PullAnswers.refusal(e, .confluent))
        case .run(let plan):
            if plan.kind == .replay {
                guard replaying.insert(plan.topic).inserted else { return answer(s, slot, PullAnswers.refusal(DeadLetterRoutes.replayRunning(plan.topic), .confluent)) }
            }
            var cc = KafkaConsumerConfig(groupId: plan.group)
            cc.clientId = host.name + "-deadletters"
            cc.resetPolicy = .earliest
            guard let consumer = try? kafka.connection(from: host).makeConsumer(cc) else {
                replaying.remove(plan.topic)
                return answer(s, slot, PullAnswers.refusal(.kafka(KafkaError(code: "unavailable", message: "no consumer")), .confluent))
            }
            host.log("deadletters.job", Int64(slot), plan.untilOffset ?? -1, "\(plan.kind) \(plan.topic) max \(plan.limit)")
            apply(Running(job: DeadLetterJob(plan: plan), consumer: consumer, stream: s, slot: slot), .started, host)
        }
    }

    private func answer(_ s: StreamID, _ slot: UInt64, _ a: RESTAnswer) {
        guard let host else { return }
        port.answer(s, slot, a, on: host, log: "deadletters.answer")
    }

    // MARK: driving

    private func apply(_ r: Running, _ event: DeadLetterJob.Event, _ host: SimHost) {
        guard host.isUp else { return }
        for action in r.job.handle(event) { perform(r, action, host) }
    }

    private func perform(_ r: Running, _ action: DeadLetterJob.Action, _ host: SimHost) {
        let me = SimThreadBound((self, host, r))
        let incarnation = host.incarnation
        @Sendable func deliver(_ event: DeadLetterJob.Event) {
            let (pod, host, r) = me.value
            guard host.isUp, host.incarnation == incarnation else { return }
            pod.apply(r, event, host)
        }
        switch action {
        case .describe(let topic):
            guard let admin else { return deliver(.described(.failure(KafkaError(code: "unavailable", message: "no admin")))) }
            admin.listTopics { result in
                switch result {
                case .failure(let e): deliver(.described(.failure(e)))
                case .success(let topics):
                    guard let found = topics.first(where: { $0.name == topic }), found.partitions > 0 else { return deliver(.described(.success([:]))) }
                    me.value.0.watermarks((0..<found.partitions).map { TopicPartition(topic, $0) }, admin, deliver)
                }
            }
        case .fetchCommitted(let tps):
            r.consumer.committed(tps) { deliver(.committedFetched($0)) }
        case .assign(let tps):
            do { try r.consumer.assign(tps) } catch { deliver(.failed(error)) }
        case .poll(let maxRecords):
            r.consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(100)) { deliver(.polled($0)) }
        case .produce(let ticket, let records):
            guard let producer else { return deliver(.delivered(ticket: ticket, [])) }
            host.log("deadletters.copy", Int64(ticket), Int64(records.count), "")
            producer.sendBatch(records) { deliver(.delivered(ticket: ticket, $0)) }
        case .commit(let ticket, let offsets):
            host.log("deadletters.commit", Int64(ticket), offsets.first?.offset ?? -1, "\(offsets.map { "\($0.topicPartition)@\($0.offset)" })")
            r.consumer.commit(offsets) { deliver(.commitDone(ticket: ticket, $0)) }
        case .armDeadline(let after):
            deadlines[host.setTimer(after: after).rawValue] = r
        case .finish(let report):
            if report.plan.kind == .replay {
                replaying.remove(report.plan.topic)
                host.simulation.coverage.hit(report.complete ? "kafka-deadletters.replay-complete" : "kafka-deadletters.replay-partial")
            }
            answer(r.stream, r.slot, DeadLetterRoutes.answer(report))
            r.consumer.close {}
        }
    }

    /// What the admin said of each partition so far.
    private final class Ends {
        var found: [TopicPartition: Watermarks] = [:]
        var failed = false
    }

    private func watermarks(_ tps: [TopicPartition], _ admin: any KafkaAdmin, _ deliver: @escaping @Sendable (DeadLetterJob.Event) -> Void) {
        let ends = SimThreadBound(Ends())
        for tp in tps {
            admin.watermarks(tp) { result in
                let e = ends.value
                guard !e.failed else { return }
                switch result {
                case .failure(let error):
                    e.failed = true
                    deliver(.described(.failure(error)))
                case .success(let w):
                    e.found[tp] = w
                    if e.found.count == tps.count { deliver(.described(.success(e.found))) }
                }
            }
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let r = deadlines.removeValue(forKey: token.rawValue) else { return }
        apply(r, .deadlineFired, host)
    }
}
