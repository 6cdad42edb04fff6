import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOPosix
import Prometheus
import Testing

/// The admin listener on loopback: health, readiness against the app, Prometheus metrics, endpoints.
@Suite(.serialized) struct AdminLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func get(_ port: Int, _ path: String) async throws -> String {
        try await rawExchange(port: port, "GET \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n", group: group)
    }

    @Test func reportsHealthReadinessMetricsAndEndpoints() async throws {
        let app = try await TestBackend(group: group)
        let registry = PrometheusCollectorRegistry()
        let metrics = SidecarMetrics(factory: PrometheusMetricsFactory(registry: registry))
        var ingressConfig = IngressConfig()
        ingressConfig.listen = MeshAddress(host: "127.0.0.1", port: 0)
        ingressConfig.app = MeshAddress(host: "127.0.0.1", port: app.port)
        ingressConfig.routes = [IngressRoute(prefix: "/", middleware: [])]
        let ingress = try IngressServer(config: ingressConfig, group: group, metrics: metrics)
        let ingressPort = try await ingress.start().port
        var egressConfig = EgressConfig()
        egressConfig.listen = MeshAddress(host: "127.0.0.1", port: 0)
        egressConfig.services = [ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: app.port)])]
        let egress = try EgressServer(config: egressConfig, group: group, metrics: metrics)
        let egressPort = try await egress.start().port
        let admin = AdminServer(listen: MeshAddress(host: "127.0.0.1", port: 0), group: group, sources: .init(
            registry: registry, configJSON: { "{\"ok\":true}" }, egress: egress,
            appHealth: (MeshAddress(host: "127.0.0.1", port: app.port), "/healthz")))
        let adminPort = try await admin.start().port

        #expect(try await get(adminPort, "/health/live").hasPrefix("HTTP/1.1 200"))
        #expect(try await get(adminPort, "/health/ready").hasPrefix("HTTP/1.1 200"))
        for _ in 0..<3 { _ = try await rawExchange(port: ingressPort, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group) }
        for _ in 0..<2 { _ = try await rawExchange(port: egressPort, "GET / HTTP/1.1\r\nHost: x\r\nservice_id: pets\r\nConnection: close\r\n\r\n", group: group) }
        let text = try await get(adminPort, "/metrics")
        #expect(text.contains("lightmesh_egress_requests_total{service=\"pets\",status_class=\"2xx\"} 2"), "\(text)")
        #expect(text.contains("lightmesh_egress_endpoints{service=\"pets\",state=\"closed\"} 1"), "\(text)")
        #expect(text.contains("lightmesh_egress_endpoints{service=\"pets\",state=\"open\"} 0"))
        #expect(text.contains("lightmesh_requests_total{listener=\"ingress\",status_class=\"2xx\"} 3"), "\(text)")
        #expect(text.contains("lightmesh_request_duration_seconds_bucket"))
        #expect(text.contains("lightmesh_ingress_route_requests_total{route=\"/\",status_class=\"2xx\"} 3"), "\(text)")
        let endpoints = try await get(adminPort, "/endpoints")
        #expect(endpoints.contains("\"service\":\"pets\"") && endpoints.contains("\"state\":\"closed\""))
        #expect(try await get(adminPort, "/config").contains("{\"ok\":true}"))
        #expect(try await get(adminPort, "/nope").hasPrefix("HTTP/1.1 404"))

        try await app.kill()
        #expect(try await get(adminPort, "/health/ready").hasPrefix("HTTP/1.1 503"), "ready while the app is down")
        try await admin.stop()
        try await egress.stop()
        try await ingress.stop()
    }
}
