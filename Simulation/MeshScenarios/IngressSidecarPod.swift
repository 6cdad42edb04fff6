import HTTPSidecar
import HTTPSidecarEngines
import MeshCore
import MeshSimulator
import NIOCore

/// The simulated ingress sidecar: the production ``IngressConnection`` engine, one per client
/// connection, over simulated streams carrying real HTTP/1.1 bytes (``IngressSimConnection`` drives
/// it, as ``IngressHandler`` does for NIO). The engine frames, decides, relays and answers; this pod
/// only routes the network's events and timers to the right connection, keeps the keep-alive pool of
/// app connections, and records what it sent on for the checks.
final class IngressSidecarPod: SimProcess {
    static let port = 9080

    enum TimerKind {
        case wakeUp, verdict
        /// The app link's deadline, for the instant the timer was set for.
        case appDeadline(MeshInstant)
    }

    private let ingress: IngressConfig

    private let services: IngressServices
    private let app: HostID
    private let addressOf: (HostID) -> String
    private(set) var policy: IngressPolicy!
    private var random = SeededRandom(seed: 0)
    let allocator = ByteBufferAllocator()
    private weak var host: SimHost?

    private var clients: [StreamID: IngressSimConnection] = [:]
    /// App connection → the client connection whose request it carries (or nil while idle).
    private var appConnections: [StreamID: (SimAppConnection, IngressSimConnection?)] = [:]
    /// Keep-alive app connections between requests, most recently used last.
    private var idleApp: [SimAppConnection] = []
    private var timers: [UInt64: (IngressSimConnection, TimerKind)] = [:]
    /// When this pod sent each client's `/limited` requests on to the app (this incarnation's limiter
    /// only): the output the rate-limit bound is checked on, not the limiter's own state.
    private var limitedSent: [String: [MeshInstant]] = [:]

    init(ingress: IngressConfig, services: IngressServices, app: HostID, addressOf: @escaping (HostID) -> String) {
        self.ingress = ingress
        self.services = services
        self.app = app
        self.addressOf = addressOf
    }

    func start(on host: SimHost) {
        self.host = host
        host.listen(port: Self.port)
        random = SeededRandom(seed: host.random.next())
        policy = try? IngressPolicy(config: ingress, services: services, hashSeed: random.next())
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .accepted(let s, let from, _):
            clients[s] = IngressSimConnection(pod: self, host: host, stream: s, client: addressOf(from), seed: random.next())
        case .data(let s, let bytes):
            if let connection = clients[s] {
                connection.clientData(bytes)
            } else if let (a, owner) = appConnections[s] {
                owner?.appData(bytes, on: a)
            }
        case .connected(let s):
            if let (a, owner) = appConnections[s] {
                if let owner { owner.appConnectedEvent(a) } else { closeApp(a) }
            }
        case .connectFailed(let s, _):
            if let (a, owner) = appConnections.removeValue(forKey: s) { owner?.appConnectFailed(a) }
        case .closed(let s), .reset(let s):
            if let (a, owner) = appConnections[s] {
                if let owner { owner.appClosed(a) }
                closeApp(a)
            } else if let connection = clients.removeValue(forKey: s) {
                host.close(s)
                connection.clientGone()
            }
        default:
            break
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let (connection, kind) = timers.removeValue(forKey: token.rawValue), !connection.closed else { return }
        connection.timerFired(kind)
    }

    // MARK: What the connections ask of the pod

    func setTimer(after delay: Duration, _ kind: TimerKind, for connection: IngressSimConnection) {
        guard let host else { return }
        timers[host.setTimer(after: max(delay, .zero)).rawValue] = (connection, kind)
    }

    /// A client connection the engine closed.
    func clientClosed(_ connection: IngressSimConnection) {
        clients[connection.stream] = nil
        host?.close(connection.stream)
    }

    /// A keep-alive app connection from the pool, now owned by `owner`; nil when none is idle.
    func takeIdleApp(for owner: IngressSimConnection) -> SimAppConnection? {
        guard let connection = idleApp.popLast() else { return nil }
        appConnections[connection.stream] = (connection, owner)
        return connection
    }

    func connectApp(for owner: IngressSimConnection) -> SimAppConnection? {
        guard let host else { return nil }
        let link = UpstreamLink(tls: false, connectTimeout: ingress.connectTimeout, now: host.now)
        let connection = SimAppConnection(stream: host.connect(to: app, port: IngressApp.port), link: link)
        appConnections[connection.stream] = (connection, owner)
        return connection
    }

    /// An app connection whose answer ended cleanly goes back to the pool.
    func release(_ connection: SimAppConnection) {
        appConnections[connection.stream] = (connection, nil)
        idleApp.append(connection)
    }

    /// Closes an app connection; `abortive`: its exchange failed or was given up, so it is reset (as
    /// ``UpstreamConnection`` does) and request bytes the network still holds never reach the app.
    func closeApp(_ connection: SimAppConnection, abortive: Bool = false) {
        guard appConnections.removeValue(forKey: connection.stream) != nil else { return }
        idleApp.removeAll { $0 === connection }
        if abortive { host?.abort(connection.stream) } else { host?.close(connection.stream) }
    }

    /// The engine's decisions, as coverage; each `/limited` request sent on is checked against the bound.
    func observe(_ event: IngressConnectionEvent, from connection: IngressSimConnection) {
        guard let host else { return }
        switch event {
        case .refused(let code):
            host.simulation.coverage.hit(code == "rate_limited" ? "ingress.rate-limited" : "ingress.refused")
        case .preflight:
            host.simulation.coverage.hit("ingress.preflight")
        case .admitted(let path):
            host.simulation.coverage.hit("ingress.admitted")
            if IngressSpellings.isLimited(path) { checkRate(connection.client, host) }
        case .framingRefused:
            host.simulation.coverage.hit("ingress.framing-refused")
        case .appFailed(let timedOut):
            host.simulation.coverage.hit(timedOut ? "ingress.app-timeout" : "ingress.app-unavailable")
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
}
