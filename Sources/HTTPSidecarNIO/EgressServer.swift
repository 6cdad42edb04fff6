import HTTPClientNIO
import HTTPSidecarEngines
import Foundation
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The egress listener: the app calls other services through it.
public final class EgressServer: Sendable {
    private let group: any EventLoopGroup
    private let generation: Generation<EgressShared>
    private let openConnections = InFlightCounter()
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)

    /// Builds every service (resolving static endpoints, TLS contexts, token sources); fails with a
    /// ``ConfigError`` naming the key that is wrong.
    public init(config: EgressConfig, group: any EventLoopGroup, clock: any MeshClock = SystemClock(),
                logger: Logger = Logger(label: "light-mesh.egress"), metrics: SidecarMetrics = .none) throws {
        self.group = group
        self.generation = Generation(try EgressShared(config: config, group: group, clock: clock, logger: logger, metrics: metrics, previous: nil))
    }

    /// The configuration in effect.
    public var config: EgressConfig { generation.current.config }

    @discardableResult
    public func start() async throws -> MeshAddress {
        let generation = self.generation
        let listen = config.listen
        let open = self.openConnections
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                if open.increment() > generation.current.config.maxConnections {
                    _ = open.decrement()
                    return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                channel.closeFuture.whenComplete { _ in _ = open.decrement() }
                return channel.eventLoop.makeCompletedFuture {
                    // The app's requests are framed by the sidecar's own scanner inside the one
                    // handler (its ``EgressConnection`` engine's codec), as on the ingress.
                    // No outbound validator: every header written was read by a scanner (no CR, LF
                    // or NUL), is the sidecar's own (ResponseWriter drops unsafe ones), or comes
                    // from header rules checked when loaded.
                    try channel.pipeline.syncOperations.addHandler(EgressHandler(generation: generation))
                }
            }
            .bind(host: listen.host, port: listen.port).get()
        channel.withLockedValue { $0 = server }
        return MeshAddress(host: listen.host, port: server.localAddress?.port ?? listen.port)
    }

    /// Applies a new configuration without dropping connections (see ``IngressServer/reload(_:)``);
    /// services that stay keep their endpoint health, connections and tokens. Returns warnings.
    @discardableResult
    public func reload(_ config: EgressConfig) throws -> [String] {
        let prepared = try prepareReload(config)
        prepared.commit()
        return prepared.warnings
    }

    /// Builds the generation for `config` without applying it (nothing changes if this throws);
    /// ``PreparedReload/commit()`` swaps it in. Lets a caller build every listener's generation
    /// before applying any.
    public func prepareReload(_ config: EgressConfig) throws -> PreparedReload {
        let old = generation.current
        var next = config
        var warnings: [String] = []
        if next.listen != old.config.listen {
            warnings.append("egress.listen changed: takes effect after a restart")
            next.listen = old.config.listen
        }
        let built = try EgressShared(config: next, group: group, clock: old.clock, logger: old.logger, metrics: old.metrics, previous: old)
        let generation = self.generation
        return PreparedReload(warnings: warnings) {
            generation.replace(built)
            built.retireDropped(from: old)
        }
    }

    public func stop() async throws {
        try await channel.withLockedValue { $0 }?.close()
        generation.current.retireAll()
    }

    /// Token fetches made for `service` (0 without OAuth).
    public func tokenFetches(_ service: String) -> Int { generation.current.services[service]?.token?.fetches.withLockedValue { $0 } ?? 0 }

    /// Each endpoint's state for `/endpoints`: service, address, available, breaker, in flight, EWMA ms.
    public func endpoints() -> [(service: String, address: MeshAddress, available: Bool, breaker: String, inFlight: Int, ewmaMilliseconds: Double)] {
        let shared = generation.current
        let now = shared.clock.now
        return shared.services.keys.sorted().flatMap { name in
            shared.services[name]!.decisions.withLockedValue { state in
                state.pool.endpoints.map { e in
                    (name, e.address, e.available(now: now), e.outlier.isEjected(now: now) ? "ejected" : e.breaker.state.name, e.inFlight, e.latency.nanoseconds / 1e6)
                }
            }
        }
    }
}
