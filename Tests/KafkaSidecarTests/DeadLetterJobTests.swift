import MeshCore
import Testing
@testable import KafkaSidecar

/// The dead-letter job against hand-fed outcomes: what it copies, what it commits and when.
@Suite struct DeadLetterJobTests {
    static let d0 = TopicPartition("t.dlq", 0)
    static let d1 = TopicPartition("t.dlq", 1)

    static func plan(_ kind: DeadLetterPlan.Kind = .replay, limit: Int = 1_000, until: Int64? = nil, batch: Int = 500) -> DeadLetterPlan {
        DeadLetterPlan(kind: kind, topic: "t", deadLetterTopic: "t.dlq", group: "lightmesh-replay.t", limit: limit, untilOffset: until, batchSize: batch)
    }

    static func record(_ tp: TopicPartition, _ offset: Int64, original: String = "t") -> ConsumerRecord {
        ConsumerRecord(topicPartition: tp, offset: offset, key: Array("k\(offset)".utf8), value: Array("v\(offset)".utf8),
                       headers: [KafkaHeader("lightmesh.dlq.original.topic", Array(original.utf8)), KafkaHeader("lightmesh.dlq.reason", Array("bad".utf8))],
                       timestamp: 1)
    }

    static let ok = Result<RecordMetadata, KafkaError>.success(RecordMetadata(topicPartition: TopicPartition("t", 0), offset: 0, timestamp: 0))
    static let broken = Result<RecordMetadata, KafkaError>.failure(KafkaError(code: "timed_out", message: "timed out", retriable: true))

    /// Started, described (`ends`), positioned at `committed`.
    static func running(_ plan: DeadLetterPlan, ends: [TopicPartition: Watermarks], committed: [PartitionOffset] = []) -> (DeadLetterJob, [DeadLetterJob.Action]) {
        let job = DeadLetterJob(plan: plan)
        var out = job.handle(.started)
        out += job.handle(.described(.success(ends)))
        out += job.handle(.committedFetched(.success(committed)))
        return (job, out)
    }

    @Test func replayCopiesThenCommitsAfterEveryAcknowledgement() throws {
        let (job, start) = Self.running(Self.plan(), ends: [Self.d0: Watermarks(low: 0, high: 3)], committed: [PartitionOffset(Self.d0, 1)])
        #expect(start.contains(.assign([Self.d0])))
        let sent = job.handle(.polled([.records([Self.record(Self.d0, 0), Self.record(Self.d0, 1), Self.record(Self.d0, 2)])]))
        guard case .produce(let ticket, let records) = sent.first else { Issue.record("no produce: \(sent)"); return }
        // The record below the committed offset is not copied again.
        #expect(records.map { String(decoding: $0.value!, as: UTF8.self) } == ["v1", "v2"])
        #expect(records.allSatisfy { $0.topic == "t" && $0.headers.contains { $0.key == "lightmesh.dlq.reason" } })
        #expect(records[0].headers.last == KafkaHeader(DeadLetterEntry.replayedFromHeader, Array("t.dlq/0/1".utf8)))
        let commit = job.handle(.delivered(ticket: ticket, [Self.ok, Self.ok]))
        guard case .commit(let c, let offsets) = commit.first else { Issue.record("no commit: \(commit)"); return }
        #expect(offsets == [PartitionOffset(Self.d0, 3)])
        let end = job.handle(.commitDone(ticket: c, .success(())))
        guard case .finish(let report) = end.first else { Issue.record("not finished: \(end)"); return }
        #expect(report.copied == 2 && report.complete)
        #expect(DeadLetterRoutes.answer(report).status == 200)
    }

    @Test func aFailedCopyCommitsOnlyWhatCameBeforeIt() {
        let (job, _) = Self.running(Self.plan(), ends: [Self.d0: Watermarks(low: 0, high: 3)])
        let sent = job.handle(.polled([.records((0..<3).map { Self.record(Self.d0, $0) })]))
        guard case .produce(let ticket, _) = sent.first else { Issue.record("no produce"); return }
        let commit = job.handle(.delivered(ticket: ticket, [Self.ok, Self.broken, Self.ok]))
        guard case .commit(let c, let offsets) = commit.first else { Issue.record("no commit: \(commit)"); return }
        #expect(offsets == [PartitionOffset(Self.d0, 1)])
        let end = job.handle(.commitDone(ticket: c, .success(())))
        guard case .finish(let report) = end.first else { Issue.record("not finished"); return }
        #expect(report.copied == 1 && !report.complete && report.failure != nil)
        #expect(DeadLetterRoutes.answer(report).status == 500)
    }

    @Test func aFirstCopyFailingCommitsNothing() {
        let (job, _) = Self.running(Self.plan(), ends: [Self.d0: Watermarks(low: 0, high: 1)])
        guard case .produce(let ticket, _) = job.handle(.polled([.records([Self.record(Self.d0, 0)])])).first else { Issue.record("no produce"); return }
        let end = job.handle(.delivered(ticket: ticket, [Self.broken]))
        #expect(end.count == 1)
        guard case .finish(let report) = end.first else { Issue.record("committed: \(end)"); return }
        #expect(report.copied == 0 && report.partitions[0].to == 0)
    }

