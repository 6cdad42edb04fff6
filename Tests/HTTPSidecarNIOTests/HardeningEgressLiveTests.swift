import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// The egress request lifecycle at its edges, over loopback: an app leaving mid-probe, the trace
/// hop, the whole-request deadline, TRACE bodies, and token endpoints that answer nonsense.
@Suite(.serialized) struct HardeningEgressLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func egress(_ services: [ServiceConfig]) async throws -> (EgressServer, Int) {
        try await startEgress(services, group: group) { $0.attemptTimeout = .seconds(5) }
    }

    private func call(_ port: Int, _ method: String = "GET", _ path: String, _ extra: String = "") async throws -> String {
        try await rawExchange(port: port, "\(method) \(path) HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\n\(extra)Connection: close\r\n\r\n",
                              timeout: .seconds(10), group: group)
    }

    @Test func anAppLeavingMidProbeDoesNotBlackholeTheEndpoint() async throws {
        let app = try await ScriptedApp(group: group) { line in
            if line.contains("/hang") { return nil }
            return line.contains("/fail") ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n" : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        }
        var pets = ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: app.port)])
        pets.pool.breaker.consecutiveFailures = 3
        pets.pool.breaker.openDuration = .milliseconds(300)
        let (server, port) = try await egress([pets])
        for _ in 0..<3 { #expect(try await call(port, "POST", "/fail", "Content-Length: 0\r\n").hasPrefix("HTTP/1.1 503")) }
        #expect(server.endpoints().first?.breaker == "open", "the breaker should be open")
        try await Task.sleep(for: .milliseconds(400))
        // The probe hangs upstream and its app gives up.
        let probe = try await KeepAliveClient(port: port, group: group)
        try await probe.write("GET /hang HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\n\r\n")
        try await Task.sleep(for: .milliseconds(200))
        try await probe.close()
        try await Task.sleep(for: .milliseconds(200))
        let after = try await call(port, "GET", "/ok")
        #expect(after.hasPrefix("HTTP/1.1 200"), "the endpoint stayed blackholed: \(after.prefix(200))")
        let endpoint = server.endpoints().first
        #expect(endpoint?.inFlight == 0 && endpoint?.breaker == "closed", "\(String(describing: endpoint))")
        try await server.stop()
        try await app.stop()
    }

    @Test func egressContinuesTheTraceWithANewSpan() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await egress([ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: backend.port)])])
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        #expect(try await call(port, "GET", "/t", "traceparent: \(parent)\r\n").hasPrefix("HTTP/1.1 200"))
        let seen = backend.requests.first?.split(separator: "\n").first { $0.hasPrefix("traceparent: ") }.map { String($0.dropFirst(13)) } ?? ""
        let parts = seen.split(separator: "-")
        #expect(parts.count == 4 && parts[1] == "0af7651916cd43dd8448eb211c80319c", "the trace was lost: \(seen)")
        #expect(parts.count == 4 && parts[2] != "b7ad6b7169203331", "no new span for the sidecar hop: \(seen)")
        try await server.stop()
        try await backend.stop()
    }

    @Test func theWholeRequestDeadlineEndsAHangingAttempt() async throws {
        let app = try await ScriptedApp(group: group) { _ in nil }
        var pets = ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: app.port)])
        pets.timeouts.request = .seconds(1)
        let (server, port) = try await egress([pets])
        let started = ContinuousClock.now
        let answer = try await call(port, "GET", "/slow")
        let took = ContinuousClock.now - started
        #expect(answer.hasPrefix("HTTP/1.1 504") && answer.contains("request_timeout"), "\(answer.prefix(200))")
        #expect(took < .milliseconds(2500), "answered after \(took) with a 1 s deadline")
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.endpoints().first?.inFlight == 0, "the abandoned attempt was not recorded")
        try await server.stop()
        try await app.stop()
    }

    /// The egress refuses `Connection` naming a framing field too (the app's bytes are not trusted either).
    @Test func aConnectionHeaderNamingContentLengthIsRefusedByEgress() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await egress([ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: backend.port)])])
        let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        let answer = try await rawExchange(port: port, "GET /first HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\nConnection: keep-alive, Content-Length\r\n"
                                           + "Content-Length: \(smuggled.utf8.count)\r\n\r\n\(smuggled)GET /next HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\n\r\n", group: group)
        #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains("\"code\":\"bad_framing\""), "\(answer.prefix(200))")
        #expect(backend.requests.isEmpty)
        try await server.stop()
        try await backend.stop()
    }

    @Test func aTraceWithABodyIsRefused() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await egress([ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: backend.port)])])
        let answer = try await call(port, "TRACE", "/t", "Content-Length: 4\r\n\r\nbody")
        #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains("trace_with_body"), "\(answer.prefix(200))")
        #expect(backend.requests.isEmpty)
        try await server.stop()
        try await backend.stop()
    }

    @Test func tokenEndpointsAnsweringNonsenseNeverCrashOrInjectHeaders() async throws {
        let answers = NIOLockedValueBox([#"{"access_token":"t1","expires_in":1e300}"#, #"{"access_token":"t2","expires_in":"3600"}"#,
                                         #"{"access_token":"t3","expires_in":-5}"#, #"{"access_token":"t4","expires_in":true}"#,
                                         #"{"access_token":"bad\r\nX-Evil: 1","expires_in":60}"#])
        let tokens = try await TestBackend(group: group) { _, _ in
            (.ok, answers.withLockedValue { $0.isEmpty ? "{}" : $0.removeFirst() }, [("content-type", "application/json")])
        }
        let backend = try await TestBackend(group: group) { _, _ in (.unauthorized, "", []) }  // every token is dropped after use
        var pets = ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: backend.port)])
        pets.oauth = OAuthClientCredentials(tokenURL: "http://127.0.0.1:\(tokens.port)/token", clientId: "svc", clientSecret: "x")
        pets.pool.retry.maxAttempts = 1
        let (server, port) = try await egress([pets])
        for expected in ["t1", "t2", "t3", "t4"] {
            let answer = try await call(port, "GET", "/p")
            #expect(answer.hasPrefix("HTTP/1.1 401"), "\(expected): \(answer.prefix(200))")
            #expect(backend.requests.last?.contains("authorization: Bearer \(expected)\n") ?? false, "\(backend.requests.last ?? "")")
            try await Task.sleep(for: .milliseconds(1100))  // past the fail-fast second after a refused token
        }
        let bad = try await call(port, "GET", "/p")
        #expect(bad.hasPrefix("HTTP/1.1 503") && bad.contains("token_unavailable"), "\(bad.prefix(200))")
        #expect(!(backend.requests.last?.contains("x-evil") ?? true))
        try await server.stop()
        try await tokens.stop()
        try await backend.stop()
    }

    /// Issue 22: a token endpoint that trickles its answer a byte at a time wedged the service (the
    /// fetch timeout restarted at each byte, and every later request waited on that fetch). The
    /// whole answer has a deadline now: the fetch fails, and once the endpoint is healthy again a
    /// later request starts a new fetch and gets through.
    @Test func aTricklingTokenEndpointDoesNotWedgeTheService() async throws {
        let healthy = NIOLockedValueBox(false)
        let tokens = try await TestListener(group: group, http: false) { DrippingTokenEndpoint(healthy: healthy) }
        let backend = try await TestBackend(group: group) { _, _ in (.ok, "ok", []) }
        var pets = ServiceConfig(name: "pets", endpoints: [MeshAddress(host: "127.0.0.1", port: backend.port)])
        var oauth = OAuthClientCredentials(tokenURL: "http://127.0.0.1:\(tokens.port)/token", clientId: "svc", clientSecret: "x")
        oauth.timeout = .seconds(1)
        oauth.cache.retryAfterFailure = .milliseconds(200)
        pets.oauth = oauth
        let (server, port) = try await egress([pets])
        let started = ContinuousClock.now
        let first = try await call(port, "GET", "/p")
        #expect(first.hasPrefix("HTTP/1.1 503") && first.contains("token_unavailable"), "\(first.prefix(200))")
        #expect(ContinuousClock.now - started < .seconds(4), "the trickling answer was cut off at its deadline")
        healthy.withLockedValue { $0 = true }
        try await Task.sleep(for: .milliseconds(300))
        let second = try await call(port, "GET", "/p")
        #expect(second.hasPrefix("HTTP/1.1 200"), "\(second.prefix(200))")
        #expect(backend.requests.last?.contains("authorization: Bearer fresh\n") ?? false)
        try await server.stop()
        try await tokens.stop()
        try await backend.stop()
    }

    /// Issue 22: an upstream over TLS that reads a POST and then drops TCP without `close_notify`
    /// had the POST retried on every other endpoint (a TLS error counted as "never sent"). Once the
    /// request was written it is not retried: one delivery, and a 502.
    @Test func aPostToATLSUpstreamThatClosesUncleanlyIsDeliveredOnce() async throws {
        let received = NIOLockedValueBox(0)
        let tls = try TestTLS.server()
        var listeners: [TestListener] = []
        for _ in 0..<3 {
            listeners.append(try await TestListener(group: group, http: false, tls: tls) { UncleanCloser(received: received) })
        }
        var pets = ServiceConfig(name: "pets", endpoints: listeners.map { MeshAddress(host: "127.0.0.1", port: $0.port) })
        pets.tls = UpstreamTLS(caFile: TestTLS.path("ca.pem"))
        pets.pool.retry.maxAttempts = 3
        let (server, port) = try await egress([pets])
        let answer = try await rawExchange(port: port, "POST /orders HTTP/1.1\r\nHost: app\r\nservice_id: pets\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                                           timeout: .seconds(10), group: group)
        #expect(answer.hasPrefix("HTTP/1.1 502"), "\(answer.prefix(200))")
        #expect(received.withLockedValue { $0 } == 1, "the POST reached the upstreams \(received.withLockedValue { $0 }) times")
        try await server.stop()
        for l in listeners { try await l.stop() }
    }

    /// Issue 22: the sidecar's own fetches (pushes to the app, token endpoint, JWKS) had no bound on
    /// an answer's size, and a peer dripping its answer kept the exchange open for ever. A 100 MB
    /// answer is refused at the size limit, and a dripping one fails at the whole-answer deadline;
    /// both connections are closed by the sidecar.
    @Test func theSidecarsOwnFetchesBoundAnswersInSizeAndTime() async throws {
        let closed = NIOLockedValueBox(0)
        let huge = try await TestListener(group: group, http: false) { EndlessAnswer(dripping: false, closed: closed) }
        let dripping = try await TestListener(group: group, http: false) { EndlessAnswer(dripping: true, closed: closed) }
        let big = try HTTPFetcher(try #require(FetchURL("http://127.0.0.1:\(huge.port)/")), group: group, timeout: .seconds(5),
                                  maxResponseBytes: 1 << 20)
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) {
            _ = try await big.call(method: .POST, target: "/push", headers: [], body: nil, on: group.next()).get()
        }
        #expect(ContinuousClock.now - started < .seconds(4), "refused at the size limit, not at the deadline")
        let slow = try HTTPFetcher(try #require(FetchURL("http://127.0.0.1:\(dripping.port)/")), group: group, timeout: .seconds(1))
        let dripStarted = ContinuousClock.now
        await #expect(throws: (any Error).self) {
            _ = try await slow.call(method: .POST, target: "/push", headers: [], body: nil, on: group.next()).get()
        }
        #expect(ContinuousClock.now - dripStarted < .seconds(3), "the whole-answer deadline ended the dripping answer")
        try await Task.sleep(for: .milliseconds(300))
        #expect(closed.withLockedValue { $0 } == 2, "both connections closed by the sidecar")
        try await huge.stop()
        try await dripping.stop()
    }
}

