import Foundation
import KafkaSidecar
import MeshCore
import SimKafka

/// The Kafka sidecar's promises as pure functions over a history: what the brokers held and the
/// group committed, and what the apps saw and decided. ``KafkaSidecarChecker`` gathers that history
/// from the simulated cluster and ``SidecarAppLedger``; the unit tests hand-make it.
enum KafkaSidecarChecks {
    /// An invariant's name and what broke it.
    typealias Violation = (invariant: String, message: String)

    /// The end of a run: what the brokers hold and what the apps decided.
    struct EndState {
        /// The topic the sidecar consumes; its dead-letter topic is `topic + ".dlq"`.
        var topic: String
        /// The readable records of each of the topic's partitions, in offset order.
        var logs: [TopicPartition: [SimLogEntry]]
        /// Where each partition's log ends.
        var highWatermarks: [TopicPartition: Int64]
        /// The group's committed offsets.
        var committed: [TopicPartition: Int64]
        /// The dead-letter topic's records.
        var deadLetters: [SimLogEntry]
        /// Offsets an app answered SUCCESS or DROP for.
        var finishedByApp: [TopicPartition: Set<Int64>]
        /// Every verdict an app sent, by record value.
        var verdicts: [String: Set<AppVerdict>]
        /// Pushes per record before the sidecar dead-letters it on its own.
        var maxAttempts: Int
    }

