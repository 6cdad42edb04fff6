import HTTPSidecar
import MeshCore

/// Per-service timeouts; unset fields take the egress listener's.
public struct ServiceTimeouts: Sendable, Hashable {
    public var connect: Duration?
    /// One attempt may take this long before it counts as a timeout.
    public var attempt: Duration?
    /// The whole request, retries included (then 504).
    public var request: Duration?
    /// A pooled connection idle this long is not reused.
    public var idle: Duration?
    public init() {}
}

/// One upstream service the app may call through the egress listener.
public struct ServiceConfig: Sendable {
    public var name: String
    public var discovery: Discovery
    public var pool = UpstreamPool.Config()
    /// TLS (and mutual TLS) to the endpoints.
    public var tls: UpstreamTLS?
    /// Client-credentials token injection (`Authorization: Bearer`).
    public var oauth: OAuthClientCredentials?
    public var headers = HeaderRewrite()
    public var timeouts = ServiceTimeouts()

    public init(name: String, endpoints: [MeshAddress]) {
        self.name = name
        self.discovery = .fixed(endpoints)
    }

    public init(name: String, discovery: Discovery) {
        self.name = name
        self.discovery = discovery
    }
}

/// Settings of the egress listener: how the app names a service, and the services.
public struct EgressConfig: Sendable {
    /// Loopback only by default, so nobody outside the pod can use the sidecar as an open proxy.
    public var listen = MeshAddress(host: "127.0.0.1", port: 9090)
    public var services: [ServiceConfig] = []
    /// Path prefixes mapped to services (`/v1/pets` → `petstore`); the longest prefix wins.
    public var pathRoutes: [(prefix: String, service: String)] = []
    /// Origins (`https://api.partner.example`, `http://10.0.0.5:8080`) a `service_url` header may
    /// name; any other `service_url` gets 403. Each allowed origin is proxied like a one-endpoint
    /// service (retries, breaker, outlier ejection), over TLS for `https` with `serviceURLTLS`.
    public var serviceURLAllowList: [String] = []
    /// TLS for `https` allow-listed origins (the system's trust roots when nil).
    public var serviceURLTLS: UpstreamTLS?
    /// Defaults for services that set no timeout of their own.
    public var attemptTimeout: Duration = .seconds(5)
    public var requestTimeout: Duration = .seconds(15)
    public var connectTimeout: Duration = .seconds(1)
    public var idleTimeout: Duration = .seconds(60)
    public var maxBodyBytes = 10 * 1024 * 1024
    /// Idle keep-alive connections kept per endpoint and event loop. Below the concurrency the app
    /// drives, connections churn (closed on release, opened again a moment later); idle ones are
    /// closed after ``idleTimeout`` anyway.
    public var maxIdlePerEndpoint = 256
    /// Header fields a request may have (more get 431).
    public var maxHeaders = 100
    /// App connections the egress listener keeps open at once; more are closed on accept.
    public var maxConnections = 4096
    /// What `%2F`, `%5C` and `%2E` in a path do. Kept by default: egress matches only routing on
    /// the path, and an app's encoded ids must reach the upstream as they were.
    public var escapedSeparators = RequestTarget.EscapedSeparators.keep
    public init() {}
}
