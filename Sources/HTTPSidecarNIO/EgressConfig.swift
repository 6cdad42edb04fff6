import HTTPSidecar
import MeshCore

/// One upstream service the app may call through the egress listener.
public struct ServiceConfig: Sendable {
    public var name: String
    public var endpoints: [MeshAddress]
    public var pool = UpstreamPool.Config()
    public init(name: String, endpoints: [MeshAddress]) {
        self.name = name
        self.endpoints = endpoints
    }
}

/// Settings of the egress listener: how the app names a service, and the services.
public struct EgressConfig: Sendable {
    /// Loopback only by default, so nobody outside the pod can use the sidecar as an open proxy.
    public var listen = MeshAddress(host: "127.0.0.1", port: 9090)
    public var services: [ServiceConfig] = []
    /// Path prefixes mapped to services (`/v1/pets` → `petstore`); the longest prefix wins.
    public var pathRoutes: [(prefix: String, service: String)] = []
    /// One attempt may take this long before it counts as a timeout.
    public var attemptTimeout: Duration = .seconds(5)
    /// The whole request, retries included, must end within this long (then 504).
    public var requestTimeout: Duration = .seconds(15)
    public var connectTimeout: Duration = .seconds(1)
    public var maxBodyBytes = 10 * 1024 * 1024
    public var maxIdlePerEndpoint = 32
    public init() {}
}
