import HTTPSidecarEngines
import MeshCore
import MeshSimulator
import NIOCore
import NIOHTTP1

/// A simulated pod's HTTP/1.1 client to one peer (the Kafka sidecar's pushes and readiness probes to
/// its app), as NIO's ``HTTPFetcher`` is in production: keep-alive connections, one exchange at a
/// time on each, every one run by the production ``UpstreamLink`` (framing, deadlines, reuse), the
/// request head built by the production ``FetchURL/requestHead(method:target:fields:bodyLength:)``.
/// It hands back whole answers. The pod routes its stream events and timers here first.
final class SimFetcher {
    typealias Answer = Result<(status: Int, body: [UInt8]), TransportError>

    private struct Connection {
        var link: UpstreamLink
        var pending: [UInt8] = []
        var done: ((Answer) -> Void)?
        var status = 0
        var body: [UInt8] = []
        var timerAt: MeshInstant?
    }

    let url: FetchURL
    private let port: Int
    private let connectTimeout: Duration
    private let timeout: Duration
    private let maxIdle: Int
    private var connections: [StreamID: Connection] = [:]
    private var idle: [StreamID] = []
    private var timers: [UInt64: (StreamID, MeshInstant)] = [:]

    /// - Parameters:
    ///   - timeout: the link's response timeout (the head, then every pause in the answer).
    init(url: FetchURL, port: Int, connectTimeout: Duration = .seconds(2), timeout: Duration, maxIdle: Int) {
        self.url = url
        self.port = port
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.maxIdle = maxIdle
    }

    /// Forgets every connection (the pod crashed: its streams are gone with it).
    func reset() {
        connections = [:]
        idle = []
        timers = [:]
    }

    /// Sends one request to `peer`; `done` gets the whole answer or why there is none.
    func send(_ method: HTTPMethod, _ target: String, fields: [(String, String)], body: [UInt8], to peer: HostID, on host: SimHost,
              done: @escaping (Answer) -> Void) {
        let head = EncodedRequestHead(url.requestHead(method: method, target: target, fields: fields, bodyLength: body.count))
        let stream: StreamID
        if let s = idle.popLast() {
            stream = s
        } else {
            stream = host.connect(to: peer, port: port)
            connections[stream] = Connection(link: UpstreamLink(tls: false, connectTimeout: connectTimeout, now: host.now))
        }
        var c = connections[stream]!
        var bytes: [UInt8] = []
        c.link.start(head, timeout: timeout, now: host.now) { bytes += $0.readableBytesView }
        if !body.isEmpty { c.link.send(.body(ByteBuffer(bytes: body)), now: host.now) { bytes += $0.readableBytesView } }
        c.link.send(.end, now: host.now) { bytes += $0.readableBytesView }
        c.pending += bytes
        c.done = done
        c.status = 0
        c.body = []
        connections[stream] = c
        flush(stream, host)
        arm(stream, host)
    }

    /// Handles `event` if it is on one of this fetcher's streams.
    func receive(_ event: NetEvent, on host: SimHost) -> Bool {
        switch event {
        case .connected(let s):
            guard connections[s] != nil else { return false }
            connections[s]!.link.connected(now: host.now)
            flush(s, host)
            arm(s, host)
        case .connectFailed(let s, let kind):
            guard connections[s] != nil else { return false }
            ended(s, connections[s]!.link.failed(TransportError(kind)), host)
        case .reset(let s):
            guard connections[s] != nil else { return false }
            ended(s, connections[s]!.link.failed(TransportError(.reset)), host)
        case .closed(let s):
            guard connections[s] != nil else { return false }
            ended(s, connections[s]!.link.peerClosed(), host)
        case .data(let s, let bytes):
            guard connections[s] != nil else { return false }
            connections[s]!.link.received(ByteBuffer(bytes: bytes))
            while connections[s] != nil, let event = connections[s]!.link.next(now: host.now) {
                switch event {
                case .head(let head): connections[s]!.status = head.status
                case .body(let chunk): connections[s]!.body += chunk.readableBytesView
                case .end, .failed: ended(s, event, host)
                }
            }
            arm(s, host)
        default:
            return false
        }
        return true
    }

    /// Handles `token` if it is one of this fetcher's timers.
    func timerFired(_ token: TimerToken, on host: SimHost) -> Bool {
        guard let (s, at) = timers.removeValue(forKey: token.rawValue) else { return false }
        guard connections[s]?.timerAt == at else { return true }
        connections[s]!.timerAt = nil
        if let event = connections[s]!.link.deadlinePassed(now: host.now) { ended(s, event, host) } else { arm(s, host) }
        return true
    }

    /// The exchange on `s` ended (or its idle connection closed): the connection goes back to the
    /// idle list or is closed, as the link says, and the caller hears the answer.
    private func ended(_ s: StreamID, _ event: UpstreamLinkEvent?, _ host: SimHost) {
        guard let c = connections[s] else { return }
        let answer: Answer?
        switch event {
        case .end(let reuse)?:
            answer = .success((c.status, c.body))
            if reuse && idle.count < maxIdle {
                connections[s]!.done = nil
                idle.append(s)
            } else {
                drop(s, host)
            }
        case .failed(let error, _)?:
            answer = .failure(error)
            drop(s, abortive: true, host)
        default:
            answer = nil
            drop(s, host)
        }
        if let answer, let done = c.done { done(answer) }
    }

    /// Closes a connection and forgets it; `abortive` (a failed exchange): reset, as ``UpstreamConnection`` does.
    private func drop(_ s: StreamID, abortive: Bool = false, _ host: SimHost) {
        guard connections.removeValue(forKey: s) != nil else { return }
        idle.removeAll { $0 == s }
        if abortive { host.abort(s) } else { host.close(s) }
    }

    private func flush(_ s: StreamID, _ host: SimHost) {
        guard var c = connections[s], c.link.open, !c.pending.isEmpty else { return }
        host.write(s, c.pending)
        c.pending = []
        connections[s] = c
    }

    /// A timer for `s`'s link deadline unless one is set for that instant or earlier (see
    /// ``HTTPEgressClient`` for the same lazy re-arming).
    private func arm(_ s: StreamID, _ host: SimHost) {
        guard var c = connections[s], let deadline = c.link.deadline else { return }
        if let at = c.timerAt, at <= deadline { return }
        c.timerAt = deadline
        connections[s] = c
        timers[host.setTimer(after: max(.zero, deadline - host.now)).rawValue] = (s, deadline)
    }
}
