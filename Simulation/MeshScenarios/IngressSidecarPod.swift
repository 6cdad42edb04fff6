import HTTPSidecar
import HTTPSidecarNIO
import MeshCore
import MeshSimulator
import NIOCore
import NIOHTTP1

/// The simulated ingress sidecar: the production decisions over simulated connections carrying real
/// HTTP/1.1 bytes. The framing scanner reads each client request (``SimHTTP1/RequestReader``);
/// ``IngressAdmission`` decides at its head and builds the request the app gets;
/// ``ProxyHeaders/relayedHead(scanned:rules:setting:requestVersion:keepAlive:)`` shapes the answer
/// relayed back and ``EncodedResponseHead/framing(answeringHead:)`` frames it; ``ProtocolErrors`` and ``IngressAdmission/appFailure(timedOut:_:headers:)`` word the refusals.
/// What this driver owns, like the NIO handler: one request at a time per client connection (later
/// pipelined bytes wait), a connection to the app per request, the app timeout, and writing bytes.
final class IngressSidecarPod: SimProcess {
    static let port = 9080

    private let ingress: IngressConfig
    private let app: HostID
    private let addressOf: (HostID) -> String
    private var policy: IngressPolicy?
    private var random = SeededRandom(seed: 0)

    private struct Exchange {
        var admitted: IngressAdmission.Admitted
        var version: HTTPVersion
        var appStream: StreamID?
        var request: [UInt8]
        var reader = SimHTTP1.ResponseReader()
        var timer: TimerToken?
    }
    private struct Connection {
        var client: String
        var reader = SimHTTP1.RequestReader()
        var exchange: Exchange?
        var closing = false
    }
    private var connections: [StreamID: Connection] = [:]
    /// App connection → the client connection whose request it carries.
    private var clientOf: [StreamID: StreamID] = [:]
    private var timeouts: [UInt64: StreamID] = [:]
    /// When this pod sent each client's `/limited` requests on to the app (this incarnation's limiter
    /// only): the output the rate-limit bound is checked on, not the limiter's own state.
    private var limitedSent: [String: [MeshInstant]] = [:]

    init(ingress: IngressConfig, app: HostID, addressOf: @escaping (HostID) -> String) {
        self.ingress = ingress
        self.app = app
        self.addressOf = addressOf
    }

    func start(on host: SimHost) {
        host.listen(port: Self.port)
        random = SeededRandom(seed: host.random.next())
        policy = try? IngressPolicy(config: ingress, hashSeed: random.next())
        limitedSent = [:]
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .accepted(let s, let from, _):
            connections[s] = Connection(client: addressOf(from))
        case .data(let s, let bytes):
            if connections[s] != nil {
                connections[s]!.reader.append(bytes)
                pump(s, host)
            } else if let c = clientOf[s] {
                appBytes(bytes, client: c, app: s, host)
            }
        case .connected(let s):
            if let c = clientOf[s], let ex = connections[c]?.exchange { host.write(s, ex.request) }
        case .connectFailed(let s, _):
            if let c = clientOf[s] { appFailed(client: c, timedOut: false, "connection refused or unreachable", host) }
        case .closed(let s), .reset(let s):
            if let c = clientOf[s] {
                appFailed(client: c, timedOut: false, "the app closed the connection before answering", host)
            } else if let conn = connections.removeValue(forKey: s) {
                // The client left: its exchange is given up.
                if let a = conn.exchange?.appStream { clientOf[a] = nil; host.close(a) }
                host.close(s)
            }
        default:
            break
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let c = timeouts.removeValue(forKey: token.rawValue) else { return }
        appFailed(client: c, timedOut: true, "no answer within \(ingress.upstreamTimeout)", host)
    }

    /// Takes the next whole request of a client connection, when none is being answered.
    private func pump(_ s: StreamID, _ host: SimHost) {
        while var conn = connections[s], conn.exchange == nil, !conn.closing, let policy {
            let step = conn.reader.next()
            connections[s] = conn
            switch step {
            case .needMore:
                return
            case .invalid(let violation):
                host.simulation.coverage.hit("ingress.framing-refused")
                let e = ProtocolErrors.response(for: violation)!
                return answer(s, status: e.status, headers: [("content-type", "application/json")], body: bodyBytes(e), close: true, host)
            case .request:
                let head = ScannedRequestHead(bytes: ByteBuffer(bytes: conn.reader.headBytes), scan: conn.reader.head)
                let decision = IngressAdmission.decide(head, client: conn.client, scheme: "http", policy: policy, now: host.now, random: &random)
                switch decision {
                case .refuse(let e, let close):
                    host.simulation.coverage.hit(e.code == "rate_limited" ? "ingress.rate-limited" : "ingress.refused")
                    answer(s, status: e.status, headers: e.headers + [("content-type", "application/json")], body: bodyBytes(e), close: close, host)
                case .answer(let status, let headers, let close):
                    host.simulation.coverage.hit("ingress.preflight")
                    answer(s, status: status, headers: headers, body: [], close: close, host)
                case .admit(let admitted):
                    host.simulation.coverage.hit("ingress.admitted")
                    if IngressSpellings.isLimited(admitted.path) { checkRate(conn.client, host) }
                    let request = Self.bytes(admitted.upstreamHead, body: conn.reader.body)
                    let a = host.connect(to: app, port: IngressApp.port)
                    clientOf[a] = s
                    let t = host.setTimer(after: ingress.upstreamTimeout)
                    timeouts[t.rawValue] = s
                    connections[s]!.exchange = Exchange(admitted: admitted, version: head.version,
                                                        appStream: a, request: request, timer: t)
                }
            }
        }
    }

