import HTTPSidecar
import MeshCore
import MeshSimulator

/// The app behind a simulated ingress sidecar: reads each request with the product's scanner,
/// records what arrived in the ``IngressLedger`` (checked on the spot against what clients sent),
/// and answers 200 naming the request after a service time, in a body framed by its length or
/// chunked, with hop-by-hop fields the sidecar must not relay (``IngressChecks/appAnswerFields``).
/// Half the answers leave in two writes a moment apart, cut at a random byte (inside the head, a
/// chunk-size line or the body), so the sidecar relays answers that arrive in pieces. Buggify makes
/// it slow.
final class IngressApp: SimProcess {
    static let slow = FaultSite("ingress.app.slow")
    /// The app writes bytes after its answer (past its length, or after the last chunk): a crafted
    /// answer that a relay reusing the connection would hand to the next request.
    static let trailingBytes = FaultSite("ingress.app.trailing-bytes")
    static let port = 8080

    private let config: IngressWorkloadConfig
    private let ledger: IngressLedger
    private let faults: any FaultInjector
    private var open: [StreamID: SimHTTP1.RequestReader] = [:]
    /// Answers (or their second pieces) waiting for their timer: the stream, the bytes, and whether
    /// they may still be cut in two.
    private var pending: [UInt64: (StreamID, [UInt8], cut: Bool)] = [:]

    init(config: IngressWorkloadConfig, ledger: IngressLedger, faults: any FaultInjector) {
        self.config = config
        self.ledger = ledger
        self.faults = faults
    }

    func start(on host: SimHost) { host.listen(port: Self.port) }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .accepted(let s, _, _):
            open[s] = SimHTTP1.RequestReader()
        case .closed(let s), .reset(let s):
            open[s] = nil
            host.close(s)
        case .data(let s, let bytes):
            let (requests, invalid) = SimHTTP1.serve(bytes, on: s, &open)
            for reader in requests { arrived(reader, on: s, host) }
            if let v = invalid {
                host.simulation.violation("ingress.exact-request", "the app could not read what the sidecar sent: \(v)", host: host.id)
                host.close(s)
            }
        default:
            break
        }
    }

    private func arrived(_ reader: SimHTTP1.RequestReader, on s: StreamID, _ host: SimHost) {
        let id = reader.field("x-correlation-id")
        let method = "\(reader.head.method.name)"
        let body = String(decoding: reader.body, as: UTF8.self)
        let before = id.map { ledger.received[$0, default: 0] } ?? 0
        if let id { ledger.received[id, default: 0] += 1 }
        if let (invariant, message) = IngressChecks.arrival(id: id, method: method, target: reader.target, body: body,
                                                            sent: id.flatMap { ledger.sent[$0] }, timesBefore: before) {
            host.simulation.violation(invariant, message, host: host.id)
        }
        var service = Double(config.serviceMin.nanoseconds) + host.random.nextExponential(mean: Double(config.serviceTailMean.nanoseconds))
        if faults.fires(Self.slow) { service *= 100 }
        let t = host.setTimer(after: .nanoseconds(Int64(service)))
        let fields = [("x-correlation-id", id ?? "")] + IngressChecks.appAnswerFields
        let answerBody = IngressChecks.appAnswerBody(id)
        var answer = host.random.next() % 2 == 0 ? SimHTTP1.response(status: 200, fields: fields, body: answerBody)
            : SimHTTP1.chunkedResponse(status: 200, fields: fields, body: answerBody)
        guard faults.fires(Self.trailingBytes) else {
            pending[t.rawValue] = (s, answer, cut: true)
            return
        }
        // In the same write as the answer (so they arrive with it): the sidecar must close this
        // connection rather than read them as the next answer.
        answer += SimHTTP1.response(status: 200, fields: [("x-correlation-id", "smuggled")] + IngressChecks.appAnswerFields,
                                    body: IngressChecks.appAnswerBody("smuggled"))
        pending[t.rawValue] = (s, answer, cut: false)
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let (s, bytes, cut) = pending.removeValue(forKey: token.rawValue), open[s] != nil else { return }
        guard cut, bytes.count > 1, host.random.next() % 2 == 0 else { return host.write(s, bytes) }
        let at = 1 + Int(host.random.next() % UInt64(bytes.count - 1))
        host.write(s, Array(bytes[..<at]))
        let t = host.setTimer(after: .microseconds(200))
        pending[t.rawValue] = (s, Array(bytes[at...]), cut: false)
    }
}
