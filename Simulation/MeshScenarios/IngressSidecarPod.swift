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
/// Like the NIO handler it decides at the head and streams the body to the app as it arrives (a
/// refused request's body is read and dropped), answers one request at a time per client connection
/// (later pipelined bytes wait), and closes after an answer that came before the request's end.
/// What this driver owns, unlike the NIO handler: a connection to the app per request, one app
/// timeout per exchange, no JWT step, and moving bytes.
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
        /// The request's bytes for the app not written yet (the connect is under way).
        var unsent: [UInt8]
        var connected = false
        /// The client's request was read to its end (the connection's next bytes wait for the answer).
        var requestEnded = false
        var upstream: UpstreamCodec
        var timer: TimerToken?
        /// The answer's head went to the client: a failure now breaks the answer off (a close).
        var relaying = false
        var closeAfterAnswer = false
    }
    private struct Connection {
        var client: String
        var codec = ClientCodec()
        /// A refused request's body is read and dropped until its end.
        var draining = false
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
            if let c = clientOf[s], let ex = connections[c]?.exchange {
                if !ex.unsent.isEmpty { host.write(s, ex.unsent) }
                connections[c]!.exchange!.unsent = []
                connections[c]!.exchange!.connected = true
            }
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

    /// Reads what a client connection has received while no answer is awaited: a head is decided at
    /// once, body parts go on to the app as they come.
    private func pump(_ s: StreamID, _ host: SimHost) {
        while var conn = connections[s], !conn.closing, conn.exchange?.requestEnded != true, let policy {
            let part: ClientRequestPart?
            do {
                part = try conn.codec.nextPart()
            } catch {
                connections[s] = conn
                return framingRefused(s, error, host)
            }
            connections[s] = conn
            switch part {
            case nil:
                return
            case .head(let head)?:
                guard conn.exchange == nil, !conn.draining else { continue }
                decide(s, head, client: conn.client, policy: policy, host)
            case .body(let chunk)?:
                if conn.exchange != nil { sendToApp(s, .body(chunk), host) }
            case .end?:
                if conn.draining {
                    connections[s]!.draining = false
                } else if conn.exchange != nil {
                    connections[s]!.exchange!.requestEnded = true
                    sendToApp(s, .end, host)
                }
            }
        }
    }

    /// ``IngressAdmission`` decides at the head: refused (answered now; the body, if any, is read and
    /// dropped), answered by the sidecar (a preflight), or sent on to the app.
    private func decide(_ s: StreamID, _ head: ScannedRequestHead, client: String, policy: IngressPolicy, _ host: SimHost) {
        switch IngressAdmission.decide(head, client: client, scheme: "http", policy: policy, now: host.now, random: &random) {
        case .refuse(let e, let close):
            host.simulation.coverage.hit(e.code == "rate_limited" ? "ingress.rate-limited" : "ingress.refused")
            connections[s]!.draining = !close
            answer(s, e, headers: e.headers, close: close, method: head.method.nio, host)
        case .answer(let status, let headers, let close):
            host.simulation.coverage.hit("ingress.preflight")
            connections[s]!.draining = !close
            write(s, ResponseWriter.parts(status: status, headers: headers, body: nil, close: close, method: head.method.nio), close: close, host)
        case .admit(let admitted):
            host.simulation.coverage.hit("ingress.admitted")
            if IngressSpellings.isLimited(admitted.path) { checkRate(client, host) }
            let a = host.connect(to: app, port: IngressApp.port)
            clientOf[a] = s
            let t = host.setTimer(after: ingress.upstreamTimeout)
            timeouts[t.rawValue] = s
            connections[s]!.exchange = Exchange(admitted: admitted, version: head.version, appStream: a, unsent: [],
                                                upstream: UpstreamCodec(), timer: t)
            sendToApp(s, .head(admitted.upstreamHead.bytes, admitted.upstreamHead.kind), host)
        }
    }

    /// A part of the request on its way to the app, framed by the upstream codec; held until the
    /// app connection is up.
    private func sendToApp(_ s: StreamID, _ part: UpstreamRequestPart, _ host: SimHost) {
        guard var ex = connections[s]?.exchange, let a = ex.appStream else { return }
        var bytes: [UInt8] = []
        ex.upstream.encode(part, allocator: allocator) { bytes += $0.readableBytesView }
        if ex.connected {
            if !bytes.isEmpty { host.write(a, bytes) }
        } else {
            ex.unsent += bytes
        }
        connections[s]!.exchange = ex
    }

    /// The framing scanner refused what the client sent: 400 (or its status) and a close, unless an
    /// answer is under way or was given (then just the close); the app's connection is given up.
    private func framingRefused(_ s: StreamID, _ error: any Error, _ host: SimHost) {
        host.simulation.coverage.hit("ingress.framing-refused")
        let started = connections[s]?.exchange?.relaying ?? connections[s]?.draining ?? false
        endExchange(s, host)
        guard !started, let e = ProtocolErrors.response(for: error) else {
            connections[s]?.closing = true
            return host.close(s)
        }
        answer(s, e, headers: [], close: true, method: .GET, host)
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
            // An answer before the request's end: the rest of it is not read; the connection closes.
            write(c, [.end], close: ex.closeAfterAnswer || !ex.requestEnded, host)
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
        answer(c, e, headers: e.headers, close: !ex.admitted.keepAlive || !ex.requestEnded, method: .GET, host)
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