    /// The text of a dead-letter copy's `lightmesh.dlq.NAME` header.
    static func deadLetterHeader(_ entry: SimLogEntry, _ name: String) -> String? {
        entry.headers.last { $0.key == "lightmesh.dlq." + name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    /// The (partition, offset) of `topic` each dead-letter copy names.
    static func deadLettered(_ copies: some Sequence<SimLogEntry>, topic: String) -> [TopicPartition: Set<Int64>] {
        var named: [TopicPartition: Set<Int64>] = [:]
        for entry in copies {
            if let p = deadLetterHeader(entry, "original.partition").flatMap(Int32.init),
               let o = deadLetterHeader(entry, "original.offset").flatMap(Int64.init) {
                named[TopicPartition(topic, p), default: []].insert(o)
            }
        }
        return named
    }

    /// One sample of a partition's committed offset: it never goes back (`kafka-sidecar.commit-monotonic`),
    /// and every record below it, from `checkedBelow` on, is finished (`kafka-sidecar.no-commit-past-unfinished`).
    static func commitViolation(
        _ tp: TopicPartition, previous: Int64?, committed: Int64, checkedBelow: Int64, finished: (Int64) -> Bool
    ) -> Violation? {
        if let previous, committed < previous {
            return ("kafka-sidecar.commit-monotonic", "\(tp): the committed offset went back from \(previous) to \(committed)")
        }
        var offset = checkedBelow
        while offset < committed {
            if !finished(offset) {
                return ("kafka-sidecar.no-commit-past-unfinished",
                        "\(tp): committed \(committed), but the record at \(offset) was never answered SUCCESS/DROP by an app nor dead-lettered")
            }
            offset += 1
        }
        return nil
    }

    /// A record reaching the app for the first time in its lane (partition, or partition and key)
    /// after a later offset of that lane did (`kafka-sidecar.order`).
    static func orderViolation(lane: String, lastFirstDelivery: Int64?, offset: Int64) -> Violation? {
        guard let last = lastFirstDelivery, last > offset else { return nil }
        return ("kafka-sidecar.order", "\(lane): offset \(offset) reached the app for the first time after offset \(last)")
    }

    /// The end of a run, after the heal: no record carries a credential header, every record is
    /// finished, every DEADLETTER verdict has its copy, the group committed to the end of each log,
    /// and every dead-letter copy is whole and deserved.
    static func endViolation(_ s: EndState) -> Violation? {
        let deadLettered = deadLettered(s.deadLetters, topic: s.topic)
        for tp in s.logs.keys.sorted(by: { $0.partition < $1.partition }) {
            let dead = deadLettered[tp] ?? []
            for entry in s.logs[tp] ?? [] {
                let value = String(decoding: entry.value ?? [], as: UTF8.self)
                if entry.headers.contains(where: { ["authorization", "cookie"].contains($0.key.lowercased()) }) {
                    return ("kafka-sidecar.no-credentials", "\(tp)@\(entry.offset) carries a credential header")
                }
                guard s.finishedByApp[tp]?.contains(entry.offset) == true || dead.contains(entry.offset) else {
                    return ("kafka-sidecar.all-finished", "\(tp)@\(entry.offset) (\(value)) was never finished after the heal")
                }
                if SidecarAppFate(value: value) == .deadLetter && !dead.contains(entry.offset) {
                    return ("kafka-sidecar.as-decided", "the app dead-lettered \(tp)@\(entry.offset) (\(value)), but it is not in \(s.topic).dlq")
                }
            }
            let end = s.highWatermarks[tp] ?? 0
            if end > 0 && s.committed[tp] != end {
                return ("kafka-sidecar.committed-to-end",
                        "\(tp): the log ends at \(end), the group committed \(s.committed[tp].map(String.init) ?? "nothing")")
            }
        }
        return deadLetterCopyViolation(s)
    }

    /// Each copy names a record that exists, carries its key and value, says why and how often, and
    /// is there only because the app said so or every attempt failed.
    static func deadLetterCopyViolation(_ s: EndState) -> Violation? {
        for entry in s.deadLetters {
            let header = { deadLetterHeader(entry, $0) }
            guard header("original.topic") == s.topic, let p = header("original.partition").flatMap(Int32.init),
                  let o = header("original.offset").flatMap(Int64.init), let attempts = header("attempts").flatMap(Int.init),
                  let reason = header("reason"), !reason.isEmpty, header("first.failure.ms").flatMap(Int64.init) != nil else {
                return ("kafka-sidecar.dead-letter-copies", "copy at \(entry.offset) lacks its lightmesh.dlq headers: \(entry.headers.map(\.key))")
            }
            let tp = TopicPartition(s.topic, p)
            guard let original = s.logs[tp]?.first(where: { $0.offset == o }), original.value == entry.value, original.key == entry.key else {
                return ("kafka-sidecar.dead-letter-copies", "copy at \(entry.offset) names \(tp)@\(o), which does not hold its key and value")
            }
            let value = String(decoding: entry.value ?? [], as: UTF8.self)
            guard s.verdicts[value]?.contains(.deadLetter) == true || attempts >= s.maxAttempts else {
                return ("kafka-sidecar.as-decided", "\(tp)@\(o) (\(value)) was dead-lettered after \(attempts) attempts, but no app asked for it (\(reason))")
            }
        }
        return nil
    }

    /// Every audit entry tells the truth about a record of the topic (`kafka-sidecar.audit-truthful`):
    /// keyed by its id, naming it, with the status the app decided (SUCCESS or DROP answered by an
    /// app, DEADLETTER with its copy in the dead-letter topic), at least one push unless dead-lettered
    /// without one, and a trace id when the record carries a `traceparent`.
    static func auditViolation(_ entries: [SimLogEntry], _ s: EndState) -> Violation? {
        let deadLettered = deadLettered(s.deadLetters, topic: s.topic)
        for entry in entries {
            guard let object = try? JSONSerialization.jsonObject(with: Data(entry.value ?? [])) as? [String: Any],
                  object["topic"] as? String == s.topic, let p = object["partition"] as? Int, let o = (object["offset"] as? NSNumber)?.int64Value,
                  let status = object["status"] as? String, let attempts = object["attempts"] as? Int, (object["latency_ms"] as? Int).map({ $0 >= 0 }) == true
            else {
                return ("kafka-sidecar.audit-truthful", "audit entry \(entry.offset) is not a whole entry: \(String(decoding: entry.value ?? [], as: UTF8.self))")
            }
            let tp = TopicPartition(s.topic, Int32(p))
            guard entry.key == Array(PushBatch.recordID(tp, o).utf8), let record = s.logs[tp]?.first(where: { $0.offset == o }) else {
                return ("kafka-sidecar.audit-truthful", "audit entry \(entry.offset) names \(tp)@\(o), which is not a record of the topic (or its key does not name it)")
            }
            let value = String(decoding: record.value ?? [], as: UTF8.self)
            let verdicts = s.verdicts[value] ?? []
            let truthful: Bool
            switch status {
            case "SUCCESS": truthful = verdicts.contains(.success) && attempts >= 1
            case "DROP": truthful = verdicts.contains(.drop) && attempts >= 1
            case "DEADLETTER": truthful = deadLettered[tp]?.contains(o) == true
            default: truthful = false
            }
            guard truthful else {
                return ("kafka-sidecar.audit-truthful", "audit says \(tp)@\(o) (\(value)) ended \(status) after \(attempts) pushes; the apps answered \(verdicts.map(\.rawValue).sorted())")
            }
            let traced = record.headers.contains { $0.key == "traceparent" }
            if traced && !(object["trace_id"] is String) {
                return ("kafka-sidecar.audit-truthful", "audit entry of \(tp)@\(o) has no trace id, but the record carries a traceparent")
            }
        }
        return nil
    }
}
