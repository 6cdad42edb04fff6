import Foundation
import JWTKit
import KafkaSidecarNIO
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SidecarAuth
import Testing

/// Issue 22: the Kafka sidecar's REST port can require the same JWT verification as the HTTP
/// sidecar's ingress, for an operator who binds it beyond loopback.
@Suite(.serialized) struct RESTAuthTests {
    let group = MultiThreadedEventLoopGroup.singleton
    static let fixtures: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/fixtures/jwt/"
    }()

    struct Payload: JWTPayload {
        var exp: ExpirationClaim
        var sub: SubjectClaim?
        var scope: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    @Test func everyRESTRequestNeedsAValidTokenAndOneWithoutIsRefusedBeforeItsBody() async throws {
        var policy = JWTPolicy()
        policy.requiredScopes = [("/topics", ["produce"])]
        let authenticator = try await JWTAuthenticator(policy: policy, jwksFile: Self.fixtures + "jwks.json")
        let routed = NIOLockedValueBox(0)
        let server = RESTServer(listen: MeshAddress(host: "127.0.0.1", port: 0), group: group, limits: RESTLimits(),
                                authenticator: authenticator) { _, loop in
            routed.withLockedValue { $0 += 1 }
            return loop.makeSucceededFuture(RESTResponse(status: 200, body: Array("{}".utf8)))
        }
        let port = try await server.start().port
        let keys = JWTKeyCollection()
        let rsa = try Insecure.RSA.PrivateKey(pem: String(contentsOfFile: Self.fixtures + "test-rsa-private.pem", encoding: .utf8))
        await keys.add(rsa: rsa, digestAlgorithm: .sha256, kid: "test-rsa")
        func token(scope: String) async throws -> String {
            try await keys.sign(Payload(exp: ExpirationClaim(value: Date().addingTimeInterval(300)), sub: SubjectClaim(value: "app"), scope: scope),
                                kid: "test-rsa")
        }
        // No token: 401 at the head, though the body never comes.
        let none = try await exchange(port, "POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        #expect(none.hasPrefix("HTTP/1.1 401"), "\(none)")
        #expect(none.contains("\"error_code\":40101") && none.lowercased().contains("www-authenticate: bearer"))
        let forged = try await exchange(port, "POST /topics/t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        #expect(forged.hasPrefix("HTTP/1.1 401"), "\(forged)")
        let twice = try await exchange(port, "GET /openapi.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n")
        #expect(twice.hasPrefix("HTTP/1.1 400"), "\(twice)")
        let underScoped = try await exchange(port, "POST /topics/t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(try await token(scope: "read"))\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        #expect(underScoped.hasPrefix("HTTP/1.1 403") && underScoped.contains("40301"), "\(underScoped)")
        #expect(routed.withLockedValue { $0 } == 0)
        let good = try await exchange(port, "POST /topics/t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(try await token(scope: "produce"))\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        #expect(good.hasPrefix("HTTP/1.1 200"), "\(good)")
        #expect(routed.withLockedValue { $0 } == 1)
        try await server.stop()
    }

    /// Writes `request` and reads until the server closes (or 5 s pass).
    func exchange(_ port: Int, _ request: String) async throws -> String {
        let collected = NIOLockedValueBox("")
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collect(into: collected)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try? await channel.writeAndFlush(channel.allocator.buffer(string: request))
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        try? await channel.closeFuture.get()
        deadline.cancel()
        return collected.withLockedValue { $0 }
    }

    final class Collect: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let into: NIOLockedValueBox<String>
        init(into: NIOLockedValueBox<String>) { self.into = into }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            into.withLockedValue { $0 += text }
        }
    }
}
