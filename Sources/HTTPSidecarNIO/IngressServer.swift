import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The ingress listener: accepts clients, runs the middleware chain and proxies to the app.
public final class IngressServer: Sendable {
    public let config: IngressConfig
    private let group: any EventLoopGroup
    private let shared: IngressShared
    private let channel: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)

    public init(config: IngressConfig, group: any EventLoopGroup, clock: any MeshClock = SystemClock(),
                logger: Logger = Logger(label: "light-mesh.ingress"), metrics: SidecarMetrics = .none) {
        self.config = config
        self.group = group
        self.shared = IngressShared(config: config, clock: clock, logger: logger, metrics: metrics)
    }

    /// Binds and starts accepting; returns the bound address (port 0 picks a free one).
    @discardableResult
    public func start() async throws -> MeshAddress {
        let app = try SocketAddress.makeAddressResolvingHost(config.app.host, port: config.app.port)
        let shared = self.shared
        let config = self.config
        let pools = PoolRegistry(settings: ConnectionPoolSettings(
            connectTimeout: config.connectTimeout, responseTimeout: config.upstreamTimeout, maxIdle: config.maxIdleAppConnections))
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(IngressHandler(shared: shared, pool: pools.pool(for: channel.eventLoop, target: app)))
                }
            }
            .bind(host: config.listen.host, port: config.listen.port).get()
        channel.withLockedValue { $0 = server }
        let port = server.localAddress?.port ?? config.listen.port
        return MeshAddress(host: config.listen.host, port: port)
    }

    /// Stops accepting new connections; open ones finish their current request.
    public func stop() async throws {
        try await channel.withLockedValue { $0 }?.close()
    }

    /// Requests the app has not answered yet.
    public var inFlight: Int { shared.inFlight.load(ordering: .relaxed) }

    /// Stops accepting, then waits until every in-flight request was answered or `deadline` passed.
    /// Returns how many were still in flight at the deadline (0 is a clean drain).
    public func drain(deadline: Duration) async throws -> Int {
        try await stop()
        let end = ContinuousClock.now + deadline
        while inFlight > 0 && ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(10)) }
        return inFlight
    }
}

/// One connection pool per (event loop, upstream), created on first use on that loop.
final class PoolRegistry: Sendable {
    private struct Key: Hashable {
        var loop: ObjectIdentifier
        var target: String
    }
    private let settings: ConnectionPoolSettings
    private let pools = NIOLockedValueBox<[Key: NIOLoopBound<AppConnectionPool>]>([:])

    init(settings: ConnectionPoolSettings) { self.settings = settings }

    func pool(for loop: any EventLoop, target: SocketAddress) -> AppConnectionPool {
        let key = Key(loop: ObjectIdentifier(loop), target: "\(target)")
        return pools.withLockedValue { p in
            if let existing = p[key] { return existing.value }
            let pool = AppConnectionPool(eventLoop: loop, target: target, config: settings)
            p[key] = NIOLoopBound(pool, eventLoop: loop)
            return pool
        }
    }
}