    /// Over any span between two `/limited` requests of one client sent on, at most burst + rate × span
    /// (``RateLimitBound``).
    private func checkRate(_ client: String, _ host: SimHost) {
        let limit = IngressSpellings.limit
        var times = limitedSent[client, default: []]
        times.append(host.now)
        times.removeAll { host.now - $0 > .seconds(1) + .seconds(Double(limit.burst) / limit.rate) }
        limitedSent[client] = times
        if let excess = RateLimitBound.violation(times, rate: limit.rate, burst: limit.burst) {
            host.simulation.violation("ingress.rate-limit-bound", "the sidecar sent on \(excess) from \(client)", host: host.id)
        }
    }

    /// Bytes of the app's answer: read with the scanner, relayed once whole.
    private func appBytes(_ bytes: [UInt8], client c: StreamID, app a: StreamID, _ host: SimHost) {
        guard var ex = connections[c]?.exchange else { return }
        let step = ex.reader.read(bytes, method: .get)
        connections[c]!.exchange = ex
        switch step {
        case .needMore, .head(done: false):
            return
        case .invalid(let v):
            appFailed(client: c, timedOut: false, "the app's answer is malformed: \(v)", host)
        case .head(done: true), .done:
            let scanned = ScannedResponseHead(bytes: ByteBuffer(bytes: ex.reader.headBytes), scan: ex.reader.head)
            let (head, closeAfter) = ProxyHeaders.relayedHead(scanned: scanned, rules: ex.admitted.responseRules, setting: ex.admitted.responseHeaders,
                                                              requestVersion: ex.version, keepAlive: ex.admitted.keepAlive)
            endExchange(c, host)
            // Framed as the NIO writer frames it (the whole body here, as one chunk when chunked).
            var out = Array(head.bytes.readableBytesView)
            let body = ex.reader.bodyBytes
            switch head.framing(answeringHead: false) {
            case .none:
                out += Array("\r\n".utf8)
            case .plain:
                out += Array("\r\n".utf8) + body
            case .chunked(let addField):
                if addField { out += Array("transfer-encoding: chunked\r\n".utf8) }
                out += Array("\r\n".utf8)
                if !body.isEmpty { out += Array((String(body.count, radix: 16) + "\r\n").utf8) + body + Array("\r\n".utf8) }
                out += Array("0\r\n\r\n".utf8)
            }
            write(c, out, close: closeAfter, host)
            pump(c, host)
        }
    }

    private func appFailed(client c: StreamID, timedOut: Bool, _ why: String, _ host: SimHost) {
        guard let ex = connections[c]?.exchange else { return }
        host.simulation.coverage.hit(timedOut ? "ingress.app-timeout" : "ingress.app-unavailable")
        endExchange(c, host)
        let e = IngressAdmission.appFailure(timedOut: timedOut, why, headers: ex.admitted.responseHeaders)
        answer(c, status: e.status, headers: e.headers + [("content-type", "application/json")], body: bodyBytes(e), close: !ex.admitted.keepAlive, host)
        pump(c, host)
    }

    private func endExchange(_ c: StreamID, _ host: SimHost) {
        guard let ex = connections[c]?.exchange else { return }
        if let t = ex.timer { host.cancelTimer(t); timeouts[t.rawValue] = nil }
        if let a = ex.appStream { clientOf[a] = nil; host.close(a) }
        connections[c]!.exchange = nil
    }

    private func answer(_ s: StreamID, status: HTTPResponseStatus, headers: [(String, String)], body: [UInt8], close: Bool, _ host: SimHost) {
        var out = Self.statusLine(status) + Self.fieldLines(headers + [("content-length", String(body.count))])
        if close { out += Self.fieldLines([("connection", "close")]) }
        write(s, out + Array("\r\n".utf8) + body, close: close, host)
    }

    private func write(_ s: StreamID, _ bytes: [UInt8], close: Bool, _ host: SimHost) {
        host.write(s, bytes)
        if close {
            connections[s]?.closing = true
            host.close(s)
        }
    }

    private func bodyBytes(_ e: ErrorResponse) -> [UInt8] {
        var buffer = e.body(allocator: ByteBufferAllocator())
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    static func statusLine(_ status: HTTPResponseStatus) -> [UInt8] { Array("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n".utf8) }

    static func fieldLines(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in fields { out += Array("\(name): \(value)\r\n".utf8) }
        return out
    }

    /// The request the app gets: the head as the product encoded it, and the body with the framing
    /// the head declares (a chunked body as one chunk, as the NIO encoder frames each part it reads).
    static func bytes(_ head: EncodedRequestHead, body: [UInt8]) -> [UInt8] {
        var out = Array(head.bytes.readableBytesView)
        if head.chunked {
            if !body.isEmpty { out += Array((String(body.count, radix: 16) + "\r\n").utf8) + body + Array("\r\n".utf8) }
            out += Array("0\r\n\r\n".utf8)
        } else {
            out += body
        }
        return out
    }
}
