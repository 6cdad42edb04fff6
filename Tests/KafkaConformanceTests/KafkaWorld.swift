import CRdKafka
import Foundation
import KafkaRdKafka
import Logging
import MeshCore
import MeshSimulator
import SimKafka
import Synchronization
import Testing

/// A world the conformance suite runs in: the simulated cluster (virtual time) or librdkafka against
/// the embedded broker on real loopback sockets. Test bodies are written once against this.
protocol KafkaWorld: AnyObject {
    var name: String { get }
    var brokerCount: Int { get }
    /// The cluster as seen by client number `client` (each on its own host in the simulator).
    func cluster(client: Int) -> any KafkaCluster
    func createTopic(_ name: String, partitions: Int32)
    /// Lets time pass (virtual or real) until `condition` holds or `timeout` passes.
    @discardableResult func wait(_ timeout: Duration, until condition: () -> Bool) -> Bool
    func brokerDown(_ index: Int)
    func brokerUp(_ index: Int)
    /// Makes the next `count` produce requests fail in a way the producer must retry.
    func failProduceRequests(_ count: Int)
    /// The index of the broker leading `partition`, where the world can tell.
    func leader(of partition: TopicPartition) -> Int?
}

extension KafkaWorld {
    func sleep(_ d: Duration) { wait(d) { false } }
}

enum WorldKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case simulated, live
    var testDescription: String { rawValue }

    func make() throws -> any KafkaWorld {
        switch self {
        case .simulated: SimulatedWorld(seed: 7)
        case .live: try LiveWorld()
        }
    }
}

/// The simulated cluster: three brokers and client hosts in one deterministic simulation.
final class SimulatedWorld: KafkaWorld {
    let name = "simulated"
    let simulation: Simulation
    let kafka: SimKafkaCluster
    private var clients: [SimHost] = []

    final class Idle: SimProcess {
        func start(on host: SimHost) {}
        func receive(_ event: NetEvent, on host: SimHost) {}
    }

    init(seed: UInt64, config: SimKafkaConfig = SimKafkaConfig()) {
        simulation = Simulation(seed: seed)
        kafka = SimKafkaCluster(simulation: simulation, brokers: 3, config: config)
    }

    var brokerCount: Int { kafka.brokers.count }

    func cluster(client: Int) -> any KafkaCluster {
        while clients.count <= client {
            let h = simulation.addHost(named: "client-\(clients.count)") { _ in Idle() }
            h.boot()
            clients.append(h)
        }
        return kafka.connection(from: clients[client])
    }

    func createTopic(_ name: String, partitions: Int32) { kafka.createTopic(name, partitions: partitions) }

    func wait(_ timeout: Duration, until condition: () -> Bool) -> Bool {
        let deadline = simulation.now + timeout
        while !condition() {
            if simulation.now >= deadline { return false }
            simulation.run(until: min(deadline, simulation.now + .milliseconds(1)))
        }
        return true
    }

    func brokerDown(_ index: Int) { kafka.brokers[index].crash() }
    func brokerUp(_ index: Int) { kafka.brokers[index].restart() }
    func failProduceRequests(_ count: Int) { kafka.loseNextProduceReplies += count }
    func leader(of partition: TopicPartition) -> Int? { kafka.leader(of: partition) }
}

/// librdkafka clients against the embedded broker (three mock brokers) on loopback.
final class LiveWorld: KafkaWorld {
    let name = "live"
    let broker: EmbeddedKafkaBroker
    let settings: RdKafkaClusterSettings

    init() throws {
        var logger = Logger(label: "conformance")
        logger.logLevel = .critical
        broker = try EmbeddedKafkaBroker(brokers: 3, logger: logger)
        var s = RdKafkaClusterSettings(bootstrapServers: broker.bootstrapServers)
        s.statisticsInterval = nil
        s.logger = logger
        s.properties = ["topic.metadata.refresh.interval.ms": "1000"]
        settings = s
    }

    /// Every client made through ``cluster(client:)``, closed before the embedded broker goes: a
    /// client left running keeps reconnecting to the dead brokers' ports, which the kernel hands to
    /// the next test's listeners (an HTTP test then met librdkafka's connection attempts).
    private let made = Collector<AnyObject>()

    deinit {
        for client in made.all {
            if let consumer = client as? any KafkaGroupConsumer {
                let done = DispatchSemaphore(value: 0)
                consumer.close { done.signal() }
                _ = done.wait(timeout: .now() + 15)
            } else if let producer = client as? RdKafkaProducer {
                producer.close(timeout: .seconds(2))
            }
        }
    }

    var brokerCount: Int { broker.brokerCount }
    func cluster(client: Int) -> any KafkaCluster { TrackingCluster(RdKafkaCluster(settings), made) }

    /// The live cluster, remembering what it made.
    final class TrackingCluster: KafkaCluster, @unchecked Sendable {
        let inner: RdKafkaCluster
        let made: Collector<AnyObject>
        init(_ inner: RdKafkaCluster, _ made: Collector<AnyObject>) { (self.inner, self.made) = (inner, made) }
        func makeProducer(_ config: KafkaProducerConfig) throws(KafkaError) -> any KafkaProducer {
            let p = try inner.makeProducer(config)
            made.append(p)
            return p
        }
        func makeConsumer(_ config: KafkaConsumerConfig) throws(KafkaError) -> any KafkaGroupConsumer {
            let c = try inner.makeConsumer(config)
            made.append(c)
            return c
        }
        func makeAdmin() throws(KafkaError) -> any KafkaAdmin { try inner.makeAdmin() }
    }
    func createTopic(_ name: String, partitions: Int32) { try! broker.createTopic(name, partitions: partitions, replicationFactor: 3) }

