import HTTPClientNIO
import HTTPSidecarEngines
import Foundation
import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// One upstream service at run time: its decisions (``UpstreamPool`` behind a lock held only for a
/// decision, never across I/O), where each endpoint is, its connections, its token source and the
/// watcher that keeps its endpoints current.
final class ServiceRuntime: Sendable {
    let config: ServiceConfig
    let decisions: NIOLockedValueBox<(pool: UpstreamPool, random: SeededRandom)>
    let sockets: NIOLockedValueBox<[MeshAddress: SocketAddress]>
    let connections: PoolRegistry
    let token: OAuthTokenSource?
    let requestTimeout: Duration
    private let watcher: NIOLockedValueBox<DiscoveryWatcher?>

    /// Builds the service, carrying over from `previous` (same name, older generation) whatever the
    /// new configuration did not change, so a reload keeps endpoint health, connections and tokens.
    init(_ config: ServiceConfig, egress: EgressConfig, previous: ServiceRuntime?, group: any EventLoopGroup,
         clock: any MeshClock, logger: Logger) throws {
        self.config = config
        let now = clock.now
        let settings = ConnectionPoolSettings(
            connectTimeout: config.timeouts.connect ?? egress.connectTimeout, responseTimeout: config.timeouts.attempt ?? egress.attemptTimeout,
            maxIdle: egress.maxIdlePerEndpoint, idleTimeout: config.timeouts.idle ?? egress.idleTimeout)
        requestTimeout = config.timeouts.request ?? egress.requestTimeout
        let sameDiscovery = previous?.config.discovery == config.discovery
        var found: DiscoveredEndpoints?
        if sameDiscovery, let previous {
            sockets = previous.sockets
        } else {
            do {
                found = try DiscoveryResolver.resolve(config.discovery)
            } catch {
                if case .fixed = config.discovery { throw ConfigError(key: "egress.services.\(config.name).endpoints", "\(error)") }
                logger.warning("discovery \(config.name): \(error); starting without endpoints")
            }
            sockets = NIOLockedValueBox(Dictionary((found?.endpoints ?? []).map { ($0.address, $0.socket) }, uniquingKeysWith: { a, _ in a }))
        }
        let carried = previous?.config.pool == config.pool
        if carried, let previous {
            decisions = previous.decisions
        } else {
            var system = SystemRandom()
            let endpoints = found?.endpoints.map(\.address) ?? previous?.decisions.withLockedValue { $0.pool.endpoints.map(\.address) } ?? []
            decisions = NIOLockedValueBox((UpstreamPool(config.pool, endpoints: endpoints, now: now), SeededRandom(seed: system.next())))
        }
        if let found, carried {
            decisions.withLockedValue { $0.pool.setEndpoints(found.endpoints.map(\.address), now: now) }
        }
        if let previous, previous.connections.settings == settings, previous.config.tls == config.tls {
            connections = previous.connections
        } else {
            do {
                connections = try PoolRegistry(settings: settings, tls: config.tls)
            } catch {
                throw ConfigError(key: "egress.services.\(config.name).tls", "\(error)")
            }
        }
        if let previous, let old = previous.token, old.settings == config.oauth {
            token = old
        } else if let oauth = config.oauth {
            do {
                token = try OAuthTokenSource(oauth, group: group, clock: clock, logger: logger)
            } catch {
                throw ConfigError(key: "egress.services.\(config.name).oauth", "\(error)")
            }
        } else {
            token = nil
        }
        // The old watcher feeds the old boxes: keep it only when both boxes were carried over.
        if sameDiscovery && carried, let kept = previous?.takeWatcher() {
            watcher = NIOLockedValueBox(kept)
        } else {
            previous?.retire()
            let decisions = self.decisions, sockets = self.sockets
            watcher = NIOLockedValueBox(DiscoveryWatcher(service: config.name, discovery: config.discovery, logger: logger) { found in
                sockets.withLockedValue { s in for e in found.endpoints { s[e.address] = e.socket } }
                let now = clock.now
                decisions.withLockedValue { $0.pool.setEndpoints(found.endpoints.map(\.address), now: now) }
            })
        }
    }

    private func takeWatcher() -> DiscoveryWatcher? { watcher.withLockedValue { w in defer { w = nil }; return w } }

    /// Stops discovery (the service left the configuration).
    func retire() { takeWatcher()?.stop() }

    /// The TLS name of an endpoint: the DNS name it was discovered by, else its host.
    func hostName(for address: MeshAddress) -> String {
        if case .dns(let name, _, _) = config.discovery { return name }
        return address.host
    }
}

/// One generation of the egress configuration: its services by name (allow-listed `service_url`
/// origins included, under their origin) and how requests name them.
final class EgressShared: Sendable {
    let config: EgressConfig
    let clock: any MeshClock
    let logger: Logger
    let metrics: SidecarMetrics
    let services: [String: ServiceRuntime]
    /// How requests name the services (shared with the simulator).
    let router: EgressRouter

    init(config: EgressConfig, group: any EventLoopGroup, clock: any MeshClock, logger: Logger, metrics: SidecarMetrics,
         previous: EgressShared?) throws {
        self.config = config
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
        let router = try EgressRouter(config: config)
        var all = config.services
        for text in config.serviceURLAllowList {
            guard let url = FetchURL(text) else { continue }  // the router refused malformed ones
            // Resolved like a DNS-discovered service: a name that does not resolve yet is not a start failure.
            var service = ServiceConfig(name: url.origin, discovery: .dns(name: url.host, port: url.port, every: .seconds(30)))
            if url.secure {
                var tls = config.serviceURLTLS ?? UpstreamTLS()
                tls.serverName = tls.serverName ?? url.host
                service.tls = tls
            }
            all.append(service)
        }
        var services: [String: ServiceRuntime] = [:]
        for s in all {
            guard services[s.name] == nil else { throw ConfigError(key: "egress.services.\(s.name)", "configured twice") }
            services[s.name] = try ServiceRuntime(s, egress: config, previous: previous?.services[s.name], group: group, clock: clock, logger: logger)
        }
        self.services = services
        self.router = router
    }

    /// Stops the discovery of `previous`'s services that this generation dropped. Called once this
    /// generation is in place, so a reload that fails elsewhere leaves the old watchers running.
    func retireDropped(from previous: EgressShared) {
        for (name, old) in previous.services where services[name] == nil { old.retire() }
    }

    /// The service a request names (see ``EgressRouter``); `path` is its normalized path.
    func route(_ head: ScannedRequestHead, path: String) -> Result<(ServiceRuntime, host: String?), ErrorResponse> {
        router.route(head, path: path).flatMap { route in
            services[route.service].map { .success(($0, route.host)) }
                ?? .failure(ErrorResponse(status: .notFound, code: "unknown_service", message: "no service called \(route.service) is configured"))
        }
    }

    /// Stops every service's discovery (shutdown).
    func retireAll() { for s in services.values { s.retire() } }
}
