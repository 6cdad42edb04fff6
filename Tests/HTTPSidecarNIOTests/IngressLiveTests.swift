import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOPosix
import Testing

/// The ingress proxy on real loopback sockets, with a real backend app.
@Suite(.serialized) struct IngressLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func withIngress(services: IngressServices = IngressServices(), _ tweak: (inout IngressConfig) -> Void = { _ in },
                             _ body: (Int, TestBackend) async throws -> Void) async throws {
        let backend = try await TestBackend(group: group)
        var config = IngressConfig()
        config.listen = MeshAddress(host: "127.0.0.1", port: 0)
        config.app = MeshAddress(host: "127.0.0.1", port: backend.port)
        tweak(&config)
        let ingress = try IngressServer(config: config, services: services, group: group)
        let bound = try await ingress.start()
        try await body(bound.port, backend)
        try await ingress.stop()
        try await backend.stop()
    }

    @Test func proxiesWithCorrelationForwardingTraceAndNoHopByHopHeaders() async throws {
        try await withIngress { port, backend in
            // Exactly one request: bytes after a `Connection: close` request make the parser close the connection.
            let request = "GET /pets?id=1 HTTP/1.1\r\nHost: shop.local\r\nConnection: close, x-hop\r\nX-Hop: drop-me\r\n"
                + "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"
            let response = try await rawExchange(port: port, request, group: group)
            #expect(response.hasPrefix("HTTP/1.1 200 OK"))
            #expect(response.lowercased().contains("x-correlation-id: "))
            #expect(!response.lowercased().contains("x-secret-hop"), "hop-by-hop header from the app leaked")
            let seen = try #require(backend.requests.first)
            #expect(seen.hasPrefix("GET /pets?id=1\n"))
            #expect(seen.contains("x-forwarded-for: 127.0.0.1"))
            #expect(seen.contains("x-forwarded-host: shop.local"))
            #expect(seen.contains("x-correlation-id: "))
            #expect(!seen.contains("x-hop"))
            #expect(seen.contains("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"))
            #expect(!seen.contains("00f067aa0ba902b7"), "the span id must be new at each hop")
        }
    }

    @Test func writesOneJSONAccessLogLinePerRequest() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UInt64.random(in: 0...UInt64.max)).log").path
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let log = AccessLog(to: FileHandle(forWritingAtPath: path)!)
        try await withIngress(services: IngressServices(accessLog: log)) { port, _ in
            _ = try await rawExchange(port: port, "GET /x?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\"ua\r\nConnection: close\r\n\r\n", group: group)
            // Issue 22: a request refused at its head is logged too (it was missing).
            _ = try await rawExchange(port: port, "GET /a%00b?secret=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
            log.flush()
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 2)
            let entry = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(entry["status"] as? Int == 200)
            #expect(entry["method"] as? String == "GET")
            #expect(entry["user_agent"] as? String == "t\"ua")
            #expect((entry["correlation_id"] as? String)?.count == 32)
            let refused = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
            #expect(refused["status"] as? Int == 400)
            #expect(refused["path"] as? String == "/a%00b?secret=*")
        }
    }

    @Test func keepAliveCarriesSeveralRequests() async throws {
        try await withIngress { port, backend in
            let two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let response = try await rawExchange(port: port, two, group: group)
            #expect(response.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
            #expect(backend.requests.map { $0.split(separator: "\n")[0] } == ["GET /a", "GET /b"])
        }
    }

    @Test(arguments: [
        ("both Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("differing duplicate Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("obsolete line folding", "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n"),
        ("two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("no Host header", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ])
    func smugglingAttemptsGet400AndNeverReachTheApp(_ name: String, _ request: String) async throws {
        try await withIngress { port, backend in
            let response = try await rawExchange(port: port, request, group: group)
            #expect(response.hasPrefix("HTTP/1.1 400"), "\(name): \(response)")
            #expect(backend.requests.isEmpty, "\(name) reached the app")
        }
    }

    @Test func oversizedBodiesGet413BeforeTheAppSeesThem() async throws {
        try await withIngress({ $0.maxBodyBytes = 10 }) { port, backend in
            let declared = try await rawExchange(port: port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", group: group)
            #expect(declared.hasPrefix("HTTP/1.1 413"))
            #expect(declared.contains("\"code\":\"body_too_large\""))
            let chunked = try await rawExchange(port: port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n", group: group)
            #expect(chunked.hasPrefix("HTTP/1.1 413"))
            #expect(backend.requests.isEmpty)
        }
    }

    @Test func rateLimitAnswers429WithHeaders() async throws {
        try await withIngress({ $0.rateLimit = RateLimiter.Config(rate: 1, burst: 2) }) { port, backend in
            var statuses: [String] = []
            var last = ""
            for _ in 0..<3 {
                last = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
                statuses.append(String(last.prefix(12)))
            }
            #expect(statuses == ["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 429"])
            #expect(last.lowercased().contains("retry-after: 1"))
            #expect(last.lowercased().contains("ratelimit-remaining: 0"))
            #expect(backend.requests.count == 2)
        }
    }

    @Test func corsPreflightIsAnsweredByTheSidecar() async throws {
        try await withIngress({ $0.cors = CORSPolicy(allowedOrigins: ["https://app.example"]) }) { port, backend in
            let ok = try await rawExchange(port: port, "OPTIONS /x HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n", group: group)
            #expect(ok.hasPrefix("HTTP/1.1 204"))
            #expect(ok.lowercased().contains("access-control-allow-origin: https://app.example"))
            let bad = try await rawExchange(port: port, "OPTIONS /x HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n", group: group)
            #expect(bad.hasPrefix("HTTP/1.1 403"))
            #expect(backend.requests.isEmpty)
        }
    }

    @Test func deniedAddressesGet403() async throws {
        try await withIngress({ $0.ipFilter = IPFilter(deny: [CIDR("127.0.0.0/8")!]) }) { port, backend in
            let r = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", group: group)
            #expect(r.hasPrefix("HTTP/1.1 403"))
            #expect(r.contains("\"code\":\"ip_denied\""))
            #expect(backend.requests.isEmpty)
        }
    }

    @Test func anAppThatIsDownGives502AndASlowHeaderIsCutOff() async throws {
        // A short header timeout here only: under a loaded CI machine a 1 s timer can beat a real request.
        try await withIngress({ $0.app = MeshAddress(host: "127.0.0.1", port: 1); $0.headerTimeout = .seconds(1) }) { port, _ in
            let r = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
            #expect(r.hasPrefix("HTTP/1.1 502"))
            #expect(r.contains("\"code\":\"upstream_unavailable\""))
            let start = ContinuousClock.now
            let slow = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\n", timeout: .seconds(8), group: group)
            #expect(slow.isEmpty)
            #expect(ContinuousClock.now - start < .seconds(4), "the header timeout (1s) did not close the connection")
        }
    }
}
