import MeshCore
import Testing
@testable import KafkaSidecar

/// A driver stand-in: feeds events at a virtual time and keeps what the engine asked for.
final class EngineHarness {
    let engine: ReactiveConsumer
    var now = MeshInstant.zero
    var actions: [ReactiveConsumer.Action] = []

    init(_ configure: (inout ReactiveConsumerConfig) -> Void = { _ in }) {
        var config = ReactiveConsumerConfig()
        config.retryBackoff = ExponentialBackoff(initial: .milliseconds(10), maximum: .milliseconds(10))
        configure(&config)
        engine = ReactiveConsumer(config: config, random: SeededRandom(seed: 1), epochMillis: { $0.nanoseconds / 1_000_000 })
    }

    @discardableResult
    func send(_ event: ReactiveConsumer.Event) -> [ReactiveConsumer.Action] {
        let out = engine.handle(event, now: now)
        actions += out
        return out
    }

    func advance(_ d: Duration) { now = now + d }

    static let tp = TopicPartition("t", 0)

    static func records(_ offsets: ClosedRange<Int64>, tp: TopicPartition = tp, key: (Int64) -> String = { _ in "k" }) -> [ConsumerRecord] {
        offsets.map { ConsumerRecord(topicPartition: tp, offset: $0, key: Array(key($0).utf8), value: Array("{\"n\":\($0)}".utf8), headers: [], timestamp: 0) }
    }

    /// Starts, marks the app ready and assigns `tps`.
    func ready(_ tps: [TopicPartition] = [tp]) {
        send(.started)
        send(.appReadiness(ready: true))
        send(.assigned(tps))
    }

    func pushes(_ out: [ReactiveConsumer.Action]) -> [PushBatch] {
        out.compactMap { if case .push(let b) = $0 { b } else { nil } }
    }
    func commits(_ out: [ReactiveConsumer.Action]) -> [(UInt64, [PartitionOffset])] {
        out.compactMap { if case .commit(let t, let o) = $0 { (t, o) } else { nil } }
    }
    func deadLetters(_ out: [ReactiveConsumer.Action]) -> [(UInt64, ProducerRecord)] {
        out.compactMap { if case .produceDeadLetter(let t, let r) = $0 { (t, r) } else { nil } }
    }

    func answer(_ batch: PushBatch, _ verdict: (Int64) -> AppVerdict) -> [ReactiveConsumer.Action] {
        var v: [String: PushAnswer.Verdict] = [:]
        for e in batch.entries { v[PushBatch.recordID(e.record.topicPartition, e.record.offset)] = PushAnswer.Verdict(verdict(e.record.offset)) }
        return send(.pushAnswered(batch: batch.id, .verdicts(v)))
    }
}

@Suite struct ReactiveConsumerTests {
    @Test func commitsStopAtTheLowestUnfinishedRecord() throws {
        let h = EngineHarness()
        h.ready()
        let batch = try #require(h.pushes(h.send(.records(EngineHarness.records(0...4)))).first)
        #expect(batch.entries.map(\.record.offset) == [0, 1, 2, 3, 4])
        let out = h.answer(batch) { $0 == 2 ? .retry : .success }
        #expect(h.commits(out).map(\.1) == [[PartitionOffset(EngineHarness.tp, 2)]])
        // The retry comes after the backoff, and only then does the commit pass it.
        #expect(h.pushes(out).isEmpty)
        h.advance(.milliseconds(20))
        let retry = try #require(h.pushes(h.send(.timerFired(.wake))).first)
        #expect(retry.entries.map(\.record.offset) == [2])
        #expect(retry.entries.first?.attempt == 2)
        h.send(.commitDone(ticket: h.commits(out)[0].0, .success(())))
        let after = h.answer(retry) { _ in .success }
        #expect(h.commits(after).map(\.1) == [[PartitionOffset(EngineHarness.tp, 5)]])
    }

