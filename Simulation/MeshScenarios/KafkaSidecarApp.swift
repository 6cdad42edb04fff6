import Foundation
import HTTPSidecarEngines
import KafkaSidecar
import MeshCore
import MeshSimulator

/// Where the simulated app listens for the sidecar's pushes and readiness probes: plain HTTP/1.1,
/// the bytes production sends (``PushRequest``, ``FetchURL/requestHead(method:target:fields:bodyLength:)``).
enum SidecarAppHTTP {
    static let port = 8080
    /// The subscription's app URL and ready path, as a user would configure them.
    static let url = FetchURL("http://app:8080/records")!
    static let readyPath = "/ready"
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
    /// Pushes (by their `traceparent`) the sidecar gave up on before an answer: a network that held
    /// one may still deliver it later, after newer records of its lane. The order promise is about
    /// pushes the sidecar still waits for; a stale one is delivered (and counted) but not judged for
    /// order. Written by the pod when its engine abandons a push.
    var abandonedPushes: Set<String> = []
    /// Whether the dead-letter topic holds a copy of a record now (set by the checker, which reads
    /// the brokers' logs). A record dead-lettered for good lets its lane move on; when a crash
    /// rewinds the partition before the commit, it comes back to the app after later records of its
    /// lane did. That is a redelivery of a settled record, not a reordering, so it is not judged.
    var hasDeadLetterCopy: (TopicPartition, Int64) -> Bool = { _, _ in false }
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

/// The app behind a simulated sidecar, an HTTP/1.1 server: reads each request with the product's
/// framing scanner, answers `POST /records` (a push) with each record's fate after a service time,
/// and `GET /ready` with 200 while it is ready (503 when not). Buggify makes it slow, answer 500,
/// answer garbage, leave statuses out, or turn unready for a while.
final class KafkaSidecarApp: SimProcess {
    static let slow = FaultSite("kafka.app.slow")
    static let error = FaultSite("kafka.app.error")
    static let garbage = FaultSite("kafka.app.garbage")
    static let partial = FaultSite("kafka.app.partial")
    static let unready = FaultSite("kafka.app.unready")

    private let ledger: SidecarAppLedger
    private let faults: any FaultInjector
    private let ordering: RecordOrdering
    /// Per open connection: its requests, read with the product's scanner.
    private var open: [StreamID: SimHTTP1.RequestReader] = [:]
    private var pending: [UInt64: (stream: StreamID, answer: [UInt8])] = [:]
    private var unreadyUntil = MeshInstant.zero

    init(ledger: SidecarAppLedger, faults: any FaultInjector, ordering: RecordOrdering) {
        self.ledger = ledger
        self.faults = faults
        self.ordering = ordering
    }

    func start(on host: SimHost) { host.listen(port: SidecarAppHTTP.port) }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .accepted(let s, _, _):
            open[s] = SimHTTP1.RequestReader()
        case .closed(let s), .reset(let s):
            open[s] = nil
            host.close(s)
        case .data(let s, let bytes):
            let (requests, invalid) = SimHTTP1.serve(bytes, on: s, &open)
            for reader in requests { request(reader, on: s, host) }
            if let v = invalid {
                host.simulation.violation("kafka-sidecar.push-wellformed", "the app could not read the sidecar's request: \(v)", host: host.id)
                host.close(s)
            }
        default:
            break
        }
    }

    private func request(_ reader: SimHTTP1.RequestReader, on s: StreamID, _ host: SimHost) {
        let json = [("content-type", "application/json")]
        if reader.target == SidecarAppHTTP.readyPath {
            if faults.fires(Self.unready) { unreadyUntil = host.now + .milliseconds(300) }
            return host.write(s, SimHTTP1.response(status: host.now >= unreadyUntil ? 200 : 503, fields: []))
        }
        guard "\(reader.head.method.name)" == "POST", reader.target == SidecarAppHTTP.url.target,
              reader.field("content-type") == "application/json", reader.field("traceparent") != nil else {
            host.simulation.violation("kafka-sidecar.push-wellformed",
                                      "the app got \(reader.head.method.name) \(reader.target) without the push's fields: \(String(decoding: reader.headBytes, as: UTF8.self).debugDescription)",
                                      host: host.id)
            return host.write(s, SimHTTP1.response(status: 400, fields: []))
        }
        let stale = reader.field("traceparent").map { ledger.abandonedPushes.contains($0) } ?? false
        if stale { host.simulation.coverage.hit("kafka-sidecar.stale-push-delivered") }
        let answer = handle(reader.body, judgeOrder: !stale, host)
        var service = 500_000.0 + host.random.nextExponential(mean: 2_000_000)
        if faults.fires(Self.slow) { service *= 100 }
        let token = host.setTimer(after: .nanoseconds(Int64(service)))
        pending[token.rawValue] = (s, SimHTTP1.response(status: Int(answer.status), fields: json, body: String(decoding: answer.body, as: UTF8.self)))
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let reply = pending.removeValue(forKey: token.rawValue), open[reply.stream] != nil else { return }
        host.write(reply.stream, reply.answer)
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
    private func handle(_ body: [UInt8], judgeOrder: Bool, _ host: SimHost) -> (status: UInt16, body: [UInt8]) {
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
            if judgeOrder, ledger.deliveredOffsets[tp, default: []].insert(r.offset).inserted {
                let lane = ordering == .key ? "\(tp)/\(r.key ?? "")" : "\(tp)"
                if ordering != .none,
                   let (invariant, message) = KafkaSidecarChecks.orderViolation(lane: lane, lastFirstDelivery: ledger.lastFirstDelivery[lane], offset: r.offset) {
                    if ledger.hasDeadLetterCopy(tp, r.offset) {
                        host.simulation.coverage.hit("kafka-sidecar.redelivered-after-dead-letter")
                    } else {
                        host.simulation.violation(invariant, message)
                    }
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
