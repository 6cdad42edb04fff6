import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The egress listener: the app calls other services through it.
public final class EgressServer: Sendable {
    public let config: EgressConfig
    private let group: any EventLoopGroup
    private let shared: EgressShared
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)

    public init(config: EgressConfig, group: any EventLoopGroup, clock: any MeshClock = SystemClock(),
                logger: Logger = Logger(label: "light-mesh.egress"), metrics: SidecarMetrics = .none) throws {
        self.config = config
        self.group = group
        self.shared = try EgressShared(config: config, clock: clock, logger: logger, metrics: metrics)
    }

    @discardableResult
    public func start() async throws -> MeshAddress {
        let shared = self.shared
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(EgressHandler(shared: shared))
                }
            }
            .bind(host: config.listen.host, port: config.listen.port).get()
        channel.withLockedValue { $0 = server }
        return MeshAddress(host: config.listen.host, port: server.localAddress?.port ?? config.listen.port)
    }

    public func stop() async throws { try await channel.withLockedValue { $0 }?.close() }

    /// Each endpoint's state for `/endpoints`: service, address, available, breaker, in flight, EWMA ms.
    public func endpoints() -> [(service: String, address: MeshAddress, available: Bool, breaker: String, inFlight: Int, ewmaMilliseconds: Double)] {
        let now = shared.clock.now
        return shared.pools.keys.sorted().flatMap { name in
            shared.pools[name]!.withLockedValue { state in
                state.pool.endpoints.map { e in
                    (name, e.address, e.available(now: now), e.outlier.isEjected(now: now) ? "ejected" : e.breaker.state.name, e.inFlight, e.latency.nanoseconds / 1e6)
                }
            }
        }
    }
}