    @Test func aDeadLetteredRecordHoldsTheCommitUntilTheBrokerAcknowledgesItsCopy() throws {
        let h = EngineHarness()
        h.ready()
        let batch = try #require(h.pushes(h.send(.records(EngineHarness.records(0...2)))).first)
        let out = h.answer(batch) { $0 == 1 ? .deadLetter : .success }
        let (ticket, copy) = try #require(h.deadLetters(out).first)
        #expect(copy.topic == "t.dlq")
        let names = Dictionary(copy.headers.map { ($0.key, String(decoding: $0.value ?? [], as: UTF8.self)) }, uniquingKeysWith: { a, _ in a })
        #expect(names["lightmesh.dlq.original.offset"] == "1")
        #expect(names["lightmesh.dlq.original.topic"] == "t")
        #expect(names["lightmesh.dlq.attempts"] == "1")
        #expect(h.commits(out).map(\.1) == [[PartitionOffset(EngineHarness.tp, 1)]])
        h.send(.commitDone(ticket: h.commits(out)[0].0, .success(())))
        // A refused copy is written again later; the commit still waits.
        let refused = h.send(.deadLetterWritten(ticket: ticket, .failure(KafkaError(code: "x", message: "down", retriable: true))))
        #expect(h.commits(refused).isEmpty)
        h.advance(.seconds(1))
        let again = try #require(h.deadLetters(h.send(.timerFired(.wake))).first)
        let acked = h.send(.deadLetterWritten(ticket: again.0, .success(RecordMetadata(topicPartition: TopicPartition("t.dlq", 0), offset: 0, timestamp: 0))))
        #expect(h.commits(acked).map(\.1) == [[PartitionOffset(EngineHarness.tp, 3)]])
        #expect(h.engine.stats.deadLettered == 1)
    }

    @Test func aRecordThatKeepsFailingGoesToTheDeadLetterTopicAfterMaxAttempts() throws {
        let h = EngineHarness { $0.maxAttempts = 3 }
        h.ready()
        var batch = try #require(h.pushes(h.send(.records(EngineHarness.records(0...0)))).first)
        for attempt in 1...2 {
            #expect(batch.entries[0].attempt == attempt)
            _ = h.send(.pushAnswered(batch: batch.id, .failed(reason: "the app answered 500")))
            h.advance(.milliseconds(20))
            batch = try #require(h.pushes(h.send(.timerFired(.wake))).first)
        }
        let out = h.send(.pushAnswered(batch: batch.id, .failed(reason: "the app answered 500")))
        let copy = try #require(h.deadLetters(out).first?.1)
        let reason = copy.headers.first { $0.key == "lightmesh.dlq.reason" }?.value
        #expect(String(decoding: reason ?? [], as: UTF8.self) == "gave up after 3 attempts: the app answered 500")
    }

    @Test func partitionOrderKeepsOneBatchInFlightPerPartition() throws {
        let h = EngineHarness { $0.maxBatchRecords = 2 }
        h.ready()
        let out = h.send(.records(EngineHarness.records(0...5)))
        #expect(h.pushes(out).map { $0.entries.map(\.record.offset) } == [[0, 1]])
    }

    @Test func keyOrderRunsDifferentKeysInParallelAndOneKeyInOrder() throws {
        let h = EngineHarness { $0.ordering = .key; $0.maxBatchRecords = 1 }
        h.ready()
        let out = h.send(.records(EngineHarness.records(0...3) { $0 % 2 == 0 ? "a" : "b" }))
        let first = h.pushes(out)
        #expect(first.map { $0.entries.map(\.record.offset) } == [[0], [1]])
        let next = h.answer(first[0]) { _ in .success }
        #expect(h.pushes(next).map { $0.entries.map(\.record.offset) } == [[2]])
    }

    @Test func nothingIsPushedBeforeTheAppIsReadyAndPartitionsPauseWhileItIsNot() throws {
        let h = EngineHarness()
        h.send(.started)
        let assigned = h.send(.assigned([EngineHarness.tp]))
        #expect(assigned.contains(.pause([EngineHarness.tp])))
        #expect(h.pushes(h.send(.records(EngineHarness.records(0...1)))).isEmpty)
        let ready = h.send(.appReadiness(ready: true))
        #expect(ready.contains(.resume([EngineHarness.tp])))
        #expect(h.pushes(ready).count == 1)
    }

