import MeshCore
import Testing
@testable import KafkaSidecar

/// The audit trail's queue: batches, the partial-batch timer, refused entries kept in order, the limit.
@Suite struct AuditBufferTests {
    static func entry(_ n: Int) -> ProducerRecord { ProducerRecord(topic: "audit", key: Array("k\(n)".utf8), value: Array("\(n)".utf8)) }

    static var config: ReactiveConsumerConfig {
        var c = ReactiveConsumerConfig()
        c.auditTopic = "audit"
        c.auditBatchRecords = 3
        c.auditInterval = .milliseconds(100)
        return c
    }

    @Test func fullBatchesGoAtOnceAPartialOneWaitsItsInterval() {
        var buffer = AuditBuffer()
        var stats = ReactiveConsumer.Stats()
        var ticket: UInt64 = 1
        var actions: [ReactiveConsumer.Action] = []
        for n in 0..<4 { buffer.add(Self.entry(n), limit: 100, &stats) }
        buffer.writeIfDue(MeshInstant(nanoseconds: 1_000_000_000), Self.config, &ticket, &actions)
        guard case .writeAudit(let t, let records) = actions.first else { Issue.record("no write: \(actions)"); return }
        #expect(records.map(\.key) == (0..<3).map { Array("k\($0)".utf8) })
        // One write at a time: the fourth waits for the first to end, then for its interval.
        actions = []
        buffer.writeIfDue(MeshInstant(nanoseconds: 1_010_000_000), Self.config, &ticket, &actions)
        #expect(actions.isEmpty)
        buffer.written(t, [.failure(KafkaError(code: "x", message: "refused")), .success(RecordMetadata(topicPartition: TopicPartition("audit", 0), offset: 0, timestamp: 0)),
                           .failure(KafkaError(code: "x", message: "refused"))], &stats)
        #expect(stats.audited == 1 && stats.auditFailed == 2 && buffer.pending == 3)
        buffer.writeIfDue(MeshInstant(nanoseconds: 1_020_000_000), Self.config, &ticket, &actions)
        // The refused two come back first, in order, ahead of the fourth.
        guard case .writeAudit(_, let again) = actions.first else { Issue.record("no write: \(actions)"); return }
        #expect(again.map(\.key) == [Array("k0".utf8), Array("k2".utf8), Array("k3".utf8)])
    }

    @Test func aPartialBatchArmsTheFlushTimerOnce() {
        var buffer = AuditBuffer()
        var stats = ReactiveConsumer.Stats()
        var ticket: UInt64 = 1
        var actions: [ReactiveConsumer.Action] = []
        buffer.writeIfDue(.zero, Self.config, &ticket, &actions)
        buffer.add(Self.entry(0), limit: 100, &stats)
        buffer.writeIfDue(MeshInstant(nanoseconds: 0), Self.config, &ticket, &actions)
        // Nothing was written yet: the first partial batch goes when the interval from zero passed.
        #expect(actions == [.armTimer(.auditFlush, after: .milliseconds(100))])
        buffer.writeIfDue(MeshInstant(nanoseconds: 50_000_000), Self.config, &ticket, &actions)
        #expect(actions.count == 1)
    }

    @Test func pastTheLimitTheOldestAreDroppedAndCounted() {
        var buffer = AuditBuffer()
        var stats = ReactiveConsumer.Stats()
        for n in 0..<5 { buffer.add(Self.entry(n), limit: 3, &stats) }
        #expect(buffer.pending == 3 && stats.auditDropped == 2)
    }

    @Test func traceIDs() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(AuditBuffer.traceID([KafkaHeader("traceparent", Array(good.utf8))]) == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(AuditBuffer.traceID([KafkaHeader("traceparent", Array("00-00000000000000000000000000000000-00f067aa0ba902b7-01".utf8))]) == nil)
        #expect(AuditBuffer.traceID([KafkaHeader("traceparent", Array("garbage".utf8))]) == nil)
        #expect(AuditBuffer.traceID([]) == nil)
    }
}
