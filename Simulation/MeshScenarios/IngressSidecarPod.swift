import HTTPSidecar
import HTTPSidecarNIO
import MeshCore
import MeshSimulator
import NIOCore
import NIOHTTP1

/// The simulated ingress sidecar: the production decisions and codecs over simulated connections
/// carrying real HTTP/1.1 bytes. Each client connection's bytes go through a ``ClientCodec`` (the
/// framing scanner reads requests; the answer writer frames what goes back, as the NIO handler's
/// ``ClientWire`` does); ``IngressAdmission`` decides at the request and builds the request the app
/// gets, written and answered through an ``UpstreamCodec`` (as ``UpstreamConnection`` does);
/// ``ProxyHeaders/relayedHead(scanned:rules:setting:requestVersion:keepAlive:)`` shapes the answer,
/// relayed part by part as the app's bytes arrive; ``ResponseWriter``, ``ProtocolErrors`` and
/// ``IngressAdmission/appFailure(timedOut:_:headers:)`` word the sidecar's own answers.
/// What this driver owns, unlike the NIO handler: it reads a whole request before deciding (the NIO
/// handler decides at the head and streams the body), one request at a time per client connection
/// (later pipelined bytes wait), a connection to the app per request, one app timeout per exchange,
/// and moving bytes.
final class IngressSidecarPod: SimProcess {
    static let port = 9080

    private let ingress: IngressConfig
    private let app: HostID
    private let addressOf: (HostID) -> String
    private var policy: IngressPolicy?
    private var random = SeededRandom(seed: 0)
    private let allocator = ByteBufferAllocator()