    @Test func theDeadlineLetsTheBatchInFlightCommit() {
        let (job, _) = Self.running(Self.plan(), ends: [Self.d0: Watermarks(low: 0, high: 10)])
        guard case .produce(let ticket, _) = job.handle(.polled([.records([Self.record(Self.d0, 0)])])).first else { Issue.record("no produce"); return }
        #expect(job.handle(.deadlineFired).isEmpty)
        guard case .commit(let c, _) = job.handle(.delivered(ticket: ticket, [Self.ok])).first else { Issue.record("no commit"); return }
        guard case .finish(let report) = job.handle(.commitDone(ticket: c, .success(()))).first else { Issue.record("not finished"); return }
        #expect(report.copied == 1 && report.deadlinePassed && !report.complete)
    }

    @Test func stopsAtMaxAndUntilOffsetAndSkipsOtherTopics() {
        let (job, start) = Self.running(Self.plan(limit: 2, until: 4), ends: [Self.d0: Watermarks(low: 0, high: 10), Self.d1: Watermarks(low: 5, high: 5)])
        // Partition 1 is empty: only partition 0 is assigned.
        #expect(start.contains(.assign([Self.d0])))
        #expect(start.contains(.poll(maxRecords: 2)))
        let sent = job.handle(.polled([.records([Self.record(Self.d0, 0, original: "other"), Self.record(Self.d0, 1), Self.record(Self.d0, 2)])]))
        guard case .produce(let ticket, let records) = sent.first else { Issue.record("no produce: \(sent)"); return }
        #expect(records.count == 1)
        guard case .commit(let c, let offsets) = job.handle(.delivered(ticket: ticket, [Self.ok])).first else { Issue.record("no commit"); return }
        #expect(offsets == [PartitionOffset(Self.d0, 2)])
        guard case .finish(let report) = job.handle(.commitDone(ticket: c, .success(()))).first else { Issue.record("not finished"); return }
        #expect(report.copied == 1 && report.skipped == 1 && report.complete)
        #expect(report.partitions.first { $0.partition == 0 }?.stop == 4)
    }

    @Test func inspectionReadsWithoutCommitting() {
        let (job, _) = Self.running(Self.plan(.inspect, limit: 2), ends: [Self.d0: Watermarks(low: 0, high: 5)], committed: [PartitionOffset(Self.d0, 2)])
        let end = job.handle(.polled([.records((1..<5).map { Self.record(Self.d0, $0) })]))
        #expect(!end.contains { if case .commit = $0 { true } else { false } })
        guard case .finish(let report) = end.first else { Issue.record("not finished: \(end)"); return }
        #expect(report.entries.map(\.record.offset) == [2, 3])
        let body = String(decoding: DeadLetterRoutes.answer(report).body, as: UTF8.self)
        #expect(body.contains(#""pending":3"#) && body.contains(#""reason":"bad""#) && body.contains(#""original_topic":"t""#))
    }

    @Test func aMissingDeadLetterTopicIs404() {
        let job = DeadLetterJob(plan: Self.plan())
        _ = job.handle(.started)
        guard case .finish(let report) = job.handle(.described(.success([:]))).first else { Issue.record("not finished"); return }
        #expect(DeadLetterRoutes.answer(report).status == 404)
    }

    @Test func routes() {
        let s = DeadLetterSettings()
        func decide(_ m: String, _ target: String, _ body: String = "") -> DeadLetterDecision {
            let (path, query) = QueryString.split(target: target)
            return DeadLetterRoutes.decide(method: m, path: String(path), query: query, body: Array(body.utf8), settings: s)
        }
        guard case .run(let p) = decide("POST", "/deadletters/orders/replay", #"{"max":5,"until_offset":9,"group":"g1"}"#) else { Issue.record("not run"); return }
        #expect(p.kind == .replay && p.deadLetterTopic == "orders.dlq" && p.limit == 5 && p.untilOffset == 9 && p.group == "g1")
        guard case .run(let q) = decide("GET", "/deadletters/orders/?limit=3") else { Issue.record("not run"); return }
        #expect(q.kind == .inspect && q.limit == 3 && q.group == "lightmesh-replay.orders")
        #expect(decide("GET", "/topics/x") == .notDeadLetter)
        for (m, t, b, status) in [("POST", "/deadletters/orders/replay", #"{"max":0}"#, 422), ("POST", "/deadletters/orders/replay", #"{"x":1}"#, 422),
                                  ("POST", "/deadletters/orders/replay", "{", 400), ("GET", "/deadletters/orders/replay", "", 405),
                                  ("DELETE", "/deadletters/orders", "", 405), ("GET", "/deadletters/a%20b", "", 404), ("GET", "/deadletters/__x", "", 403),
                                  ("GET", "/deadletters/orders?limit=0", "", 422), ("GET", "/deadletters/orders?=", "", 200),
                                  ("POST", "/deadletters/orders/replay", #"{"max":1,"max":2}"#, 422)] {
            switch decide(m, t, b) {
            case .refuse(let e): #expect(e.status == status, "\(m) \(t) \(b)")
            case .run: #expect(status == 200, "\(m) \(t) \(b)")
            case .notDeadLetter: Issue.record("\(t) not routed")
            }
        }
    }
}
