import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOPosix
import Testing

/// Ingress features on real loopback sockets: the TLS listener, 431, header rules, rate limits keyed
/// by a header, and reload on a live connection.
@Suite(.serialized) struct IngressFeaturesLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func ingress(_ backend: TestBackend, _ tweak: (inout IngressConfig) -> Void = { _ in }) async throws -> (IngressServer, Int) {
        var config = IngressConfig()
        config.listen = MeshAddress(host: "127.0.0.1", port: 0)
        config.app = MeshAddress(host: "127.0.0.1", port: backend.port)
        tweak(&config)
        let server = try IngressServer(config: config, group: group)
        return (server, try await server.start().port)
    }

    @Test func theTLSListenerTerminatesTLSAndForwardsAsHTTPS() async throws {
        let backend = try await TestBackend(group: group)
        let (server, plainPort) = try await ingress(backend) {
            var tls = ServerTLS(certificateFile: TestTLS.path("server.pem"), keyFile: TestTLS.path("server-key.pem"))
            tls.listen = MeshAddress(host: "127.0.0.1", port: 0)
            $0.tls = tls
        }
        let tlsPort = try #require(server.tlsAddress?.port)
        #expect(tlsPort != plainPort)
        let secure = try await rawExchange(port: tlsPort, "GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group,
                                           tls: try TestTLS.client(), serverName: "localhost")
        #expect(secure.hasPrefix("HTTP/1.1 200"), "\(secure.prefix(80))")
        #expect(backend.requests.first?.contains("x-forwarded-proto: https\n") == true)
        let plain = try await rawExchange(port: plainPort, "GET /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
        #expect(plain.hasPrefix("HTTP/1.1 200"))
        #expect(backend.requests.last?.contains("x-forwarded-proto: http\n") == true)
        // Plain HTTP to the TLS port is not served.
        let confused = try await rawExchange(port: tlsPort, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: .seconds(3), group: group)
        #expect(!confused.hasPrefix("HTTP/1.1 200"))
        #expect(backend.requests.count == 2)
        try await server.stop()
        try await backend.stop()
    }

    @Test func clientCertificatesCanBeRequiredAndCertificatesRotateOnReload() async throws {
        let backend = try await TestBackend(group: group)
        let (server, _) = try await ingress(backend) {
            var tls = ServerTLS(certificateFile: TestTLS.path("server.pem"), keyFile: TestTLS.path("server-key.pem"))
            tls.listen = MeshAddress(host: "127.0.0.1", port: 0)
            tls.clientCAFile = TestTLS.path("ca.pem")
            $0.tls = tls
        }
        let port = try #require(server.tlsAddress?.port)
        let request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let anonymous = try await rawExchange(port: port, request, timeout: .seconds(3), group: group, tls: try TestTLS.client(), serverName: "localhost")
        #expect(!anonymous.hasPrefix("HTTP/1.1 200"), "served a client without a certificate")
        let withCert = try await rawExchange(port: port, request, group: group, tls: try TestTLS.client(certificate: true), serverName: "localhost")
        #expect(withCert.hasPrefix("HTTP/1.1 200"), "\(withCert.prefix(80))")
        #expect(backend.requests.count == 1)

        // Rotation: the reloaded certificate (pets.internal) serves new connections.
        var next = server.config
        next.tls?.certificateFile = TestTLS.path("named.pem")
        next.tls?.keyFile = TestTLS.path("named-key.pem")
        try server.reload(next)
        let rotated = try await rawExchange(port: port, request, group: group, tls: try TestTLS.client(certificate: true), serverName: "pets.internal")
        #expect(rotated.hasPrefix("HTTP/1.1 200"), "the new certificate is not served: \(rotated.prefix(80))")
        try await server.stop()
        try await backend.stop()
    }

    @Test func missingTLSFilesAreRefusedAtStartNamingTheFile() async throws {
        var config = IngressConfig()
        config.tls = ServerTLS(certificateFile: "/nonexistent/cert.pem", keyFile: TestTLS.path("server-key.pem"))
        do {
            _ = try IngressServer(config: config, group: group)
            Issue.record("started without its certificate")
        } catch {
            #expect("\(error)".contains("/nonexistent/cert.pem"))
        }
    }

    @Test func oversizedHeadersGet431AndNeverReachTheApp() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(backend)
        let huge = String(repeating: "a", count: 100 * 1024)
        let response = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(huge)\r\n\r\n", group: group)
        #expect(response.hasPrefix("HTTP/1.1 431"), "\(response.prefix(80))")
        #expect(response.contains("\"code\":\"headers_too_large\""))
        #expect(backend.requests.isEmpty)
        try await server.stop()
        try await backend.stop()
    }

    @Test func headerRulesApplyToTheAppRequestAndTheClientResponse() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(backend) {
            $0.headers = HeaderRewrite(request: HeaderRules(remove: ["cookie"], rename: ["x-api-key": "x-client-key"], add: ["x-mesh": "ingress"]),
                                       response: HeaderRules(remove: ["x-app"], add: ["strict-transport-security": "max-age=63072000"]))
        }
        let response = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b\r\nX-Api-Key: k1\r\nConnection: close\r\n\r\n", group: group)
        #expect(response.hasPrefix("HTTP/1.1 200"))
        let seen = backend.requests.first ?? ""
        #expect(!seen.contains("cookie") && seen.contains("x-client-key: k1\n") && seen.contains("x-mesh: ingress\n"), "\(seen)")
        #expect(response.lowercased().contains("strict-transport-security: max-age=63072000") && !response.lowercased().contains("x-app:"))
        try await server.stop()
        try await backend.stop()
    }

    @Test func rateLimitCanBeKeyedByAHeader() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(backend) {
            $0.rateLimit = RateLimiter.Config(rate: 0.01, burst: 2)
            $0.rateLimitKey = .header("x-tenant")
        }
        func call(_ tenant: String) async throws -> String {
            try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nX-Tenant: \(tenant)\r\nConnection: close\r\n\r\n", group: group)
        }
        #expect(try await call("a").hasPrefix("HTTP/1.1 200"))
        #expect(try await call("a").hasPrefix("HTTP/1.1 200"))
        #expect(try await call("a").hasPrefix("HTTP/1.1 429"), "tenant a is over its burst")
        #expect(try await call("b").hasPrefix("HTTP/1.1 200"), "tenant b has its own bucket")
        try await server.stop()
        try await backend.stop()
    }

    @Test func reloadAppliesToTheNextRequestOnAnOpenConnection() async throws {
        let a = try await TestBackend(group: group), b = try await TestBackend(group: group)
        let (server, port) = try await ingress(a)
        let connection = try await KeepAliveClient(port: port, group: group)
        #expect(try await connection.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        var next = server.config
        next.app = MeshAddress(host: "127.0.0.1", port: b.port)
        next.headers.request.add = ["x-generation": "2"]
        next.listen = MeshAddress(host: "127.0.0.1", port: 1)
        let warnings = try server.reload(next)
        #expect(warnings.contains { $0.contains("ingress.listen") }, "a listener move needs a restart and must say so")
        #expect(try await connection.send("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        #expect(a.requests.count == 1 && b.requests.count == 1)
        #expect(b.requests.first?.contains("x-generation: 2\n") == true)

        var broken = server.config
        broken.app = MeshAddress(host: "no-such-host.invalid", port: 80)
        #expect(throws: ConfigError.self) { try server.reload(broken) }
        #expect(try await connection.send("GET /3 HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        #expect(b.requests.count == 2)
        try await connection.close()
        try await server.stop()
    }
}
