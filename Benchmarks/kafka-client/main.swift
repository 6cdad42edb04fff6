// Produce or consume N records through the librdkafka adapter, for ci/bench-kafka-client, which
// times this process against kcat doing the same work.
import Foundation
import KafkaRdKafka
import Logging
import MeshCore
import Synchronization

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: kafka-client-bench produce|consume BOOTSTRAP TOPIC COUNT [SIZE]\n       kafka-client-bench latency BOOTSTRAP TOPIC COUNT RATE [REST_PORT]\n".utf8))
    exit(2)
}

let args = CommandLine.arguments
guard args.count >= 5, let count = Int(args[4]) else { usage() }
let (mode, bootstrap, topic) = (args[1], args[2], args[3])
let size = args.count > 5 ? Int(args[5]) ?? 100 : 100
var logger = Logger(label: "bench")
logger.logLevel = ProcessInfo.processInfo.environment["BENCH_LOG"] != nil ? .debug : .error
var settings = RdKafkaClusterSettings(bootstrapServers: bootstrap)
settings.statisticsInterval = nil
settings.logger = logger
settings.properties = ["queue.buffering.max.messages": "1000000"]
for pair in (ProcessInfo.processInfo.environment["BENCH_PROPS"] ?? "").split(separator: ",") {
    let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
    if kv.count == 2 { settings.properties[kv[0]] = kv[1] }
}

final class Counter: Sendable {
    let done = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let queueFull = Atomic<Bool>(false)
}

switch mode {
case "produce":
    let producer = try RdKafkaProducer(settings, config: KafkaProducerConfig())
    let counter = Counter()
    let value = [UInt8](repeating: UInt8(ascii: "x"), count: size)
    var i = 0
    while i < count {
        producer.send(ProducerRecord(topic: topic, value: value)) { result in
            switch result {
            case .success: counter.done.add(1, ordering: .relaxed)
            case .failure(let e) where e.code == "queue_full": counter.queueFull.store(true, ordering: .relaxed)
            case .failure: counter.failed.add(1, ordering: .relaxed)
            }
        }
        if counter.queueFull.exchange(false, ordering: .relaxed) { usleep(500); continue }
        i += 1
    }
    while counter.done.load(ordering: .relaxed) + counter.failed.load(ordering: .relaxed) < count { usleep(200) }
    producer.close()
    print("produced=\(counter.done.load(ordering: .relaxed)) failed=\(counter.failed.load(ordering: .relaxed))")
case "consume":
    let started = ContinuousClock.now
    // Assign every partition (no group join), from the beginning, as `kcat -C -t TOPIC -o beginning` does.
    var config = KafkaConsumerConfig(groupId: "bench-\(ProcessInfo.processInfo.processIdentifier)")
    config.resetPolicy = .earliest
    let consumer = try RdKafkaConsumer(settings, config: config)
    let admin = try RdKafkaAdmin(settings)
    let topics = DispatchSemaphore(value: 0)
    let partitions = Mutex<Int32>(0)
    admin.listTopics { r in
        partitions.withLock { $0 = (try? r.get())?.first { $0.name == topic }?.partitions ?? 0 }
        topics.signal()
    }
    topics.wait()
    if ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil {
        FileHandle.standardError.write(Data("metadata after \(ContinuousClock.now - started)\n".utf8))
    }
    try consumer.assign((0..<partitions.withLock { $0 }).map { TopicPartition(topic, $0) }, startingAt: .beginning)
    let counter = Counter()
    let t0 = ContinuousClock.now
    var firstAt: Duration? = nil
    let giveUp = ContinuousClock.now + .seconds(60)
    while counter.done.load(ordering: .relaxed) < count {
        if ContinuousClock.now > giveUp {
            FileHandle.standardError.write(Data("only \(counter.done.load(ordering: .relaxed)) of \(count) records arrived in 60s\n".utf8))
            exit(1)
        }
        let wait = DispatchSemaphore(value: 0)
        consumer.poll(maxRecords: 10_000, timeout: .milliseconds(100)) { events in
            for case .records(let rs) in events { counter.done.add(rs.count, ordering: .relaxed) }
            wait.signal()
        }
        wait.wait()
        if firstAt == nil && counter.done.load(ordering: .relaxed) > 0 { firstAt = ContinuousClock.now - t0 }
    }
    if ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil {
        FileHandle.standardError.write(Data("first record after \(firstAt ?? .zero), all after \(ContinuousClock.now - t0)\n".utf8))
    }
    print("consumed=\(counter.done.load(ordering: .relaxed))")
case "latency":
    // Single 100 B records at RATE per second: directly, or through the sidecar's REST port.
    let rate = args.count > 5 ? Int(args[5]) ?? 1_000 : 1_000
    let latencies = args.count > 6
        ? try LatencyBench.rest(host: "127.0.0.1", port: Int(args[6])!, topic: topic, count: count, rate: rate)
        : try LatencyBench.direct(settings, topic: topic, count: count, rate: rate)
    print(LatencyBench.summary(latencies))
default:
    usage()
}
