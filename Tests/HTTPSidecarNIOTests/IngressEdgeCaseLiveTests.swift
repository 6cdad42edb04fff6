import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// The streaming ingress at the edges: HEAD, chunked answers, an app that breaks off midway, a
/// client that leaves midway, an app that answers before reading the body.
@Suite(.serialized) struct IngressEdgeCaseLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func ingress(app port: Int) async throws -> (IngressServer, Int) {
        var config = IngressConfig()
        config.listen = MeshAddress(host: "127.0.0.1", port: 0)
        config.app = MeshAddress(host: "127.0.0.1", port: port)
        config.upstreamTimeout = .seconds(5)
        let server = try IngressServer(config: config, group: group)
        return (server, try await server.start().port)
    }

    @Test func headAnswersCarryNoBodyAndTheConnectionGoesOn() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port)
        let client = try await KeepAliveClient(port: port, group: group)
        try await client.write("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try await client.waitFor("\r\n\r\n"))
        try await Task.sleep(for: .milliseconds(100))  // a (wrong) body would follow at once
        let head = client.received
        #expect(head.hasPrefix("HTTP/1.1 200") && head.hasSuffix("\r\n\r\n"), "\(head)")
        let next = try await client.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(next.contains("GET /after"), "the connection is out of step after HEAD: \(next)")
        try await client.close()
        try await server.stop()
        try await backend.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndTheConnectionStaysUsable() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port)
        let client = try await KeepAliveClient(port: port, group: group)
        try await client.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                               + "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        var answers: [String] = []
        for _ in 0..<3 { answers.append(try await client.send("")) }
        #expect(answers.map { $0.contains("GET /1") || $0.contains("POST /2") || $0.contains("GET /3") } == [true, true, true], "\(answers)")
        #expect(answers[0].contains("GET /1") && answers[1].contains("POST /2") && answers[1].hasSuffix("hello") && answers[2].contains("GET /3"))
        let fourth = try await client.send("GET /4 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(fourth.contains("GET /4"), "the connection did not survive pipelining: \(fourth)")
        #expect(backend.requests.map { $0.split(separator: "\n")[0] } == ["GET /1", "POST /2", "GET /3", "GET /4"])
        try await client.close()
        try await server.stop()
        try await backend.stop()
    }

    /// The one handler reads requests out of whatever the socket hands it: a pipelined stream cut
    /// into small pieces at arbitrary bytes (inside request lines, field lines, lengths, chunk-size
    /// lines and bodies) reaches the app as the same requests, answered in order.
    @Test func pipelinedRequestsCutAtArbitraryBytesArriveWhole() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port)
        let client = try await KeepAliveClient(port: port, group: group)
        let requests: [(text: String, line: String, body: String)] = [
            ("GET /one?q=1 HTTP/1.1\r\nHost: x\r\nX-Long: " + String(repeating: "v", count: 300) + "\r\n\r\n", "GET /one?q=1", ""),
            ("POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", "POST /two", "hello world"),
            ("POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nchunk\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
             "POST /three", "chunkabcdefghijklmnopqrstuvwxyz"),
            ("GET /four HTTP/1.1\r\nHost: x\r\n\r\n", "GET /four", ""),
            ("PUT /five HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "PUT /five", "abc"),
        ]
        let stream = Array(requests.map(\.text).joined().utf8)
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        var at = 0
        while at < stream.count {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let n = min(stream.count - at, 1 + Int(seed >> 59))  // 1...32 bytes
            try await client.write(String(decoding: stream[at..<(at + n)], as: UTF8.self))
            at += n
            if seed & 3 == 0 { try await Task.sleep(for: .milliseconds(2)) }  // a separate read, surely
        }
        var answers: [String] = []
        for _ in requests { answers.append(try await client.send("")) }
        for (answer, request) in zip(answers, requests) {
            #expect(answer.hasPrefix("HTTP/1.1 200") && answer.contains(request.line + "\n") && answer.hasSuffix("\n\n" + request.body),
                    "\(request.line): \(answer)")
        }
        #expect(backend.requests.map { String($0.split(separator: "\n")[0]) } == requests.map(\.line))
        try await client.close()
        try await server.stop()
        try await backend.stop()
    }

    @Test func aClientStallingMidUploadGets408AndFreesTheApp() async throws {
        let backend = try await TestBackend(group: group)
        var config = IngressConfig()
        config.listen = MeshAddress(host: "127.0.0.1", port: 0)
        config.app = MeshAddress(host: "127.0.0.1", port: backend.port)
        config.headerTimeout = .seconds(1)
        let server = try IngressServer(config: config, group: group)
        let port = try await server.start().port
        let started = ContinuousClock.now
        let response = try await rawExchange(port: port, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a little",
                                             timeout: .seconds(6), group: group)
        #expect(ContinuousClock.now - started < .seconds(4), "a stalled upload was not cut off")
        #expect(response.hasPrefix("HTTP/1.1 408") && response.contains("body_timeout"), "\(response.prefix(120))")
        #expect(server.inFlight == 0)
        #expect(backend.requests.isEmpty, "the app got a truncated body as a request")
        try await server.stop()
        try await backend.stop()
    }

    @Test func anHTTP10ClientGetsAnAnswerItCanRead() async throws {
        let app = try await RawApp(group: group) { _ in
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false)
        }
        let (server, port) = try await ingress(app: app.port)
        let response = try await rawExchange(port: port, "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", timeout: .seconds(5), group: group)
        #expect(response.hasPrefix("HTTP/1.0 200"), "\(response)")
        #expect(!response.lowercased().contains("transfer-encoding"), "chunked framing sent to an HTTP/1.0 client: \(response)")
        #expect(response.hasSuffix("\r\n\r\nhello"), "\(response)")
        try await server.stop()
        try await app.stop()
    }

    @Test func aChunkedAnswerIsRelayedWhole() async throws {
        let app = try await RawApp(group: group) { _ in
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false)
        }
        let (server, port) = try await ingress(app: app.port)
        let response = try await rawExchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
        #expect(response.hasPrefix("HTTP/1.1 200"))
        #expect(response.lowercased().contains("transfer-encoding: chunked"))
        #expect(response.hasSuffix("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "\(response)")
        try await server.stop()
        try await app.stop()
    }

    @Test func anAppThatBreaksOffMidAnswerClosesTheClientAndDoesNotPoisonThePool() async throws {
        let calls = NIOLockedValueBox(0)
        let app = try await RawApp(group: group) { _ in
            let n = calls.withLockedValue { $0 += 1; return $0 }
            return n == 1 ? ("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part", true) : ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
        }
        let (server, port) = try await ingress(app: app.port)
        let start = ContinuousClock.now
        let broken = try await rawExchange(port: port, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n", group: group)
        #expect(ContinuousClock.now - start < .seconds(3), "the client hung on a broken answer")
        #expect(broken.hasPrefix("HTTP/1.1 200") && broken.hasSuffix("only-part"), "\(broken)")
        let fine = try await rawExchange(port: port, "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
        #expect(fine.hasPrefix("HTTP/1.1 200") && fine.hasSuffix("ok"), "\(fine)")
        try await server.stop()
        try await app.stop()
    }

    @Test func aClientLeavingMidUploadLeavesTheIngressServing() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port)
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(channel.allocator.buffer(string: "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial"))
        try await Task.sleep(for: .milliseconds(100))
        try await channel.close()
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.inFlight == 0, "the abandoned request is still counted in flight")
        let after = try await rawExchange(port: port, "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", group: group)
        #expect(after.hasPrefix("HTTP/1.1 200") && after.contains("GET /next"), "\(after.prefix(80))")
        try await server.stop()
        try await backend.stop()
    }

    @Test func anAppAnsweringBeforeTheBodyEndsIsRelayedAndTheConnectionClosed() async throws {
        let app = try await RawApp(group: group) { _ in
            ("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!", true)
        }
        let (server, port) = try await ingress(app: app.port)
        let channel = try await KeepAliveClient(port: port, group: group)
        try await channel.write("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nstart")
        #expect(try await channel.waitFor("big!"), "the early answer never came: \(channel.received)")
        #expect(channel.received.hasPrefix("HTTP/1.1 413"))
        try? await channel.close()  // the ingress closed it already
        try await server.stop()
        try await app.stop()
    }
}

/// An app speaking raw bytes: on each request head it answers what `respond` returns (and closes
/// after it when asked), to produce answers a well-behaved HTTP library would not.
final class RawApp: Sendable {
    private let listener: TestListener
    var port: Int { listener.port }

    init(group: any EventLoopGroup, respond: @escaping @Sendable (String) -> (String, close: Bool)) async throws {
        listener = try await TestListener(group: group, http: false) { Handler(respond: respond) }
    }

    func stop() async throws { try await listener.stop() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let respond: @Sendable (String) -> (String, close: Bool)
        var pending = ""
        init(respond: @escaping @Sendable (String) -> (String, close: Bool)) { self.respond = respond }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pending += String(buffer: unwrapInboundIn(data))
            while let end = pending.range(of: "\r\n\r\n") {
                let head = String(pending[..<end.upperBound])
                pending = String(pending[end.upperBound...])
                let (answer, close) = respond(head)
                let channel = context.channel
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: answer))).whenComplete { _ in
                    if close { channel.close(promise: nil) }
                }
                if close { return }
            }
        }
    }
}