    @Test func theBudgetLimitsFetchingAndAnOverflowPausesUntilBackWithinIt() throws {
        let h = EngineHarness { $0.maxBufferedRecords = 4; $0.maxBatchRecords = 8 }
        h.ready()
        let first = h.send(.records(EngineHarness.records(0...3)))
        #expect(h.engine.pollBudget == 0)
        #expect(h.engine.nextPoll.maxRecords == 1 && h.engine.nextPoll.after == ReactiveConsumer.idlePollInterval)
        #expect(!first.contains(.pause([EngineHarness.tp])))  // within the budget: no pause
        // The driver's slow polls still bring records: past twice the budget, pause.
        let out = h.send(.records(EngineHarness.records(4...7)))
        #expect(out.contains(.pause([EngineHarness.tp])))
        let answered = h.answer(h.pushes(first)[0]) { _ in .success }
        #expect(answered.contains(.resume([EngineHarness.tp])))
    }

    @Test func aTimedOutPushIsAbandonedAndRetriedAndItsLateAnswerIgnored() throws {
        let h = EngineHarness()
        h.ready()
        let batch = try #require(h.pushes(h.send(.records(EngineHarness.records(0...0)))).first)
        h.advance(.seconds(10))
        let out = h.send(.timerFired(.pushTimeout(batch: batch.id)))
        #expect(out.contains(.abandonPush(batch: batch.id)))
        let late = h.answer(batch) { _ in .success }
        #expect(h.commits(late).isEmpty)
    }

    @Test func revocationWaitsForAnswersInFlightThenReleasesWhatIsFinished() throws {
        let h = EngineHarness()
        h.ready()
        let batch = try #require(h.pushes(h.send(.records(EngineHarness.records(0...3)))).first)
        let revoking = h.send(.revoking(id: 7, PartitionRevocation(partitions: [EngineHarness.tp], lost: false)))
        #expect(!revoking.contains { if case .release = $0 { true } else { false } })
        let out = h.answer(batch) { $0 == 2 ? .retry : .success }
        #expect(out.contains(.release(revocation: 7, [PartitionOffset(EngineHarness.tp, 2)])))
        #expect(h.pushes(out).isEmpty)
        #expect(h.engine.stats.buffered == 0)
    }

    @Test func revocationDeadlineReleasesWithoutWaitingForever() throws {
        let h = EngineHarness()
        h.ready()
        _ = h.send(.records(EngineHarness.records(0...3)))
        _ = h.send(.revoking(id: 3, PartitionRevocation(partitions: [EngineHarness.tp], lost: false)))
        let out = h.send(.timerFired(.revocationDeadline(3)))
        #expect(out.contains(.release(revocation: 3, [PartitionOffset(EngineHarness.tp, 0)])))
    }

    @Test func lostPartitionsAreNeverCommitted() throws {
        let h = EngineHarness()
        h.ready()
        let batch = try #require(h.pushes(h.send(.records(EngineHarness.records(0...1)))).first)
        let out = h.send(.revoking(id: 1, PartitionRevocation(partitions: [EngineHarness.tp], lost: true)))
        #expect(out.contains(.release(revocation: 1, [])))
        #expect(h.commits(h.answer(batch) { _ in .success }).isEmpty)
    }

    @Test func aMissingStatusCountsAsRetry() throws {
        let h = EngineHarness()
        h.ready()
        let batch = try #require(h.pushes(h.send(.records(EngineHarness.records(0...1)))).first)
        let out = h.send(.pushAnswered(batch: batch.id, .verdicts(["t/0/1": .init(.success)])))
        #expect(h.commits(out).isEmpty)
        #expect(h.engine.stats.retries == 1)
    }
}
