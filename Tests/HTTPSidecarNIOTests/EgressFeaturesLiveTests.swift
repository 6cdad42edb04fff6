import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// Egress features on real loopback sockets: TLS and mutual TLS to upstreams, OAuth2 token
/// injection, the service_url allow-list, header rules, discovery, and reload.
@Suite(.serialized) struct EgressFeaturesLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func get(_ port: Int, _ headers: String = "service_id: pets\r\n", path: String = "/pets") async throws -> String {
        try await rawExchange(port: port, "GET \(path) HTTP/1.1\r\nHost: app\r\n\(headers)Connection: close\r\n\r\n", timeout: .seconds(10), group: group)
    }

    private func egress(_ services: [ServiceConfig], configure: (inout EgressConfig) -> Void = { _ in }) async throws -> (EgressServer, Int) {
        try await startEgress(services, group: group) { config in
            config.attemptTimeout = .seconds(3)
            configure(&config)
        }
    }

    private func local(_ port: Int) -> MeshAddress { MeshAddress(host: "127.0.0.1", port: port) }

    @Test func tlsToAnUpstreamVerifiesItsCertificateAgainstTheConfiguredCA() async throws {
        let backend = try await TestBackend(group: group, tls: try TestTLS.server())
        var trusted = ServiceConfig(name: "pets", endpoints: [local(backend.port)])
        trusted.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"))
        var named = ServiceConfig(name: "named", endpoints: [MeshAddress(host: "localhost", port: backend.port)])
        named.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"))
        var untrusted = ServiceConfig(name: "untrusted", endpoints: [local(backend.port)])
        untrusted.tls = UpstreamTLS(caFile: TestTLS.path("other-ca.pem"))
        // A certificate for pets.internal only, reached by IP: the configured name must match it.
        let namedBackend = try await TestBackend(group: group, tls: try TestTLS.server(name: "named"))
        var rightName = ServiceConfig(name: "right-name", endpoints: [local(namedBackend.port)])
        rightName.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"), serverName: "pets.internal")
        var wrongName = ServiceConfig(name: "wrong-name", endpoints: [local(namedBackend.port)])
        wrongName.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"), serverName: "not-the-server.test")
        var noName = ServiceConfig(name: "no-name", endpoints: [local(namedBackend.port)])
        noName.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"))
        let (server, port) = try await egress([trusted, named, untrusted, rightName, wrongName, noName])

        #expect(try await get(port).hasPrefix("HTTP/1.1 200"), "IP endpoint verified against the certificate's IP SAN")
        #expect(try await get(port, "service_id: named\r\n").hasPrefix("HTTP/1.1 200"), "host name endpoint verified by name")
        let before = backend.requests.count
        let refused = try await get(port, "service_id: untrusted\r\n")
        #expect(refused.hasPrefix("HTTP/1.1 502"), "\(refused.prefix(200))")
        #expect(refused.contains("tls_failure"), "\(refused)")
        #expect(backend.requests.count == before, "a request reached an upstream whose certificate was not trusted")
        #expect(try await get(port, "service_id: right-name\r\n").hasPrefix("HTTP/1.1 200"))
        #expect(try await get(port, "service_id: wrong-name\r\n").hasPrefix("HTTP/1.1 502"))
        #expect(try await get(port, "service_id: no-name\r\n").hasPrefix("HTTP/1.1 502"), "an IP endpoint needs the IP in the certificate")
        #expect(namedBackend.requests.count == 1)
        try await namedBackend.stop()
        try await server.stop()
        try await backend.stop()
    }

    @Test func mutualTLSPresentsTheClientCertificate() async throws {
        let backend = try await TestBackend(group: group, tls: try TestTLS.server(requireClientCertificate: true))
        var withCert = ServiceConfig(name: "pets", endpoints: [local(backend.port)])
        withCert.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"), certificateFile: TestTLS.path("client.pem"), keyFile: TestTLS.path("client-key.pem"))
        var without = ServiceConfig(name: "anonymous", endpoints: [local(backend.port)])
        without.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"))
        let (server, port) = try await egress([withCert, without])
        #expect(try await get(port).hasPrefix("HTTP/1.1 200"))
        #expect(try await get(port, "service_id: anonymous\r\n").hasPrefix("HTTP/1.1 502"), "the upstream requires a client certificate")
        #expect(backend.requests.count == 1)
        try await server.stop()
        try await backend.stop()
    }

    @Test func badTLSFilesAreRefusedNamingTheFile() async throws {
        var service = ServiceConfig(name: "pets", endpoints: [local(1)])
        service.tls = UpstreamTLS(caFile: "/nonexistent/ca.pem")
        var config = EgressConfig()
        config.services = [service]
        #expect(throws: ConfigError.self) { try EgressServer(config: config, group: group) }
        do { _ = try EgressServer(config: config, group: group) } catch { #expect("\(error)".contains("/nonexistent/ca.pem")) }
    }

    @Test func oauthTokenIsFetchedOnceForConcurrentRequestsAndInjected() async throws {
        let issued = NIOLockedValueBox(0)
        // A slow token endpoint (answers after 200 ms): every request arrives while the fetch runs.
        let tokens = try await TestBackend(group: group, delay: .milliseconds(200)) { head, body in
            guard head.uri == "/oauth/token", body.contains("grant_type=client_credentials"), body.contains("scope=pets.read"),
                  head.headers.first(name: "authorization") == "Basic " + Data("svc:s3cret".utf8).base64EncodedString() else {
                return (.badRequest, "{\"error\":\"invalid_request\"}", [])
            }
            let n = issued.withLockedValue { $0 += 1; return $0 }
            return (.ok, "{\"access_token\":\"tok-\(n)\",\"token_type\":\"Bearer\",\"expires_in\":3600}", [("content-type", "application/json")])
        }
        let upstream = try await TestBackend(group: group)
        var pets = ServiceConfig(name: "pets", endpoints: [local(upstream.port)])
        pets.oauth = OAuthClientCredentials(tokenURL: "http://127.0.0.1:\(tokens.port)/oauth/token", clientId: "svc", clientSecret: "s3cret", scope: "pets.read")
        let (server, port) = try await egress([pets])

        let answers = try await withThrowingTaskGroup(of: String.self) { tasks in
            for _ in 0..<20 { tasks.addTask { try await get(port, "service_id: pets\r\nauthorization: Bearer app-token\r\n") } }
            return try await tasks.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0.hasPrefix("HTTP/1.1 200") }, "\(answers.map { $0.prefix(60) })")
        #expect(issued.withLockedValue { $0 } == 1, "one fetch for all waiting requests")
        #expect(server.tokenFetches("pets") == 1)
        #expect(upstream.requests.count == 20)
        #expect(upstream.requests.allSatisfy { $0.contains("authorization: Bearer tok-1\n") && !$0.contains("app-token") }, "\(upstream.requests.first ?? "")")
        // Cached: later requests reuse the token without another fetch.
        #expect(try await get(port).hasPrefix("HTTP/1.1 200"))
        #expect(issued.withLockedValue { $0 } == 1)
        try await server.stop()
        try await upstream.stop()
        try await tokens.stop()
    }

    @Test func anUnreachableTokenEndpointGives503WithoutReachingTheUpstream() async throws {
        let upstream = try await TestBackend(group: group)
        let dead = try await TestBackend(group: group)
        try await dead.kill()
        var pets = ServiceConfig(name: "pets", endpoints: [local(upstream.port)])
        pets.oauth = OAuthClientCredentials(tokenURL: "http://127.0.0.1:\(dead.port)/token", clientId: "svc", clientSecret: "x")
        let (server, port) = try await egress([pets])
        let answer = try await get(port)
        #expect(answer.hasPrefix("HTTP/1.1 503") && answer.contains("\"token_unavailable\""), "\(answer)")
        #expect(upstream.requests.isEmpty)
        try await server.stop()
        try await upstream.stop()
    }

    @Test func serviceURLOnlyForAllowListedOrigins() async throws {
        let partner = try await TestBackend(group: group)
        let (server, port) = try await egress([]) { $0.serviceURLAllowList = ["http://127.0.0.1:\(partner.port)"] }
        let ok = try await get(port, "service_url: http://127.0.0.1:\(partner.port)\r\n", path: "/api/x?q=1")
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok.prefix(80))")
        #expect(partner.requests.first?.hasPrefix("GET /api/x?q=1\n") == true)
        #expect(!(partner.requests.first ?? "").contains("service_url"), "routing header forwarded")
        #expect(partner.requests.first?.contains("host: 127.0.0.1:\(partner.port)\n") == true, "the origin's authority is not the Host: \(partner.requests.first ?? "")")
        let other = try await get(port, "service_url: http://127.0.0.1:\(partner.port + 1)\r\n")
        #expect(other.hasPrefix("HTTP/1.1 403") && other.contains("service_url_not_allowed"))
        #expect(try await get(port, "service_url: http://evil.example\r\n").hasPrefix("HTTP/1.1 403"))
        #expect(try await get(port, "service_id: http://127.0.0.1:\(partner.port)\r\n").hasPrefix("HTTP/1.1 404"), "an origin is not a service name")
        #expect(partner.requests.count == 1)
        try await server.stop()
        try await partner.stop()
    }

    @Test func headerRulesEditRequestsAndResponses() async throws {
        let upstream = try await TestBackend(group: group)
        var pets = ServiceConfig(name: "pets", endpoints: [local(upstream.port)])
        pets.headers = HeaderRewrite(request: HeaderRules(remove: ["x-internal"], rename: ["x-user": "x-forwarded-user"], add: ["x-env": "test"]),
                                     response: HeaderRules(remove: ["x-app"], add: ["x-served-by": "light-mesh"]))
        let (server, port) = try await egress([pets])
        let answer = try await get(port, "service_id: pets\r\nx-internal: secret\r\nx-user: ann\r\nx-env: spoofed\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200"))
        let seen = upstream.requests.first ?? ""
        #expect(!seen.contains("x-internal") && seen.contains("x-forwarded-user: ann\n") && !seen.contains("x-user:"), "\(seen)")
        #expect(seen.contains("x-env: test\n") && !seen.contains("spoofed"), "\(seen)")
        #expect(answer.lowercased().contains("x-served-by: light-mesh") && !answer.lowercased().contains("x-app:"), "\(answer)")
        try await server.stop()
        try await upstream.stop()
    }

    @Test func fileDiscoveryFollowsTheFile() async throws {
        let a = try await TestBackend(group: group), b = try await TestBackend(group: group)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("endpoints-\(UUID()).txt").path
        try "# pets\n127.0.0.1:\(a.port)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let (server, port) = try await egress([ServiceConfig(name: "pets", discovery: .file(path: file, every: .milliseconds(100)))])
        for _ in 0..<3 { #expect(try await get(port).hasPrefix("HTTP/1.1 200")) }
        #expect(a.requests.count == 3 && b.requests.isEmpty)

        try "127.0.0.1:\(b.port)\n".write(toFile: file, atomically: true, encoding: .utf8)
        try await waitUntil { server.endpoints().map(\.address.port) == [b.port] }
        for _ in 0..<3 { #expect(try await get(port).hasPrefix("HTTP/1.1 200")) }
        #expect(a.requests.count == 3 && b.requests.count == 3, "after the change: \(a.requests.count)/\(b.requests.count)")

        try "not an endpoint\n".write(toFile: file, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(400))
        #expect(server.endpoints().map(\.address.port) == [b.port], "a malformed file keeps the previous endpoints")
        #expect(try await get(port).hasPrefix("HTTP/1.1 200"))
        try await server.stop()
        try? FileManager.default.removeItem(atPath: file)
    }

    @Test func dnsDiscoveryResolvesEveryAddressOfTheName() async throws {
        let upstream = try await TestBackend(group: group)
        let (server, port) = try await egress([ServiceConfig(name: "pets", discovery: .dns(name: "localhost", port: upstream.port, every: .seconds(1)))])
        let found = server.endpoints().map(\.address.host)
        #expect(found.contains("127.0.0.1"), "\(found)")
        for _ in 0..<4 { #expect(try await get(port).hasPrefix("HTTP/1.1 200")) }
        try await server.stop()
        try await upstream.stop()
    }

    @Test func reloadSwitchesEndpointsOnAnOpenConnectionAndRefusesABadConfiguration() async throws {
        let a = try await TestBackend(group: group), b = try await TestBackend(group: group)
        let (server, port) = try await egress([ServiceConfig(name: "pets", endpoints: [local(a.port)])])
        let connection = try await KeepAliveClient(port: port, group: group)
        #expect(try await connection.send("GET /one HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\n\r\n").hasPrefix("HTTP/1.1 200"))

        var next = server.config
        next.services = [ServiceConfig(name: "pets", endpoints: [local(b.port)])]
        try server.reload(next)
        #expect(try await connection.send("GET /two HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\n\r\n").hasPrefix("HTTP/1.1 200"), "the open connection survived")
        #expect(a.requests.count == 1 && b.requests.count == 1 && b.requests[0].hasPrefix("GET /two"))

        var bad = server.config
        bad.pathRoutes = [("/x", "missing")]
        #expect(throws: ConfigError.self) { try server.reload(bad) }
        #expect(try await connection.send("GET /three HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        #expect(b.requests.count == 2, "the refused reload changed nothing")
        try await connection.close()
        try await server.stop()
    }

    @Test func answersStreamToTheAppWithBackpressure() async throws {
        let slow = try await SlowStreamingApp(group: group, gap: .milliseconds(2000))
        let flood = try await FloodingApp(group: group, total: 200 * 1024 * 1024)
        let (server, port) = try await egress([ServiceConfig(name: "slow", endpoints: [local(slow.port)]),
                                               ServiceConfig(name: "flood", endpoints: [local(flood.port)])])
        let client = try await KeepAliveClient(port: port, group: group)
        let started = ContinuousClock.now
        try await client.write("GET /s HTTP/1.1\r\nHost: app\r\nservice_id: slow\r\n\r\n")
        #expect(try await client.waitFor("first-part"))
        #expect(ContinuousClock.now - started < .milliseconds(1500), "the answer was buffered whole")
        #expect(try await client.waitFor("last-part"))
        try await client.close()

        let reader = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 64 * 1024)
            .connect(host: "127.0.0.1", port: port).get()
        try await reader.writeAndFlush(reader.allocator.buffer(string: "GET /f HTTP/1.1\r\nHost: app\r\nservice_id: flood\r\n\r\n"))
        try await Task.sleep(for: .milliseconds(1500))
        let sent = flood.sent.withLockedValue { $0 }
        #expect(sent > 0 && sent < 64 * 1024 * 1024, "the egress read \(sent / 1024 / 1024) MB for an app that reads nothing")
        try await reader.close()
        try await server.stop()
        try await slow.stop()
        try await flood.stop()
    }

    @Test func aRetriable503IsRetriedAndOnlyTheFinalAnswerReachesTheApp() async throws {
        let calls = NIOLockedValueBox(0)
        let flaky = try await TestBackend(group: group) { _, _ in
            calls.withLockedValue { $0 += 1; return $0 } == 1 ? (.serviceUnavailable, "try later", []) : (.ok, "fine", [])
        }
        let (server, port) = try await egress([ServiceConfig(name: "pets", endpoints: [local(flaky.port)])])
        let answer = try await get(port)
        #expect(answer.hasPrefix("HTTP/1.1 200") && answer.hasSuffix("fine") && !answer.contains("try later"), "\(answer)")
        #expect(calls.withLockedValue { $0 } == 2)
        try await server.stop()
        try await flaky.stop()
    }

    @Test func pipelinedRequestsAreForwardedInOrder() async throws {
        let upstream = try await TestBackend(group: group)
        let (server, port) = try await egress([ServiceConfig(name: "pets", endpoints: [local(upstream.port)])])
        let client = try await KeepAliveClient(port: port, group: group)
        try await client.write("GET /1 HTTP/1.1\r\nHost: a\r\nservice_id: pets\r\n\r\n"
                               + "GET /x HTTP/1.1\r\nHost: a\r\nservice_id: nope\r\n\r\n"
                               + "POST /2 HTTP/1.1\r\nHost: a\r\nservice_id: pets\r\nContent-Length: 5\r\n\r\nhello"
                               + "GET /3 HTTP/1.1\r\nHost: a\r\nservice_id: pets\r\n\r\n")
        var answers: [String] = []
        for _ in 0..<4 { answers.append(try await client.send("")) }
        #expect(answers[0].contains("GET /1") && answers[1].hasPrefix("HTTP/1.1 404") && answers[2].hasSuffix("hello") && answers[3].contains("GET /3"),
                "\(answers.map { $0.prefix(40) })")
        #expect(try await client.send("GET /4 HTTP/1.1\r\nHost: a\r\nservice_id: pets\r\n\r\n").contains("GET /4"))
        #expect(upstream.requests.map { $0.split(separator: "\n")[0] } == ["GET /1", "POST /2", "GET /3", "GET /4"])
        try await client.close()
        try await server.stop()
        try await upstream.stop()
    }

    @Test func anHTTP10AppGetsAnAnswerItCanRead() async throws {
        let upstream = try await RawApp(group: group) { _ in
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false)
        }
        let (server, port) = try await egress([ServiceConfig(name: "pets", endpoints: [local(upstream.port)])])
        let answer = try await rawExchange(port: port, "GET / HTTP/1.0\r\nHost: a\r\nservice_id: pets\r\nConnection: keep-alive\r\n\r\n",
                                           timeout: .seconds(5), group: group)
        #expect(answer.hasPrefix("HTTP/1.0 200") && !answer.lowercased().contains("transfer-encoding") && answer.hasSuffix("\r\n\r\nhello"), "\(answer)")
        try await server.stop()
        try await upstream.stop()
    }

    private func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<100 where !condition() { try await Task.sleep(for: .milliseconds(50)) }
        #expect(condition(), "condition not reached in 5 s")
    }
}