    func wait(_ timeout: Duration, until condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            usleep(2_000)
        }
        return true
    }

    func brokerDown(_ index: Int) { broker.setBrokerDown(Int32(index + 1)) }
    func brokerUp(_ index: Int) { broker.setBrokerUp(Int32(index + 1)) }
    func failProduceRequests(_ count: Int) {
        broker.pushRequestErrors(apiKey: KafkaApiKey.produce, Array(repeating: RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, count: count))
    }
    func leader(of partition: TopicPartition) -> Int? { nil }
}

/// A thread-safe cell a callback fills and a test reads.
final class Slot<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    func set(_ v: T) { lock.lock(); stored = v; lock.unlock() }
    var value: T? { lock.lock(); defer { lock.unlock() }; return stored }
}

/// A thread-safe list callbacks append to.
final class Collector<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []
    func append(_ v: T) { lock.lock(); items.append(v); lock.unlock() }
    var all: [T] { lock.lock(); defer { lock.unlock() }; return items }
    var count: Int { all.count }
}

struct ConformanceFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

// MARK: Blocking helpers over the callback seams

extension KafkaWorld {
    func produce(_ producer: any KafkaProducer, _ record: ProducerRecord, timeout: Duration = .seconds(30)) throws -> RecordMetadata {
        let slot = Slot<Result<RecordMetadata, KafkaError>>()
        producer.send(record) { slot.set($0) }
        guard wait(timeout, until: { slot.value != nil }) else { throw ConformanceFailure("produce timed out in \(name)") }
        return try slot.value!.get()
    }

    /// Sends all records at once and waits for every result, in send order.
    func produceAll(_ producer: any KafkaProducer, _ records: [ProducerRecord], timeout: Duration = .seconds(60)) throws -> [Result<RecordMetadata, KafkaError>] {
        let slots = records.map { _ in Slot<Result<RecordMetadata, KafkaError>>() }
        for (r, s) in zip(records, slots) { producer.send(r) { s.set($0) } }
        guard wait(timeout, until: { slots.allSatisfy { $0.value != nil } }) else { throw ConformanceFailure("produce timed out in \(name)") }
        return slots.map { $0.value! }
    }

    func call(_ timeout: Duration = .seconds(30), _ start: (@escaping @Sendable (Result<Void, KafkaError>) -> Void) -> Void) throws {
        let slot = Slot<Result<Void, KafkaError>>()
        start { slot.set($0) }
        guard wait(timeout, until: { slot.value != nil }) else { throw ConformanceFailure("call timed out in \(name)") }
        try slot.value!.get()
    }

    func value<T>(_ timeout: Duration = .seconds(30), _ start: (@escaping @Sendable (Result<T, KafkaError>) -> Void) -> Void) throws -> T {
        let slot = Slot<Result<T, KafkaError>>()
        start { slot.set($0) }
        guard wait(timeout, until: { slot.value != nil }) else { throw ConformanceFailure("call timed out in \(name)") }
        return try slot.value!.get()
    }

    /// One poll, waited for.
    func pollOnce(_ consumer: any KafkaGroupConsumer, max: Int = 500, timeout: Duration = .milliseconds(200)) throws -> [ConsumerEvent] {
        let slot = Slot<[ConsumerEvent]>()
        consumer.poll(maxRecords: max, timeout: timeout) { slot.set($0) }
        guard wait(timeout + .seconds(30), until: { slot.value != nil }) else { throw ConformanceFailure("poll never returned in \(name)") }
        return slot.value!
    }

    /// Polls until `count` records arrived or `timeout` passed; returns the records and the other events.
    func consume(_ consumer: any KafkaGroupConsumer, count: Int, timeout: Duration = .seconds(30)) throws -> (records: [ConsumerRecord], events: [ConsumerEvent]) {
        var records: [ConsumerRecord] = []
        var events: [ConsumerEvent] = []
        let deadline = ContinuousClock.now + timeout
        var virtualLeft = timeout
        while records.count < count && ContinuousClock.now < deadline && virtualLeft > .zero {
            for e in try pollOnce(consumer) {
                if case .records(let rs) = e { records += rs } else { events.append(e) }
            }
            virtualLeft -= .milliseconds(200)
        }
        return (records, events)
    }

    /// Polls until the consumer holds an assignment satisfying `condition`.
    /// `collect` sees every event, with the index of the consumer that polled it.
    func pollUntilAssigned(
        _ consumers: [any KafkaGroupConsumer], tracked: inout [[TopicPartition]], timeout: Duration = .seconds(60),
        collect: (Int, ConsumerEvent) -> Void = { _, _ in }, _ condition: ([[TopicPartition]]) -> Bool
    ) throws -> Bool {
        var rounds = Int(timeout.seconds / 0.2) + 1
        while rounds > 0 {
            for (i, c) in consumers.enumerated() {
                for e in try pollOnce(c, timeout: .milliseconds(100)) {
                    collect(i, e)
                    switch e {
                    case .assigned(let tps): tracked[i] = Array(Set(tracked[i]).union(tps)).sorted()
                    case .revoked(let tps), .lost(let tps): tracked[i].removeAll { tps.contains($0) }
                    default: break
                    }
                }
            }
            if condition(tracked) { return true }
            rounds -= 1
        }
        return false
    }
}
