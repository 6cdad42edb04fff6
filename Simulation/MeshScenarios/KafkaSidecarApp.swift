import Foundation
import KafkaSidecar
import MeshCore
import MeshSimulator

/// The datagram protocol between a simulated sidecar and its app (on ``port``): the push bodies and
/// answers are the real JSON of ``PushCodec``; the frame adds a kind byte and an id.
enum SidecarAppWire {
    static let port = 8080
    static let push: UInt8 = 0x50, answer: UInt8 = 0x41, probe: UInt8 = 0x52, ready: UInt8 = 0x59

    static func frame(_ kind: UInt8, _ id: UInt64, status: UInt16? = nil, _ body: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = [kind]
        out.reserveCapacity(11 + body.count)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: id >> UInt64(shift))) }
        if let status { out.append(UInt8(status >> 8)); out.append(UInt8(status & 0xFF)) }
        out += body
        return out
    }

    static func parse(_ bytes: [UInt8], hasStatus: Bool) -> (kind: UInt8, id: UInt64, status: Int, body: ArraySlice<UInt8>)? {
        guard bytes.count >= 9 + (hasStatus ? 2 : 0) else { return nil }
        var id: UInt64 = 0
        for i in 1...8 { id = id << 8 | UInt64(bytes[i]) }
        let status = hasStatus ? Int(bytes[9]) << 8 | Int(bytes[10]) : 0
        return (bytes[0], id, status, bytes[(hasStatus ? 11 : 9)...])
    }
}

/// What the simulated apps saw and decided: the independent history the sidecar checker judges by.
/// Kernel-level, so it survives crashes of the apps and the sidecars.
final class SidecarAppLedger {
    /// Offsets whose record an app answered SUCCESS or DROP for, per partition.
    var finishedByApp: [TopicPartition: Set<Int64>] = [:]
    /// Every verdict an app sent, by record value.
    var verdicts: [String: Set<AppVerdict>] = [:]
    /// Values the apps received.
    var delivered: Set<String> = []
    /// Per partition (per key when ordering is by key), the offset of each first delivery in arrival order.
    var lastFirstDelivery: [String: Int64] = [:]
    var deliveredOffsets: [TopicPartition: Set<Int64>] = [:]
}

/// The fate the simulated app gives a record, from its value alone, so a checker can recompute it:
/// mostly SUCCESS; some DEADLETTER, DROP, always RETRY (dead-lettered after the last attempt), or
/// RETRY for the first two attempts.
enum SidecarAppFate: Equatable {
    case success, deadLetter, drop, alwaysRetry, retryTwice

    init(value: String) {
        switch StableHash.fnv1a(value, seed: 7) % 20 {
        case 0: self = .deadLetter
        case 1: self = .drop
        case 2: self = .alwaysRetry
        case 3, 4: self = .retryTwice
        default: self = .success
        }
    }

    func verdict(attempt: Int) -> AppVerdict {
        switch self {
        case .success: .success
        case .deadLetter: .deadLetter
        case .drop: .drop
        case .alwaysRetry: .retry
        case .retryTwice: attempt <= 2 ? .retry : .success
        }
    }
}

/// The app behind a simulated sidecar: answers pushes with each record's fate after a service time,
/// and readiness probes while it is up. Buggify makes it slow, answer 500, answer garbage, or
/// leave statuses out.
final class KafkaSidecarApp: SimProcess {
    static let slow = FaultSite("kafka.app.slow")
    static let error = FaultSite("kafka.app.error")
    static let garbage = FaultSite("kafka.app.garbage")
    static let partial = FaultSite("kafka.app.partial")
    static let unready = FaultSite("kafka.app.unready")

    private let ledger: SidecarAppLedger
    private let faults: any FaultInjector
    private let ordering: RecordOrdering
    private var pending: [UInt64: (to: HostID, frame: [UInt8])] = [:]
    private var unreadyUntil = MeshInstant.zero

    init(ledger: SidecarAppLedger, faults: any FaultInjector, ordering: RecordOrdering) {
        self.ledger = ledger
        self.faults = faults
        self.ordering = ordering
    }

    func start(on host: SimHost) { host.listen(port: SidecarAppWire.port) }

