import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOPosix
import Testing

/// The egress router on real loopback sockets across two upstream backends.
@Suite(.serialized) struct EgressLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func request(_ port: Int, _ method: String = "GET", _ path: String = "/pets", headers: String = "service_id: pets\r\n", body: String = "") async throws -> String {
        let length = body.isEmpty && method == "GET" ? "" : "Content-Length: \(body.utf8.count)\r\n"
        return try await rawExchange(port: port, "\(method) \(path) HTTP/1.1\r\nHost: app\r\n\(headers)\(length)Connection: close\r\n\r\n\(body)", timeout: .seconds(10), group: group)
    }

    @Test func balancesAcrossEndpointsAndSurvivesOneDying() async throws {
        let a = try await TestBackend(group: group), b = try await TestBackend(group: group)
        var config = EgressConfig()
        config.listen = MeshAddress(host: "127.0.0.1", port: 0)
        var pets = ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: a.port), MeshAddress(host: "127.0.0.1", port: b.port)])
        pets.pool.policy = .roundRobin
        config.services = [pets]
        config.pathRoutes = [("/v1/pets", "pets")]
        let egress = try EgressServer(config: config, group: group)
        let port = try await egress.start().port

        for _ in 0..<10 { #expect(try await request(port).hasPrefix("HTTP/1.1 200")) }
        #expect(a.requests.count == 5 && b.requests.count == 5, "round robin: \(a.requests.count)/\(b.requests.count)")
        #expect(!(a.requests + b.requests).contains { $0.contains("service_id") }, "routing header forwarded")

        try await a.kill()
        var statuses: [String] = []
        for i in 0..<20 {
            let method = i % 2 == 0 ? "GET" : "POST"
            statuses.append(String(try await request(port, method, body: method == "POST" ? "{\"n\":\(i)}" : "").prefix(12)))
        }
        #expect(statuses.allSatisfy { $0 == "HTTP/1.1 200" }, "\(statuses)")
        #expect(b.requests.count == 25)
        let states = egress.endpoints()
        #expect(states.first { $0.address.port == a.port }?.available == false, "the dead endpoint is still in rotation: \(states)")

        #expect(try await request(port, "GET", "/v1/pets/1", headers: "").hasPrefix("HTTP/1.1 200"), "path-prefix routing")
        #expect(try await request(port, headers: "service_id: nope\r\n").hasPrefix("HTTP/1.1 404"))
        #expect(try await request(port, headers: "service_url: http://evil\r\n").hasPrefix("HTTP/1.1 403"))
        try await b.kill()
        let none = try await request(port)
        #expect(none.hasPrefix("HTTP/1.1 503") || none.hasPrefix("HTTP/1.1 502"), "\(none.prefix(40))")
        #expect(none.contains("\"code\":"))
        try await egress.stop()
    }
}
