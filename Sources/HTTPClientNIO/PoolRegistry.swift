import HTTPSidecarEngines
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// One connection pool per (event loop, upstream), created on first use on that loop.
package final class PoolRegistry: Sendable {
    private struct Key: Hashable {
        var loop: ObjectIdentifier
        /// The address itself (its description cost a few allocations on every request).
        var target: SocketAddress
    }
    package let settings: ConnectionPoolSettings
    private let tls: UpstreamTLS?
    private let tlsContext: NIOSSLContext?
    private let pools = NIOLockedValueBox<[Key: NIOLoopBound<UpstreamConnectionPool>]>([:])

    /// `tls` set: every connection is TLS with that configuration (its context built here, once).
    package init(settings: ConnectionPoolSettings, tls: UpstreamTLS? = nil) throws {
        self.settings = settings
        self.tls = tls
        self.tlsContext = try tls?.makeContext()
    }

    /// The pool of `loop` for `target`; `host` is the name the endpoint was configured with (the TLS name).
    package func pool(for loop: any EventLoop, target: SocketAddress, host: String? = nil) -> UpstreamConnectionPool {
        let key = Key(loop: ObjectIdentifier(loop), target: target)
        return pools.withLockedValue { p in
            if let existing = p[key] { return existing.value }
            let clientTLS = tlsContext.map { ClientTLS(context: $0, hostname: tls?.hostname(for: host ?? target.ipAddress ?? "")) }
            let pool = UpstreamConnectionPool(eventLoop: loop, target: target, config: settings, tls: clientTLS)
            p[key] = NIOLoopBound(pool, eventLoop: loop)
            return pool
        }
    }
}