/// An app whose answer never ends: 100 MB announced, then sent as fast as the peer reads
/// (`dripping: false`) or a byte every 100 ms (`dripping: true`). Counts connections the peer closed.
final class EndlessAnswer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let dripping: Bool
    let closed: NIOLockedValueBox<Int>
    var started = false
    init(dripping: Bool, closed: NIOLockedValueBox<Int>) {
        self.dripping = dripping
        self.closed = closed
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.withLockedValue { $0 += 1 }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !started else { return }
        started = true
        let channel = context.channel
        channel.writeAndFlush(channel.allocator.buffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n"), promise: nil)
        let chunk = dripping ? " " : String(repeating: "x", count: 64 * 1024)
        channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(dripping ? 100 : 1), delay: .milliseconds(dripping ? 100 : 1)) { task in
            guard channel.isActive else { return task.cancel() }
            channel.writeAndFlush(channel.allocator.buffer(string: chunk), promise: nil)
        }
    }
}

/// Counts each request it reads over TLS, then closes the TCP connection under the TLS layer (its
/// close goes out from below the TLS handler: no `close_notify`).
final class UncleanCloser: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let received: NIOLockedValueBox<Int>
    var pending = ""
    init(received: NIOLockedValueBox<Int>) { self.received = received }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending += String(buffer: unwrapInboundIn(data))
        guard let end = pending.range(of: "\r\n\r\n"), pending[end.upperBound...].utf8.count >= 5 else { return }
        pending = ""
        received.withLockedValue { $0 += 1 }
        if let below = try? context.pipeline.syncOperations.context(handlerType: BelowTLS.self) {
            below.close(promise: nil)
        }
    }
}

