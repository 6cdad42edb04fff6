import KafkaSidecar
import MeshCore
@testable import MeshScenarios
import MeshSimulator
import SimKafka
import Testing

/// Each Kafka sidecar invariant fires on a hand-made history that breaks it, and stays quiet on one
/// that keeps it: a partition of three records (the app answered SUCCESS for 0 and 2, DEADLETTER for
/// 1, whose copy is in the dead-letter topic) committed to its end.
@Suite struct KafkaSidecarCheckerTests {
    private let tp = TopicPartition("t", 0)

    /// A record value whose fate (recomputed from the value alone) is `fate`.
    private func value(_ fate: SidecarAppFate, _ n: Int = 0) -> String {
        var i = 0, found = 0
        while true {
            let v = "\"v\(i)\""
            if SidecarAppFate(value: v) == fate {
                if found == n { return v }
                found += 1
            }
            i += 1
        }
    }

    private func record(_ offset: Int64, _ value: String, headers: [KafkaHeader] = []) -> SimLogEntry {
        SimLogEntry(offset: offset, key: Array("k".utf8), value: Array(value.utf8), headers: headers)
    }

    private func copy(of entry: SimLogEntry, at offset: Int64, attempts: Int = 1, leaving: String? = nil) -> SimLogEntry {
        let headers = [("original.topic", "t"), ("original.partition", "0"), ("original.offset", String(entry.offset)),
                       ("attempts", String(attempts)), ("reason", "app said DEADLETTER"), ("first.failure.ms", "12")]
            .filter { $0.0 != leaving }
            .map { KafkaHeader("lightmesh.dlq." + $0.0, Array($0.1.utf8)) }
        return SimLogEntry(offset: offset, key: entry.key, value: entry.value, headers: headers)
    }

    private func state() -> KafkaSidecarChecks.EndState {
        let log = [record(0, value(.success)), record(1, value(.deadLetter)), record(2, value(.success, 1))]
        return KafkaSidecarChecks.EndState(
            topic: "t", logs: [tp: log], highWatermarks: [tp: 3], committed: [tp: 3], deadLetters: [copy(of: log[1], at: 0)],
            finishedByApp: [tp: [0, 2]], verdicts: [value(.success): [.success], value(.deadLetter): [.deadLetter], value(.success, 1): [.success]],
            maxAttempts: 5)
    }

    @Test func quietOnARunThatKeptEveryPromise() {
        #expect(KafkaSidecarChecks.endViolation(state()) == nil)
    }

    @Test func commitMonotonicFiresOnACommitGoingBack() {
        let v = KafkaSidecarChecks.commitViolation(tp, previous: 3, committed: 2, checkedBelow: 3) { _ in true }
        #expect(v?.invariant == "kafka-sidecar.commit-monotonic")
        #expect(KafkaSidecarChecks.commitViolation(tp, previous: 3, committed: 3, checkedBelow: 3) { _ in true } == nil)
    }

    @Test func noCommitPastUnfinishedFiresOnAHoleBelowTheCommit() {
        let finished: Set<Int64> = [0, 2]
        #expect(KafkaSidecarChecks.commitViolation(tp, previous: nil, committed: 1, checkedBelow: 0) { finished.contains($0) } == nil)
        let v = KafkaSidecarChecks.commitViolation(tp, previous: 1, committed: 3, checkedBelow: 1) { finished.contains($0) }
        #expect(v?.invariant == "kafka-sidecar.no-commit-past-unfinished")
        #expect(v?.message.contains("record at 1") == true)
    }

    @Test func orderFiresOnAnEarlierOffsetArrivingFirstAfterALaterOne() {
        #expect(KafkaSidecarChecks.orderViolation(lane: "t-0", lastFirstDelivery: nil, offset: 4) == nil)
        #expect(KafkaSidecarChecks.orderViolation(lane: "t-0", lastFirstDelivery: 4, offset: 5) == nil)
        #expect(KafkaSidecarChecks.orderViolation(lane: "t-0", lastFirstDelivery: 5, offset: 4)?.invariant == "kafka-sidecar.order")
    }

    @Test func noCredentialsFiresOnARecordCarryingAnAuthorizationHeader() {
        var s = state()
        s.logs[tp]![0].headers = [KafkaHeader("Authorization", Array("Bearer x".utf8))]
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.no-credentials")
    }

    @Test func allFinishedFiresOnARecordNeitherAnsweredNorDeadLettered() {
        var s = state()
        s.finishedByApp[tp] = [0]
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.all-finished")
    }

    @Test func asDecidedFiresOnADeadLetterVerdictWithoutItsCopy() {
        var s = state()
        s.deadLetters = []
        s.finishedByApp[tp] = [0, 1, 2]  // the sidecar took DEADLETTER for DROP
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.as-decided")
    }

    @Test func asDecidedFiresOnACopyNobodyAskedFor() {
        var s = state()
        s.deadLetters.append(copy(of: s.logs[tp]![2], at: 1, attempts: 2))
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.as-decided")
        s.deadLetters[1] = copy(of: s.logs[tp]![2], at: 1, attempts: 5)
        #expect(KafkaSidecarChecks.endViolation(s) == nil, "every attempt failed: the sidecar's own call")
    }

    @Test func committedToEndFiresOnACommitShortOfTheLog() {
        var s = state()
        s.committed[tp] = 2
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.committed-to-end")
        s.committed[tp] = nil
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.committed-to-end")
    }

    @Test func deadLetterCopiesFiresOnAMissingHeaderOrAnotherRecordsValue() {
        var s = state()
        s.deadLetters = [copy(of: s.logs[tp]![1], at: 0, leaving: "reason")]
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.dead-letter-copies")
        var wrong = copy(of: s.logs[tp]![1], at: 0)
        wrong.value = Array("\"other\"".utf8)
        s.deadLetters = [wrong]
        #expect(KafkaSidecarChecks.endViolation(s)?.invariant == "kafka-sidecar.dead-letter-copies")
    }

    @Test func pushWellformedFiresOnAnUnreadableBodyOrRecord() throws {
        let good = #"{"records":[{"id":"a","topic":"t","partition":0,"offset":7,"attempt":1,"key":"k","value":"v"}]}"#
        let read = try KafkaSidecarApp.readPush(Array(good.utf8)).get()
        #expect(read == [.init(id: "a", topicPartition: tp, offset: 7, attempt: 1, key: "k", value: "\"v\"")])
        let truncated = #"{"records":[{"id":"a""#
        #expect((try? KafkaSidecarApp.readPush(Array(truncated.utf8)).get()) == nil)
        let noOffset = #"{"records":[{"id":"a","topic":"t","partition":0,"attempt":1,"value":"v"}]}"#
        #expect((try? KafkaSidecarApp.readPush(Array(noOffset.utf8)).get()) == nil)
    }
}
