import Foundation
import KafkaRdKafka
import MeshCore
import Synchronization
import Testing

extension KafkaLiveSuites {
    /// The librdkafka adapter's own safety, live against the embedded broker: one thread for delivery
    /// reports, no use after close, no blocking or deadlock when the last reference goes, and no silent
    /// override of the settings the product relies on.
    @Suite struct AdapterSafetyLiveTests {
        private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

        /// Counts completions running at once and the threads they ran on.
        final class CompletionWatch: @unchecked Sendable {
            private let inside = Atomic<Int>(0)
            private let state = Mutex<(maxAtOnce: Int, threads: Set<UInt>, done: Int)>((0, [], 0))
            func run() {
                let now = inside.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue
                let me = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(Unmanaged.passUnretained(Thread.current).toOpaque())))
                state.withLock { s in s.maxAtOnce = max(s.maxAtOnce, now); s.threads.insert(me) }
                for _ in 0..<50 { _ = inside.load(ordering: .relaxed) }  // widen the window a race needs
                inside.wrappingSubtract(1, ordering: .acquiringAndReleasing)
                state.withLock { $0.done += 1 }
            }
            var snapshot: (maxAtOnce: Int, threads: Int, done: Int) { state.withLock { ($0.maxAtOnce, $0.threads.count, $0.done) } }
        }

        /// Before: `rd_kafka_flush` served delivery reports on the caller's thread while the poll thread
        /// served them too (two completions at once within 30k records, every run).
        @Test func deliveryReportsRunOnOneThreadEvenWhileFlushing() throws {
            let w = try LiveWorld()
            w.createTopic("one-thread", partitions: 3)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            let watch = CompletionWatch()
            let total = 30_000
            let flushes = Atomic<Int>(0)
            let stop = Atomic<Bool>(false)
            let flushers = (0..<2).map { _ in
                Thread {
                    while !stop.load(ordering: .relaxed) {
                        let done = DispatchSemaphore(value: 0)
                        producer.flush(timeout: .milliseconds(50)) { _ in done.signal() }
                        done.wait()
                        flushes.wrappingAdd(1, ordering: .relaxed)
                    }
                }
            }
            flushers.forEach { $0.start() }
            #expect(w.wait(.seconds(10)) { flushes.load(ordering: .relaxed) > 0 }, "no flush ran")
            for i in 0..<total {
                producer.send(ProducerRecord(topic: "one-thread", value: bytes("\(i)"))) { _ in watch.run() }
            }
            #expect(w.wait(.seconds(60)) { watch.snapshot.done == total }, "\(watch.snapshot.done) of \(total) completions")
            stop.store(true, ordering: .relaxed)
            let s = watch.snapshot
            #expect(s.maxAtOnce == 1, "\(s.maxAtOnce) completions ran at once")
            #expect(s.threads == 1, "completions ran on \(s.threads) threads")
        }

        /// Before: work queued before close captured the raw handle and could run after
        /// `rd_kafka_destroy`; calls after close were unguarded.
        @Test func callsAfterCloseFailCleanly() throws {
            let w = try LiveWorld()
            w.createTopic("closed", partitions: 1)
            let producer = try RdKafkaProducer(w.settings, config: KafkaProducerConfig())
            let sent: [Result<RecordMetadata, KafkaError>] = try w.produceAll(producer, (0..<100).map { ProducerRecord(topic: "closed", value: bytes("\($0)")) })
            #expect(sent.allSatisfy { (try? $0.get()) != nil })
            // Queue flushes behind the close from other threads: none may touch the freed client.
            let results = Collector<Result<Void, KafkaError>>()
            for _ in 0..<20 { producer.flush(timeout: .seconds(1)) { results.append($0) } }
            producer.close()
            for _ in 0..<20 { producer.flush(timeout: .seconds(1)) { results.append($0) } }
            #expect(w.wait(.seconds(10)) { results.count == 40 })
            #expect(results.all.suffix(20).allSatisfy { $0.failureCode == "client_closed" }, "\(results.all.suffix(20))")
            let late = Slot<Result<RecordMetadata, KafkaError>>()
            producer.send(ProducerRecord(topic: "closed", value: bytes("late"))) { late.set($0) }
            #expect(late.value?.failureCode == "producer_closed", "\(String(describing: late.value))")
            let txn = Slot<Result<Void, KafkaError>>()
            producer.commitTransaction { txn.set($0) }
            #expect(w.wait(.seconds(5)) { txn.value != nil })
            #expect(txn.value?.failureCode == "client_closed")
        }

        @Test func consumerCallsAfterCloseFailWithClientClosed() throws {
            let w = try LiveWorld()
            w.createTopic("closed-consumer", partitions: 1)
            let consumer = try w.cluster(client: 0).makeConsumer(KafkaConsumerConfig(groupId: "closed"))
            try consumer.assign([TopicPartition("closed-consumer", 0)])
            try w.call { done in consumer.close { done(.success(())) } }
            #expect(throws: KafkaError.self) { try w.call { consumer.commit([PartitionOffset(TopicPartition("closed-consumer", 0), 1)], $0) } }
            let committed: Result<[PartitionOffset], KafkaError> = Result { () throws(KafkaError) in
                do { return try w.value { consumer.committed([TopicPartition("closed-consumer", 0)], $0) } } catch let e as KafkaError { throw e } catch { throw KafkaError(code: "other", message: "\(error)") }
            }
            #expect(committed.failureCode == "client_closed")
            #expect(throws: KafkaError.self) { try consumer.seek(TopicPartition("closed-consumer", 0), to: .beginning) }
            #expect(consumer.position(TopicPartition("closed-consumer", 0)) == nil)
            #expect(try w.pollOnce(consumer).isEmpty)
        }

        /// Before: releasing the last reference inside one of the producer's own completions hung for
        /// ever (deinit waited for the poll thread it was running on).
        @Test func droppingTheLastReferenceInsideACompletionDoesNotHang() throws {
            let w = try LiveWorld()
            w.createTopic("last-ref", partitions: 1)
            final class Holder: @unchecked Sendable { var producer: (any KafkaProducer)? }
            let holder = Holder()
            holder.producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            let returned = Atomic<Bool>(false)
            holder.producer!.send(ProducerRecord(topic: "last-ref", value: bytes("x"))) { _ in
                holder.producer = nil  // the last reference, released on the delivery thread
                returned.store(true, ordering: .releasing)
            }
            #expect(w.wait(.seconds(15)) { returned.load(ordering: .acquiring) }, "the completion never returned: deinit blocked its own thread")
        }

        /// Before: `seek` waited up to 10 s for the broker; the seam says nothing blocks.
        @Test func seekDoesNotWaitForTheBroker() throws {
            let w = try LiveWorld()
            w.createTopic("seek-fast", partitions: 1)
            let tp = TopicPartition("seek-fast", 0)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produceAll(producer, (0..<5).map { ProducerRecord(topic: "seek-fast", partition: 0, value: bytes("\($0)")) })
            let consumer = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "seek-fast"))
            try consumer.assign([tp])
            #expect(try w.consume(consumer, count: 5).records.count == 5)
            w.brokerDown(0); w.brokerDown(1); w.brokerDown(2)
            let start = ContinuousClock.now
            try consumer.seek(tp, to: .offset(1))
            #expect(ContinuousClock.now - start < .seconds(1), "seek took \(ContinuousClock.now - start) with the brokers down")
            w.brokerUp(0); w.brokerUp(1); w.brokerUp(2)
            #expect(try w.consume(consumer, count: 4).records.map(\.offset) == [1, 2, 3, 4])
            #expect(throws: KafkaError.self) { try consumer.seek(TopicPartition("seek-fast", 9), to: .beginning) }
        }

        /// Extra properties may tune transport, never the settings the seam's guarantees rest on.
        @Test(arguments: ["enable.auto.commit", "enable.auto.offset.store", "isolation.level", "group.id", "partition.assignment.strategy"])
        func consumerRefusesOverridesOfOwnedSettings(_ key: String) throws {
            var settings = RdKafkaClusterSettings(bootstrapServers: "127.0.0.1:1")
            settings.properties = [key: "true"]
            let error = #expect(throws: KafkaError.self) { _ = try RdKafkaConsumer(settings, config: KafkaConsumerConfig(groupId: "g")) }
            #expect(error?.code == "invalid_config")
            #expect(error?.message.contains(key) == true, "\(error?.message ?? "")")
        }

        @Test(arguments: ["enable.idempotence", "acks", "transactional.id"])
        func producerRefusesOverridesOfOwnedSettings(_ key: String) throws {
            var settings = RdKafkaClusterSettings(bootstrapServers: "127.0.0.1:1")
            settings.properties = [key: "1"]
            let error = #expect(throws: KafkaError.self) { _ = try RdKafkaProducer(settings, config: KafkaProducerConfig()) }
            #expect(error?.code == "invalid_config")
            #expect(error?.message.contains(key) == true, "\(error?.message ?? "")")
        }

        @Test func transportTuningIsStillAccepted() throws {
            var settings = RdKafkaClusterSettings(bootstrapServers: "127.0.0.1:1")
            settings.properties = ["socket.keepalive.enable": "true", "fetch.wait.max.ms": "50"]
            _ = try RdKafkaConsumer(settings, config: KafkaConsumerConfig(groupId: "g"))
        }
    }
}

extension Result {
    var failureCode: String? { if case .failure(let e) = self { (e as? KafkaError)?.code } else { nil } }
}