/// Sits under the TLS handler so a close issued from its context bypasses the TLS shutdown.
final class BelowTLS: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
}

/// A token endpoint that, until `healthy`, answers with a head and then one body byte every 100 ms.
final class DrippingTokenEndpoint: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let healthy: NIOLockedValueBox<Bool>
    var pending = ""
    init(healthy: NIOLockedValueBox<Bool>) { self.healthy = healthy }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending += String(buffer: unwrapInboundIn(data))
        guard pending.contains("\r\n\r\n"), pending.contains("grant_type") else { return }
        pending = ""
        if healthy.withLockedValue({ $0 }) {
            let body = #"{"access_token":"fresh","expires_in":3600}"#
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string:
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)")), promise: nil)
            return
        }
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string:
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n")), promise: nil)
        let channel = context.channel
        channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { task in
            guard channel.isActive else { return task.cancel() }
            channel.writeAndFlush(channel.allocator.buffer(string: " "), promise: nil)
        }
    }
}

/// An upstream that answers each request line with a scripted raw answer, or never (nil).
final class ScriptedApp: Sendable {
    private let listener: TestListener
    var port: Int { listener.port }

    init(group: any EventLoopGroup, answer: @escaping @Sendable (String) -> String?) async throws {
        listener = try await TestListener(group: group, http: false) { Handler(answer: answer) }
    }

    func stop() async throws { try await listener.stop() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let answer: @Sendable (String) -> String?
        var pending = ""
        init(answer: @escaping @Sendable (String) -> String?) { self.answer = answer }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pending += String(buffer: unwrapInboundIn(data))
            while let end = pending.range(of: "\r\n\r\n") {
                let head = String(pending[..<end.upperBound])
                pending = String(pending[end.upperBound...])
                let line = String(head.prefix { $0 != "\r" })
                if let reply = answer(line) { context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: reply)), promise: nil) }
            }
        }
    }
}
