import HTTPClientNIO
import HTTPSidecarEngines
import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// One generation of the ingress configuration and the state built from it. A reload builds a new
/// generation (carrying over what did not change: the app's connection pools, the rate limiter's
/// buckets) and swaps it in; requests already running finish on the generation they started with.
final class IngressShared: Sendable {
    let config: IngressConfig
    let clock: any MeshClock
    /// The configuration's policy state (limiters, default chain): what ``IngressAdmission`` decides by.
    let policy: IngressPolicy
    let logger: Logger
    let metrics: SidecarMetrics
    let app: SocketAddress
    let appPools: PoolRegistry
    let tlsContext: NIOSSLContext?
    /// Requests handed to the app and not yet answered (graceful drain waits for zero); shared by all generations.
    let inFlight: InFlightCounter

    init(config: IngressConfig, services: IngressServices, clock: any MeshClock, logger: Logger, metrics: SidecarMetrics, previous: IngressShared?) throws {
        self.config = config
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
        self.inFlight = previous?.inFlight ?? InFlightCounter()
        let old = previous?.config
        policy = try IngressPolicy(config: config, services: services, previous: previous?.policy)
        let settings = ConnectionPoolSettings(connectTimeout: config.connectTimeout, responseTimeout: config.upstreamTimeout,
                                              maxIdle: config.maxIdleAppConnections)
        if let previous, old?.app == config.app, previous.appPools.settings == settings {
            app = previous.app
            appPools = previous.appPools
        } else {
            do {
                app = try SocketAddress.makeAddressResolvingHost(config.app.host, port: config.app.port)
            } catch {
                throw ConfigError(key: "ingress.app", "cannot resolve \(config.app): \(error)")
            }
            appPools = try PoolRegistry(settings: settings)
        }
        tlsContext = try config.tls?.makeContext()
    }
}

/// Requests in flight across configuration generations.
final class InFlightCounter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    func decrement() -> Int { value.subtract(1, ordering: .relaxed).newValue }
    var current: Int { value.load(ordering: .relaxed) }
}

/// The ingress listener: accepts clients (plain HTTP, and TLS when a certificate is configured),
/// runs the middleware chain and proxies to the app.
public final class IngressServer: Sendable {
    private let group: any EventLoopGroup
    private let generation: Generation<IngressShared>
    private let channels = NIOLockedValueBox<[any Channel]>([])
    /// Client connections open now, across both listeners (bounded by `maxConnections` each).
    private let openConnections = InFlightCounter()
    private let boundAddresses = NIOLockedValueBox<(plain: MeshAddress?, tls: MeshAddress?)>((nil, nil))

    /// - Parameter services: the live objects beside the configuration (JWT verifier, access log).
    public init(config: IngressConfig, services: IngressServices = IngressServices(), group: any EventLoopGroup, clock: any MeshClock = SystemClock(),
                logger: Logger = Logger(label: "light-mesh.ingress"), metrics: SidecarMetrics = .none) throws {
        self.group = group
        self.generation = Generation(try IngressShared(config: config, services: services, clock: clock, logger: logger, metrics: metrics, previous: nil))
    }

    /// The configuration in effect.
    public var config: IngressConfig { generation.current.config }

    /// Binds the listeners and starts accepting; returns the plain listener's bound address (port 0
    /// picks a free one), or the TLS listener's when TLS is required (no plain listener then). The
    /// TLS listener's is in ``tlsAddress``.
    @discardableResult
    public func start() async throws -> MeshAddress {
        let config = self.config
        var plain: MeshAddress?
        if !(config.tls?.required ?? false) {
            plain = try await bind(config.listen, tls: false)
        }
        var secure: MeshAddress?
        if let tls = config.tls { secure = try await bind(tls.listen, tls: true) }
        boundAddresses.withLockedValue { $0 = (plain, secure) }
        return plain ?? secure!
    }

    /// The TLS listener's bound address, when it runs.
    public var tlsAddress: MeshAddress? { boundAddresses.withLockedValue { $0.tls } }