/// One keep-alive connection that sends a request and reads one `Content-Length` response at a time.
final class KeepAliveClient: Sendable {
    private let channel: any Channel
    private let inbox: NIOLockedValueBox<String>

    init(port: Int, group: any EventLoopGroup) async throws {
        let inbox = NIOLockedValueBox("")
        self.inbox = inbox
        channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collect(into: inbox)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    /// Everything received and not yet taken as a response.
    var received: String { inbox.withLockedValue { $0 } }

    func write(_ bytes: String) async throws {
        try await channel.writeAndFlush(channel.allocator.buffer(string: bytes))
    }

    /// Sends `request` and returns the next whole response (head and body).
    func send(_ request: String) async throws -> String {
        try await channel.writeAndFlush(channel.allocator.buffer(string: request))
        for _ in 0..<200 {
            if let response = inbox.withLockedValue({ Self.takeResponse(&$0) }) { return response }
            try await Task.sleep(for: .milliseconds(25))
        }
        return inbox.withLockedValue { $0 }
    }

    private static func takeResponse(_ buffer: inout String) -> String? {
        guard let end = buffer.range(of: "\r\n\r\n") else { return nil }
        let head = buffer[..<end.lowerBound].lowercased()
        let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }.flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
        let bodyStart = end.upperBound
        guard buffer.utf8.distance(from: bodyStart, to: buffer.endIndex) >= length else { return nil }
        let bodyEnd = buffer.utf8.index(bodyStart, offsetBy: length)
        let response = String(buffer[..<bodyEnd])
        buffer = String(buffer[bodyEnd...])
        return response
    }

    func close() async throws { try await channel.close() }
}
