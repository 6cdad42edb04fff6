import MeshCore
import MeshSimulator
import SimKafka
import Synchronization
import Testing

/// Behaviour only the simulated cluster can show on demand: what goes wrong when someone relies on
/// `acks=1` or on retries without idempotence, and how a crashed member leaves its group.
@Suite struct SimulatedClusterTests {
    private func values(_ w: SimulatedWorld, _ topic: String, count: Int) throws -> [String] {
        let consumer = try w.cluster(client: 9).makeConsumer(KafkaConsumerConfig(groupId: "reader-\(topic)"))
        try consumer.assign([TopicPartition(topic, 0)])
        return try w.consume(consumer, count: count, timeout: .seconds(3)).records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    @Test func acksOneLosesTheUnreplicatedTailOnFailoverAndAcksAllDoesNot() throws {
        for acks in [KafkaProducerConfig.Acks.leader, .all] {
            let w = SimulatedWorld(seed: 3)
            w.createTopic("t", partitions: 1)
            var config = KafkaProducerConfig()
            config.idempotent = acks == .all
            config.acks = acks
            let producer = try w.cluster(client: 0).makeProducer(config)
            _ = try w.produce(producer, ProducerRecord(topic: "t", partition: 0, value: Array("a".utf8)))
            w.sleep(.milliseconds(100))  // "a" is replicated
            _ = try w.produce(producer, ProducerRecord(topic: "t", partition: 0, value: Array("b".utf8)))  // acknowledged
            w.brokerDown(w.leader(of: TopicPartition("t", 0))!)  // before the followers copy "b"
            w.sleep(.seconds(1))
            let seen = try values(w, "t", count: 2)
            if acks == .leader {
                #expect(seen == ["a"], "acks=1 kept the unreplicated record: \(seen)")
                #expect(w.simulation.coverage.count("kafka.acks1-tail-lost") == 1)
            } else {
                #expect(seen == ["a", "b"])
            }
        }
    }

    @Test func acksAllWaitsForMinInsyncReplicasAndLeadersComeFromTheISROnly() throws {
        let w = SimulatedWorld(seed: 6)
        w.createTopic("t", partitions: 1)
        let tp = TopicPartition("t", 0)
        let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
        _ = try w.produce(producer, ProducerRecord(topic: "t", partition: 0, value: Array("a".utf8)))
        let leader = w.leader(of: tp)!
        let followers = (0..<3).filter { $0 != leader }
        // Two replicas down: one in-sync replica is fewer than min.insync.replicas (2); nothing is acknowledged.
        w.brokerDown(followers[0])
        w.brokerDown(followers[1])
        let done = Mutex<Result<RecordMetadata, KafkaError>?>(nil)
        producer.send(ProducerRecord(topic: "t", partition: 0, value: Array("b".utf8))) { r in done.withLock { $0 = r } }
        w.sleep(.seconds(1))
        #expect(done.withLock { $0 } == nil)
        #expect(w.simulation.coverage.count("kafka.not-enough-replicas") > 0)
        // One back: after catching up it is in sync again and the write goes through.
        w.brokerUp(followers[0])
        #expect(w.wait(.seconds(3)) { done.withLock { $0 } != nil })
        guard case .success? = done.withLock({ $0 }) else { Issue.record("not acknowledged: \(String(describing: done.withLock { $0 }))"); return }
        // The leader dies while the other follower (out of the ISR, it missed "b") is back: it is not
        // elected; the in-sync follower is, and "b" survives.
        w.brokerUp(followers[1])
        w.brokerDown(leader)
        w.sleep(.seconds(1))
        #expect(w.leader(of: tp) == followers[0])
        #expect(try values(w, "t", count: 2) == ["a", "b"])
    }

    @Test func transactionMarkersTakeOffsetsThatConsumersNeverSee() throws {
        let w = SimulatedWorld(seed: 9)
        w.createTopic("t", partitions: 1)
        var config = KafkaProducerConfig()
        config.transactionalId = "tx-markers"
        let producer = try w.cluster(client: 0).makeProducer(config)
        try w.value { producer.initTransactions($0) }
        for commit in [true, false, true] {
            try producer.beginTransaction()
            _ = try w.produce(producer, ProducerRecord(topic: "t", partition: 0, value: Array("\(commit)".utf8)))
            if commit { try w.value { producer.commitTransaction($0) } } else { try w.value { producer.abortTransaction($0) } }
        }
        let consumer = try w.cluster(client: 1).makeConsumer(KafkaConsumerConfig(groupId: "markers"))
        try consumer.assign([TopicPartition("t", 0)])
        let records = try w.consume(consumer, count: 2, timeout: .seconds(3)).records
        // record 0, marker 1, aborted record 2, marker 3, record 4, marker 5
        #expect(records.map(\.offset) == [0, 4])
        let admin = try w.cluster(client: 0).makeAdmin()
        #expect(try w.value { admin.watermarks(TopicPartition("t", 0), $0) }.high == 6)
    }

    @Test func retriesWithoutIdempotenceDuplicateWhenARepliesIsLost() throws {
        for idempotent in [false, true] {
            let w = SimulatedWorld(seed: 4)
            w.createTopic("t", partitions: 1)
            var config = KafkaProducerConfig()
            config.idempotent = idempotent
            let producer = try w.cluster(client: 0).makeProducer(config)
            w.failProduceRequests(1)
            _ = try w.produce(producer, ProducerRecord(topic: "t", partition: 0, value: Array("x".utf8)))
            let seen = try values(w, "t", count: 2)
            #expect(seen == (idempotent ? ["x"] : ["x", "x"]))
        }
    }

    @Test func aCrashedMemberIsDroppedAfterItsSessionTimeoutAndItsPartitionsMove() throws {
        let w = SimulatedWorld(seed: 5)
        w.createTopic("t", partitions: 2)
        var config = KafkaConsumerConfig(groupId: "g")
        config.sessionTimeout = .seconds(2)
        let a = try w.cluster(client: 0).makeConsumer(config)
        let b = try w.cluster(client: 1).makeConsumer(config)
        try a.subscribe(["t"])
        try b.subscribe(["t"])
        var held: [[TopicPartition]] = [[], []]
        #expect(try w.pollUntilAssigned([a, b], tracked: &held) { $0[0].count == 1 && $0[1].count == 1 })
        w.simulation.host(named: "client-1")!.crash()
        var survivor = [held[0]]
        let start = w.simulation.now
        #expect(try w.pollUntilAssigned([a], tracked: &survivor) { $0[0].count == 2 })
        #expect(w.simulation.now - start >= .seconds(2), "partitions moved before the session timeout")
        #expect(w.simulation.coverage.count("kafka.session-expired") == 1)
    }
}
