import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOPosix
import Testing

/// The bounds an operator sets: header fields per request, connections per listener, and what
/// encoded separators in a path do.
@Suite(.serialized) struct HardeningLimitsLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func ingress(app port: Int, _ configure: (inout IngressConfig) -> Void) async throws -> (IngressServer, Int) {
        try await startIngress(app: port, group: group, configure)
    }

    @Test func moreHeaderFieldsThanTheLimitGet431() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port) { $0.maxHeaders = 20 }
        func request(fields: Int) -> String {
            "GET /h HTTP/1.1\r\nHost: x\r\n" + (0..<(fields - 2)).map { "X-F\($0): v\r\n" }.joined() + "Connection: close\r\n\r\n"
        }
        #expect(try await rawExchange(port: port, request(fields: 20), group: group).hasPrefix("HTTP/1.1 200"))
        let refused = try await rawExchange(port: port, request(fields: 21), group: group)
        #expect(refused.hasPrefix("HTTP/1.1 431") && refused.contains("too_many_headers"), "\(refused.prefix(200))")
        #expect(backend.requests.count == 1)
        try await server.stop()
        try await backend.stop()
    }

    @Test func connectionsOverTheLimitAreClosedOnAccept() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port) { $0.maxConnections = 2 }
        let a = try await KeepAliveClient(port: port, group: group)
        let b = try await KeepAliveClient(port: port, group: group)
        #expect(try await a.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        #expect(try await b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200"))
        let third = try await rawExchange(port: port, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n", timeout: .seconds(2), group: group)
        #expect(third.isEmpty, "a third connection was served: \(third.prefix(100))")
        try await a.close()
        try await Task.sleep(for: .milliseconds(100))
        let fourth = try await rawExchange(port: port, "GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
        #expect(fourth.hasPrefix("HTTP/1.1 200"), "a freed slot was not reused: \(fourth.prefix(100))")
        try await b.close()
        try await server.stop()
        try await backend.stop()
    }

    @Test func encodedSlashesFollowTheConfiguredAction() async throws {
        let backend = try await TestBackend(group: group)
        for (action, expected) in [(RequestTarget.EscapedSeparators.reject, "400"), (.decode, "GET /a/b"), (.keep, "GET /a%2Fb")] {
            let (server, port) = try await ingress(app: backend.port) { $0.escapedSeparators = action }
            let before = backend.requests.count
            let answer = try await rawExchange(port: port, "GET /a%2fb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
            if expected == "400" {
                #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains("bad_path") && backend.requests.count == before)
            } else {
                #expect(backend.requests.last?.hasPrefix(expected + "\n") ?? false, "\(action): \(backend.requests.last ?? "")")
            }
            try await server.stop()
        }
        try await backend.stop()
    }
}