    private struct Exchange {
        var admitted: IngressAdmission.Admitted
        var version: HTTPVersion
        var appStream: StreamID?
        /// The request's bytes for the app, written once connected.
        var request: [UInt8]
        var upstream: UpstreamCodec
        var timer: TimerToken?
        /// The answer's head went to the client: a failure now breaks the answer off (a close).
        var relaying = false
        var closeAfterAnswer = false
    }
    private struct Connection {
        var client: String
        var codec = ClientCodec()
        /// The request being read: its head, and its body so far.
        var reading: (head: ScannedRequestHead, body: ByteBuffer)?
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
                connections[s]!.codec.received(ByteBuffer(bytes: bytes))
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
                // The close ends a body delimited by it; any other unfinished answer failed.
                if case .end? = connections[c]?.exchange?.upstream.endOfStream() { return relay(.end, client: c, host) }
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
            let part: ClientRequestPart?
            do {
                part = try conn.codec.nextPart()
            } catch {
                connections[s] = conn
                host.simulation.coverage.hit("ingress.framing-refused")
                let e = ProtocolErrors.response(for: error)!
                return answer(s, e, headers: [], close: true, method: .GET, host)
            }
            switch part {
            case nil:
                connections[s] = conn
                return
            case .head(let head)?:
                conn.reading = (head, ByteBuffer())
                connections[s] = conn
                continue
            case .body(var chunk)?:
                conn.reading?.body.writeBuffer(&chunk)
                connections[s] = conn
                continue
            case .end?:
                break
            }
            guard let (head, body) = conn.reading else { continue }
            conn.reading = nil
            connections[s] = conn
            let decision = IngressAdmission.decide(head, client: conn.client, scheme: "http", policy: policy, now: host.now, random: &random)
            switch decision {
            case .refuse(let e, let close):
                host.simulation.coverage.hit(e.code == "rate_limited" ? "ingress.rate-limited" : "ingress.refused")
                answer(s, e, headers: e.headers, close: close, method: head.method.nio, host)
            case .answer(let status, let headers, let close):
                host.simulation.coverage.hit("ingress.preflight")
                write(s, ResponseWriter.parts(status: status, headers: headers, body: nil, close: close, method: head.method.nio), close: close, host)
            case .admit(let admitted):
                host.simulation.coverage.hit("ingress.admitted")
                if IngressSpellings.isLimited(admitted.path) { checkRate(conn.client, host) }
                var upstream = UpstreamCodec()
                var request: [UInt8] = []
                let parts: [UpstreamRequestPart] = [.head(admitted.upstreamHead.bytes, admitted.upstreamHead.kind), .body(body), .end]
                for part in parts {
                    upstream.encode(part, allocator: allocator) { request += $0.readableBytesView }
                }
                let a = host.connect(to: app, port: IngressApp.port)
                clientOf[a] = s
                let t = host.setTimer(after: ingress.upstreamTimeout)
                timeouts[t.rawValue] = s
                connections[s]!.exchange = Exchange(admitted: admitted, version: head.version, appStream: a,
                                                    request: request, upstream: upstream, timer: t)
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

    /// Bytes of the app's answer: each part relayed to the client as it is read.
    private func appBytes(_ bytes: [UInt8], client c: StreamID, app a: StreamID, _ host: SimHost) {
        guard connections[c]?.exchange != nil else { return }
        connections[c]!.exchange!.upstream.received(ByteBuffer(bytes: bytes))
        while var ex = connections[c]?.exchange {
            let part: UpstreamResponsePart?
            do {
                part = try ex.upstream.nextPart()
            } catch {
                connections[c]!.exchange = ex
                return appFailed(client: c, timedOut: false, "the app's answer is malformed: \(error)", host)
            }
            connections[c]!.exchange = ex
            guard let part else { return }
            relay(part, client: c, host)
        }
    }

    /// One part of the app's answer, on its way to the client.
    private func relay(_ part: UpstreamResponsePart, client c: StreamID, _ host: SimHost) {
        guard var ex = connections[c]?.exchange else { return }
        switch part {
        case .head(let scanned):
            let (head, closeAfter) = ProxyHeaders.relayedHead(scanned: scanned, rules: ex.admitted.responseRules, setting: ex.admitted.responseHeaders,
                                                              requestVersion: ex.version, keepAlive: ex.admitted.keepAlive)
            ex.relaying = true
            ex.closeAfterAnswer = closeAfter
            connections[c]!.exchange = ex
            write(c, [.relayed(head)], close: false, host)
        case .body(let chunk):
            write(c, [.body(.byteBuffer(chunk))], close: false, host)
        case .end:
            endExchange(c, host)
            write(c, [.end], close: ex.closeAfterAnswer, host)
            pump(c, host)
        }
    }

    private func appFailed(client c: StreamID, timedOut: Bool, _ why: String, _ host: SimHost) {
        guard let ex = connections[c]?.exchange else { return }
        host.simulation.coverage.hit(timedOut ? "ingress.app-timeout" : "ingress.app-unavailable")
        endExchange(c, host)
        if ex.relaying {
            // The answer broke off midway: the client must see it broken.
            connections[c]?.closing = true
            return host.close(c)
        }
        let e = IngressAdmission.appFailure(timedOut: timedOut, why, headers: ex.admitted.responseHeaders)
        answer(c, e, headers: e.headers, close: !ex.admitted.keepAlive, method: .GET, host)
        pump(c, host)
    }

    private func endExchange(_ c: StreamID, _ host: SimHost) {
        guard let ex = connections[c]?.exchange else { return }
        if let t = ex.timer { host.cancelTimer(t); timeouts[t.rawValue] = nil }
        if let a = ex.appStream { clientOf[a] = nil; host.close(a) }
        connections[c]!.exchange = nil
    }

    /// The sidecar's own answer: an error's status, fields and JSON body.
    private func answer(_ s: StreamID, _ e: ErrorResponse, headers: [(String, String)], close: Bool, method: HTTPMethod, _ host: SimHost) {
        write(s, ResponseWriter.parts(status: e.status, headers: headers + [("content-type", "application/json")],
                                      body: e.body(allocator: allocator), close: close, method: method), close: close, host)
    }

    /// Writes answer parts to a client, framed by its codec; closes after them when `close`.
    private func write(_ s: StreamID, _ parts: [ClientResponsePart], close: Bool, _ host: SimHost) {
        guard connections[s] != nil else { return }
        var bytes: [UInt8] = []
        for part in parts {
            connections[s]!.codec.encode(part, allocator: allocator) { data in
                if case .byteBuffer(let buffer) = data { bytes += buffer.readableBytesView }
            }
        }
        if !bytes.isEmpty { host.write(s, bytes) }
        if close {
            connections[s]?.closing = true
            host.close(s)
        }
    }
}
