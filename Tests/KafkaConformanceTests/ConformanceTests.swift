import Foundation
import MeshCore
import SimKafka
import Testing

extension KafkaLiveSuites {
    /// The same behavioural tests against the simulated cluster and against librdkafka with the embedded
    /// broker. Where the two cannot match, the difference is written next to the test.
    @Suite struct ConformanceTests {
        static let worlds = WorldKind.allCases

        private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

        @Test(arguments: worlds)
        func roundTripKeepsKeysHeadersAndTimestamps(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("round-trip", partitions: 1)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            var sent: [ProducerRecord] = []
            for i in 0..<10 {
                let key: [UInt8]? = i % 3 == 0 ? nil : bytes("k\(i)")
                let value: [UInt8]? = i == 5 ? nil : bytes("v\(i)")
                let headers = [KafkaHeader("trace", bytes("t\(i)")), KafkaHeader("empty", nil)]
                sent.append(ProducerRecord(topic: "round-trip", partition: 0, key: key, value: value, headers: headers, timestamp: 1_700_000_000_000 + Int64(i)))
            }
            for (i, r) in sent.enumerated() {
                #expect(try w.produce(producer, r).offset == Int64(i))
            }
            var config = KafkaConsumerConfig(groupId: "round-trip-group")
            config.resetPolicy = .earliest
            let consumer = try w.cluster(client: 1).makeConsumer(config)
            try consumer.subscribe(["round-trip"])
            let got = try w.consume(consumer, count: 10).records
            #expect(got.count == 10)
            for (r, s) in zip(got, sent) {
                #expect(r.key == s.key)
                #expect(r.value == s.value)
                #expect(r.headers == s.headers)
                #expect(r.timestamp == s.timestamp)
            }
            #expect(got.map(\.offset) == Array(0..<10))
        }

        /// `sendBatch` (what a REST produce request uses): one completion, every record's result in
        /// the order sent, a failed record failing alone, and offsets that are where the records are.
        @Test(arguments: worlds)
        func aBatchReportsEveryRecordInOrderAndAFailureAlone(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("batch", partitions: 2)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            var records = (0..<20).map { ProducerRecord(topic: "batch", partition: Int32($0 % 2), key: nil, value: bytes("b\($0)")) }
            records[7].partition = 9  // no such partition: this one alone fails
            let results = try w.value(.seconds(60)) { (done: @escaping @Sendable (Result<[Result<RecordMetadata, KafkaError>], KafkaError>) -> Void) in
                producer.sendBatch(records) { done(.success($0)) }
            }
            #expect(results.count == 20)
            for (i, result) in results.enumerated() {
                if i == 7 {
                    #expect(throws: KafkaError.self) { try result.get() }
                } else {
                    #expect(try result.get().topicPartition == TopicPartition("batch", Int32(i % 2)))
                }
            }
            // Per partition, in send order: offsets 0, 1, 2, ... of what was acknowledged.
            let p0 = results.enumerated().filter { $0.offset % 2 == 0 }.compactMap { try? $0.element.get().offset }
            #expect(p0 == Array(0..<10))
            var config = KafkaConsumerConfig(groupId: "batch-group")
            config.resetPolicy = .earliest
            let consumer = try w.cluster(client: 1).makeConsumer(config)
            try consumer.subscribe(["batch"])
            let got = try w.consume(consumer, count: 19).records
            for r in got {
                let i = Int(String(decoding: r.value ?? [], as: UTF8.self).dropFirst())!
                #expect(try results[i].get().offset == r.offset)
            }
        }