    func receive(_ event: NetEvent, on host: SimHost) {
        guard case .datagram(let from, _, let payload) = event, let first = payload.first else { return }
        if first == SidecarAppWire.probe, let f = SidecarAppWire.parse(payload, hasStatus: false) {
            if faults.fires(Self.unready) { unreadyUntil = host.now + .milliseconds(300) }
            let ready: UInt16 = host.now >= unreadyUntil ? 1 : 0
            host.send(to: from, port: SidecarAppWire.port, SidecarAppWire.frame(SidecarAppWire.ready, f.id, status: ready))
            return
        }
        guard first == SidecarAppWire.push, let f = SidecarAppWire.parse(payload, hasStatus: false) else { return }
        let answer = handle(Array(f.body), host)
        var service = 500_000.0 + host.random.nextExponential(mean: 2_000_000)
        if faults.fires(Self.slow) { service *= 100 }
        let token = host.setTimer(after: .nanoseconds(Int64(service)))
        pending[token.rawValue] = (from, SidecarAppWire.frame(SidecarAppWire.answer, f.id, status: answer.status, answer.body))
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let reply = pending.removeValue(forKey: token.rawValue) else { return }
        host.send(to: reply.to, port: SidecarAppWire.port, reply.frame)
    }

    /// A record as a push carried it.
    struct PushedRecord: Equatable {
        var id: String
        var topicPartition: TopicPartition
        var offset: Int64
        var attempt: Int
        var key: String?
        var value: String
    }

    /// Reads a push body as an app would, or says why it cannot (`kafka-sidecar.push-wellformed`).
    static func readPush(_ body: [UInt8]) -> Result<[PushedRecord], PushUnreadable> {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let records = json["records"] as? [[String: Any]] else {
            return .failure(PushUnreadable(message: "the app got a push it cannot read: \(String(decoding: body.prefix(200), as: UTF8.self))"))
        }
        var read: [PushedRecord] = []
        for r in records {
            guard let id = r["id"] as? String, let topic = r["topic"] as? String, let partition = (r["partition"] as? NSNumber)?.int32Value,
                  let offset = (r["offset"] as? NSNumber)?.int64Value, let attempt = (r["attempt"] as? NSNumber)?.intValue,
                  let value = value(r) else {
                return .failure(PushUnreadable(message: "a pushed record is malformed: \(r)"))
            }
            read.append(PushedRecord(id: id, topicPartition: TopicPartition(topic, partition), offset: offset, attempt: attempt,
                                     key: r["key"] as? String, value: value))
        }
        return .success(read)
    }

    /// Why a push body is not what the push format promises.
    struct PushUnreadable: Error { var message: String }

    /// Reads the push, records what arrived, decides, and records the decision (it is made now,
    /// whether or not the answer reaches the sidecar).
    private func handle(_ body: [UInt8], _ host: SimHost) -> (status: UInt16, body: [UInt8]) {
        let records: [PushedRecord]
        switch Self.readPush(body) {
        case .success(let read): records = read
        case .failure(let unreadable):
            host.simulation.violation("kafka-sidecar.push-wellformed", unreadable.message)
            return (400, [])
        }
        if faults.fires(Self.error) { return (500, Array("oops".utf8)) }
        var answers: [(id: String, verdict: AppVerdict, reason: String?)] = []
        for r in records {
            let tp = r.topicPartition
            ledger.delivered.insert(r.value)
            if ledger.deliveredOffsets[tp, default: []].insert(r.offset).inserted {
                let lane = ordering == .key ? "\(tp)/\(r.key ?? "")" : "\(tp)"
                if ordering != .none,
                   let (invariant, message) = KafkaSidecarChecks.orderViolation(lane: lane, lastFirstDelivery: ledger.lastFirstDelivery[lane], offset: r.offset) {
                    host.simulation.violation(invariant, message)
                }
                ledger.lastFirstDelivery[lane] = max(ledger.lastFirstDelivery[lane] ?? -1, r.offset)
            }
            let verdict = SidecarAppFate(value: r.value).verdict(attempt: r.attempt)
            answers.append((r.id, verdict, verdict == .success ? nil : "fate of \(r.value)"))
        }
        if faults.fires(Self.garbage) { return (200, Array("{\"statuses\":[{\"id\":".utf8)) }
        if faults.fires(Self.partial) { answers = Array(answers.prefix(answers.count / 2)) }
        for a in answers {
            guard let r = records.first(where: { $0.id == a.id }) else { continue }
            ledger.verdicts[r.value, default: []].insert(a.verdict)
            if a.verdict == .success || a.verdict == .drop { ledger.finishedByApp[r.topicPartition, default: []].insert(r.offset) }
        }
        return (200, PushCodec.encodeAnswer(answers))
    }

    /// The record's value as the producer wrote it: a JSON string embedded as JSON, or base64 text.
    static func value(_ r: [String: Any]) -> String? {
        if r["encoding"] as? String == "base64" {
            guard let text = r["value"] as? String, let data = Data(base64Encoded: text) else { return nil }
            return String(decoding: data, as: UTF8.self)
        }
        guard let text = r["value"] as? String else { return nil }
        return "\"\(text)\""
    }
}