    /// The plain listener's bound address (nil when TLS is required).
    public var plainAddress: MeshAddress? { boundAddresses.withLockedValue { $0.plain } }

    /// Client connections open now.
    public var openConnectionCount: Int { openConnections.current }

    private func bind(_ address: MeshAddress, tls: Bool) async throws -> MeshAddress {
        let generation = self.generation
        let open = self.openConnections
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                // Over the limit the connection is closed at once: memory per client is bounded,
                // so the count of clients must be too.
                if open.increment() > generation.current.config.maxConnections {
                    _ = open.decrement()
                    return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                channel.closeFuture.whenComplete { _ in _ = open.decrement() }
                return channel.eventLoop.makeCompletedFuture {
                    if tls {
                        // The current generation's certificate: a reload rotates it for new connections.
                        guard let context = generation.current.tlsContext else { throw ChannelError.ioOnClosedChannel }
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    }
                    // One handler frames and decides: requests are read by the sidecar's own scanner
                    // (fail-closed rules, differentially tested against llhttp) inside it, answers
                    // written by it (its ``IngressConnection`` engine). No outbound validation: every header written was
                    // read by the scanner on the way in (no CR, LF or NUL), or is the sidecar's own
                    // (configured header rules are checked when loaded).
                    try channel.pipeline.syncOperations.addHandler(IngressHandler(generation: generation, scheme: tls ? "https" : "http"))
                }
            }
            .bind(host: address.host, port: address.port).get()
        channels.withLockedValue { $0.append(server) }
        return MeshAddress(host: address.host, port: server.localAddress?.port ?? address.port)
    }

    /// Applies a new configuration without dropping connections: requests that start afterwards use
    /// it. Fails (keeping the old configuration) when it cannot be built. Listener addresses and
    /// turning the TLS listener on or off need a restart; those differences come back as warnings.
    @discardableResult
    public func reload(_ config: IngressConfig, services: IngressServices? = nil) throws -> [String] {
        let prepared = try prepareReload(config, services: services)
        prepared.commit()
        return prepared.warnings
    }

    /// Builds the generation for `config` without applying it; see ``PreparedReload``. Without
    /// `services`, the running ones stay.
    public func prepareReload(_ config: IngressConfig, services: IngressServices? = nil) throws -> PreparedReload {
        let old = generation.current
        var warnings: [String] = []
        var next = config
        if next.listen != old.config.listen {
            warnings.append("ingress.listen changed: takes effect after a restart")
            next.listen = old.config.listen
        }
        if next.tls?.listen != old.config.tls?.listen {
            warnings.append("ingress.tls listener added, removed or moved: takes effect after a restart")
            // A new certificate still applies to the running listener; the listener itself stays as it is.
            if let running = old.config.tls?.listen, next.tls != nil { next.tls?.listen = running } else { next.tls = old.config.tls }
        }
        if (next.tls?.required ?? false) != (old.config.tls?.required ?? false) {
            warnings.append("ingress.tls.required changed: takes effect after a restart")
        }
        let built = try IngressShared(config: next, services: services ?? old.policy.services, clock: old.clock, logger: old.logger, metrics: old.metrics, previous: old)
        let generation = self.generation
        return PreparedReload(warnings: warnings) { generation.replace(built) }
    }

    /// Stops accepting new connections; open ones finish their current request.
    public func stop() async throws {
        for channel in channels.withLockedValue({ $0 }) { try? await channel.close() }
    }

    /// Requests the app has not answered yet.
    public var inFlight: Int { generation.current.inFlight.current }

    /// Stops accepting, then waits until every in-flight request was answered or `deadline` passed.
    /// Returns how many were still in flight at the deadline (0 is a clean drain).
    public func drain(deadline: Duration) async throws -> Int {
        try await stop()
        let end = ContinuousClock.now + deadline
        while inFlight > 0 && ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(10)) }
        return inFlight
    }
}