        /// `sendPacked` (what a REST produce request uses now): records whose keys, values and headers
        /// are spans of one buffer come out as the plain records they stand for, null and empty
        /// distinct, each record's own headers before the shared ones.
        @Test(arguments: worlds)
        func packedRecordsArriveAsThePlainRecordsTheyStandFor(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("packed", partitions: 1)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            var batch = PackedRecords(topic: "packed", storage: bytes("k0v0h0"))
            batch.shared = [KafkaHeader("traceparent", bytes("tp")), KafkaHeader("none", nil)]
            var first = PackedRecords.Record()
            first.key = .init(start: 0, count: 2)
            first.value = .init(start: 2, count: 2)
            first.partition = 0
            first.timestamp = 1_700_000_000_000
            batch.headers = [PackedRecords.Header("own", .init(start: 4, count: 2)), PackedRecords.Header("empty", .init(start: 0, count: 0))]
            first.headers = 0..<2
            var second = PackedRecords.Record()
            second.value = batch.append(bytes("decoded"))
            second.key = .init(start: 3, count: 0)  // empty, not null
            second.partition = 0
            batch.records = [first, second]
            let results = try w.value(.seconds(60)) { (done: @escaping @Sendable (Result<[Result<RecordMetadata, KafkaError>], KafkaError>) -> Void) in
                producer.sendPacked(batch) { done(.success($0)) }
            }
            #expect(try results.map { try $0.get().offset } == [0, 1])
            var config = KafkaConsumerConfig(groupId: "packed-group")
            config.resetPolicy = .earliest
            let consumer = try w.cluster(client: 1).makeConsumer(config)
            try consumer.subscribe(["packed"])
            let got = try w.consume(consumer, count: 2).records
            let expected = batch.unpacked()
            #expect(expected[1].key == [] && expected[0].headers.map(\.key) == ["own", "empty", "traceparent", "none"])
            #expect(got.count == 2)
            for (r, s) in zip(got, expected) {
                #expect(r.key == s.key)
                #expect(r.value == s.value)
                #expect(r.headers == s.headers)
            }
            #expect(got[0].timestamp == 1_700_000_000_000)
        }

        @Test(arguments: worlds)
        func sameKeyAlwaysLandsInTheSamePartition(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("keyed", partitions: 6)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            let records = (0..<40).map { ProducerRecord(topic: "keyed", key: bytes("key-\($0 % 5)"), value: bytes("\($0)")) }
            let results = try w.produceAll(producer, records)
            var partitionOf: [String: Set<Int32>] = [:]
            for (r, result) in zip(records, results) {
                partitionOf[String(decoding: r.key!, as: UTF8.self), default: []].insert(try result.get().topicPartition.partition)
            }
            #expect(partitionOf.count == 5)
            #expect(partitionOf.values.allSatisfy { $0.count == 1 }, "\(partitionOf)")
        }

        @Test(arguments: worlds)
        func groupSplitsPartitionsAndTheSurvivorTakesThemAll(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("shared", partitions: 4)
            let a = try w.cluster(client: 0).makeConsumer(KafkaConsumerConfig(groupId: "split"))
            let b = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "split"))
            try a.subscribe(["shared"])
            try b.subscribe(["shared"])
            var held: [[TopicPartition]] = [[], []]
            let split = try w.pollUntilAssigned([a, b], tracked: &held) { h in
                h[0].count == 2 && h[1].count == 2 && Set(h[0]).isDisjoint(with: h[1])
            }
            #expect(split, "assignments: \(held)")
            try w.call { done in b.close { done(.success(())) } }
            var survivor: [[TopicPartition]] = [held[0]]
            let takeover = try w.pollUntilAssigned([a], tracked: &survivor) { $0[0].count == 4 }
            #expect(takeover, "survivor holds \(survivor[0])")
        }

        @Test(arguments: worlds)
        func commitRestartAndResumeFromTheCommittedOffset(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("resume", partitions: 1)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produceAll(producer, (0..<10).map { ProducerRecord(topic: "resume", partition: 0, value: bytes("\($0)")) })
            let first = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "resumer"))
            try first.subscribe(["resume"])
            let got = try w.consume(first, count: 10).records
            #expect(got.count == 10)
            try w.call { first.commit([PartitionOffset(TopicPartition("resume", 0), 6)], $0) }
            let committed: [PartitionOffset] = try w.value { first.committed([TopicPartition("resume", 0)], $0) }
            #expect(committed == [PartitionOffset(TopicPartition("resume", 0), 6)])
            try w.call { done in first.close { done(.success(())) } }

            let second = try w.cluster(client: 2).makeConsumer(KafkaConsumerConfig(groupId: "resumer"))
            try second.subscribe(["resume"])
            let rest = try w.consume(second, count: 4).records
            // Live, the second member sometimes gets no assignment within 30 s after the first one's
            // close (once in six loaded runs before the adapter's close and revocation were reworked,
            // and the same shape once in about ten loaded runs of closeCommitsThroughTheRevokeStep
            // after): not pinned down, and not seen in the simulated world. An intermittent known issue.
            withKnownIssue("the embedded broker sometimes never assigns a member joining after another's close",
                           isIntermittent: true) {
                if kind == .live && rest.isEmpty { Issue.record("no records within 30 s after the first member closed") }
            }
            if !(kind == .live && rest.isEmpty) { #expect(rest.map(\.offset) == [6, 7, 8, 9]) }
        }

        @Test(arguments: worlds)
        func pauseResumeAndSeek(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("seek", partitions: 1)
            let tp = TopicPartition("seek", 0)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produceAll(producer, (0..<5).map { ProducerRecord(topic: "seek", partition: 0, value: bytes("\($0)")) })
            let consumer = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "seeker"))
            try consumer.assign([tp])
            #expect(try w.consume(consumer, count: 5).records.map(\.offset) == [0, 1, 2, 3, 4])

            try consumer.seek(tp, to: .offset(2))
            #expect(try w.consume(consumer, count: 3).records.map(\.offset) == [2, 3, 4])
            try consumer.seek(tp, to: .beginning)
            #expect(try w.consume(consumer, count: 5).records.first?.offset == 0)

            consumer.pause([tp])
            _ = try w.produce(producer, ProducerRecord(topic: "seek", partition: 0, value: bytes("5")))
            #expect(try w.consume(consumer, count: 1, timeout: .seconds(1)).records.isEmpty, "a paused partition delivered records")
            consumer.resume([tp])
            #expect(try w.consume(consumer, count: 1).records.map(\.offset) == [5])

            try consumer.seek(tp, to: .end)
            // librdkafka resolves the logical end offset asynchronously: let one poll settle it first.
            #expect(try w.consume(consumer, count: 1, timeout: .seconds(1)).records.isEmpty, "records after seeking to the end")
            _ = try w.produce(producer, ProducerRecord(topic: "seek", partition: 0, value: bytes("6")))
            #expect(try w.consume(consumer, count: 1).records.map(\.offset) == [6])
        }

        /// Live: the embedded broker answers the first produce requests with a retriable error, which the
        /// producer retries. Simulated: the broker applies the write and the reply is lost (an unknown
        /// outcome), the harder case, which idempotence must deduplicate.
        @Test(arguments: worlds)
        func idempotentProducerWritesNoDuplicatesUnderRequestErrors(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("idem", partitions: 1)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produce(producer, ProducerRecord(topic: "idem", partition: 0, value: bytes("warm-up")))
            w.failProduceRequests(3)
            let results = try w.produceAll(producer, (0..<20).map { ProducerRecord(topic: "idem", partition: 0, value: bytes("m\($0)")) })
            #expect(results.allSatisfy { (try? $0.get()) != nil }, "\(results)")
            let consumer = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "idem-check"))
            try consumer.assign([TopicPartition("idem", 0)])
            let got = try w.consume(consumer, count: 21, timeout: .seconds(10)).records
            let values = got.dropFirst().map { String(decoding: $0.value ?? [], as: UTF8.self) }
            #expect(values == (0..<20).map { "m\($0)" }, "duplicates or gaps: \(values)")
        }

        @Test(arguments: worlds)
        func transactionsAreAllOrNothingForReadCommitted(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("txn", partitions: 1)
            w.createTopic("txn-in", partitions: 1)
            var config = KafkaProducerConfig()
            config.transactionalId = "conformance-txn"
            let producer = try w.cluster(client: 0).makeProducer(config)
            try w.call { producer.initTransactions($0) }
            let group = ConsumerGroupMetadata(groupId: "txn-group", generation: -1, memberId: "")

            try producer.beginTransaction()
            _ = try w.produceAll(producer, (0..<3).map { ProducerRecord(topic: "txn", partition: 0, value: bytes("aborted-\($0)")) })
            try w.call { producer.sendOffsetsToTransaction([PartitionOffset(TopicPartition("txn-in", 0), 9)], group: group, $0) }
            try w.call { producer.abortTransaction($0) }

            try producer.beginTransaction()
            _ = try w.produceAll(producer, (0..<2).map { ProducerRecord(topic: "txn", partition: 0, value: bytes("committed-\($0)")) })
            try w.call { producer.sendOffsetsToTransaction([PartitionOffset(TopicPartition("txn-in", 0), 7)], group: group, $0) }
            try w.call { producer.commitTransaction($0) }

            let consumer = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "txn-reader"))
            try consumer.assign([TopicPartition("txn", 0)])
            let values = try w.consume(consumer, count: 5, timeout: .seconds(3)).records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
            #expect(values.filter { $0.hasPrefix("committed") } == ["committed-0", "committed-1"])
            let admin = try w.cluster(client: 2).makeAdmin()
            let offsets: [PartitionOffset] = try w.value { admin.groupOffsets("txn-group", $0) }
            let committedOffset = offsets.first { $0.topicPartition == TopicPartition("txn-in", 0) }?.offset

            // librdkafka 2.0.2's mock cluster accepts the transactional protocol but neither returns the
            // aborted-transaction list in Fetch responses nor applies TxnOffsetCommit, so against it aborted
            // records stay visible and transactional offsets are not stored. Kafka does both; the simulated
            // cluster models both. If a newer mock starts conforming, the known issue fails and this note goes.
            withKnownIssue("mock cluster: no aborted-transaction filtering, no TxnOffsetCommit") {
                #expect(values == ["committed-0", "committed-1"])
                #expect(committedOffset == 7)
            } when: { kind == .live }
        }

        @Test(arguments: worlds)
        func aCommittedOffsetBelowTheLogStartResetsToTheEarliestRetainedRecord(_ kind: WorldKind) throws {
            // Retention deletes the head of the log whatever the groups committed: the simulated
            // cluster keeps 100 records per partition here, the embedded broker about 4.5 MB.
            var retained = SimKafkaConfig()
            retained.retainedRecords = 100
            let w: any KafkaWorld = kind == .simulated ? SimulatedWorld(seed: 8, config: retained) : try LiveWorld()
            w.createTopic("retained", partitions: 1)
            let tp = TopicPartition("retained", 0)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produce(producer, ProducerRecord(topic: "retained", partition: 0, value: bytes("first")))
            let early = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "slow-reader"))
            try early.assign([tp])
            try w.value { early.commit([PartitionOffset(tp, 1)], $0) }
            let (count, size) = kind == .simulated ? (150, 10) : (6000, 1024)
            let filled = try w.produceAll(producer, (0..<count).map { _ in ProducerRecord(topic: "retained", partition: 0, value: [UInt8](repeating: 0x61, count: size)) })
            #expect(filled.allSatisfy { (try? $0.get()) != nil })
            let admin = try w.cluster(client: 0).makeAdmin()
            let low = try w.value { admin.watermarks(tp, $0) }.low
            #expect(low > 1, "retention deleted nothing (low watermark \(low))")
            // The group's offset (1) is gone: a member of the same group starts at the earliest retained record.
            let late = try w.cluster(client: 2).makeConsumer(KafkaConsumerConfig(groupId: "slow-reader"))
            try late.assign([tp])
            let first = try w.consume(late, count: 1, timeout: .seconds(20)).records.first
            #expect(first?.offset == low)
        }

        @Test(arguments: worlds)
        func brokerDownForAWhileThenUpDeliversEveryRecordOnce(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("outage", partitions: 1)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produce(producer, ProducerRecord(topic: "outage", partition: 0, value: bytes("before")))
            let leader = w.leader(of: TopicPartition("outage", 0))
            let downed = leader ?? 0
            // Live: the mock cluster has no leader election, so every broker goes down and comes back.
            let victims = leader == nil ? Array(0..<w.brokerCount) : [downed]
            for v in victims { w.brokerDown(v) }
            let slots = (0..<10).map { _ in Slot<Result<RecordMetadata, KafkaError>>() }
            for (i, s) in slots.enumerated() {
                producer.send(ProducerRecord(topic: "outage", partition: 0, value: bytes("during-\(i)"))) { s.set($0) }
            }
            w.sleep(.seconds(2))
            for v in victims { w.brokerUp(v) }
            #expect(w.wait(.seconds(40)) { slots.allSatisfy { $0.value != nil } })
            #expect(slots.allSatisfy { (try? $0.value?.get()) != nil }, "\(slots.map(\.value))")
            let consumer = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "outage-check"))
            try consumer.assign([TopicPartition("outage", 0)])
            let values = try w.consume(consumer, count: 11, timeout: .seconds(20)).records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
            #expect(values == ["before"] + (0..<10).map { "during-\($0)" })
        }
    }
}
