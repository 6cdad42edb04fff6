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

/// Bodies stream through the ingress: nothing is buffered whole, and backpressure holds.
@Suite(.serialized) struct StreamingLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }

    private func ingress(app port: Int, _ tweak: (inout IngressConfig) -> Void = { _ in }) async throws -> (IngressServer, Int) {
        try await startIngress(app: port, group: group, tweak)
    }

    @Test func aLargeUploadArrivesWholeAndUnchanged() async throws {
        let backend = try await TestBackend(group: group) { _, body in
            (.ok, "\(body.utf8.count) \(body.utf8.reduce(UInt64(0)) { ($0 &* 31) &+ UInt64($1) })", [])
        }
        let (server, port) = try await ingress(app: backend.port)
        let body = String((0..<3_000_000).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
        let expected = "\(body.utf8.count) \(body.utf8.reduce(UInt64(0)) { ($0 &* 31) &+ UInt64($1) })"
        let response = try await rawExchange(port: port, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)", timeout: .seconds(20), group: group)
        #expect(response.hasPrefix("HTTP/1.1 200"), "\(response.prefix(100))")
        #expect(response.hasSuffix(expected), "\(response.suffix(60))")
        let chunked = try await rawExchange(port: port, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", group: group)
        #expect(chunked.hasSuffix("11 \("hello world".utf8.reduce(UInt64(0)) { ($0 &* 31) &+ UInt64($1) })"), "\(chunked)")
        try await server.stop()
        try await backend.stop()
    }

    @Test func anUploadGrowingPastTheLimitMidStreamGets413AndIsCountedOnce() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port) { $0.maxBodyBytes = 1000 }
        let chunk = String(repeating: "x", count: 600)
        let response = try await rawExchange(port: port, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n", group: group)
        #expect(response.hasPrefix("HTTP/1.1 413") && response.contains("body_too_large"), "\(response.prefix(100))")
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.inFlight == 0, "the refused upload is still counted in flight")
        #expect(backend.requests.isEmpty, "the app got a truncated request as if complete")
        try await server.stop()
        try await backend.stop()
    }

    @Test func theFirstPartOfAResponseArrivesBeforeTheAppFinishes() async throws {
        let app = try await SlowStreamingApp(group: group, gap: .milliseconds(2000))
        let (server, port) = try await ingress(app: app.port)
        let client = try await KeepAliveClient(port: port, group: group)
        let started = ContinuousClock.now
        try await client.write("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = try await client.waitFor("first-part")
        let firstAt = ContinuousClock.now - started
        #expect(first, "the first part never came")
        #expect(firstAt < .milliseconds(1500), "the first part waited for the whole response (\(firstAt))")
        #expect(try await client.waitFor("last-part"))
        try await client.close()
        try await server.stop()
        try await app.stop()
    }

    @Test func aClientThatDoesNotReadHoldsTheAppBack() async throws {
        let app = try await FloodingApp(group: group, total: 200 * 1024 * 1024)
        let (server, port) = try await ingress(app: app.port)
        // A client that sends a request and then reads nothing.
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 64 * 1024)
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(channel.allocator.buffer(string: "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n"))
        try await Task.sleep(for: .milliseconds(1500))
        let sent = app.sent.withLockedValue { $0 }
        #expect(sent > 0, "the app never started")
        #expect(sent < 64 * 1024 * 1024, "the proxy read \(sent / 1024 / 1024) MB for a client that reads nothing")
        try await channel.close()
        try await server.stop()
        try await app.stop()
    }

    @Test func expectContinueIsAnsweredAndTheBodyForwarded() async throws {
        let backend = try await TestBackend(group: group)
        let (server, port) = try await ingress(app: backend.port)
        let client = try await KeepAliveClient(port: port, group: group)
        try await client.write("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        #expect(try await client.waitFor("HTTP/1.1 100 Continue"))
        let interim = try await client.send("hello")
        #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "\(interim)")
        let response = try await client.send("")
        #expect(response.hasPrefix("HTTP/1.1 200"), "\(response)")
        #expect(backend.requests.first?.hasSuffix("\n\nhello") == true)
        #expect(backend.requests.first?.contains("expect:") == false)
        try await client.close()
        try await server.stop()
        try await backend.stop()
    }
}

/// An app that sends a response in two parts with a pause between them.
final class SlowStreamingApp: Sendable {
    private let listener: TestListener
    var port: Int { listener.port }

    init(group: any EventLoopGroup, gap: TimeAmount) async throws {
        listener = try await TestListener(group: group) { Handler(gap: gap) }
    }

    func stop() async throws { try await listener.stop() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let gap: TimeAmount
        init(gap: TimeAmount) { self.gap = gap }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "first-part\n")))), promise: nil)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: gap) {
                let (handler, context) = bound.value
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "last-part\n")))), promise: nil)
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// An app that answers with a huge body, writing only while its connection is writable, and counts
/// what it managed to hand to the socket.
final class FloodingApp: Sendable {
    private let listener: TestListener
    var port: Int { listener.port }
    let sent = NIOLockedValueBox(0)

    init(group: any EventLoopGroup, total: Int) async throws {
        let sent = self.sent
        listener = try await TestListener(group: group) { Handler(total: total, sent: sent) }
    }

    func stop() async throws { try await listener.stop() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let total: Int
        let sent: NIOLockedValueBox<Int>
        var left = 0
        let chunk = ByteBuffer(repeating: 0x61, count: 64 * 1024)
        init(total: Int, sent: NIOLockedValueBox<Int>) {
            self.total = total
            self.sent = sent
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            left = total
            let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": String(total)])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            pump(context)
        }
        func channelWritabilityChanged(context: ChannelHandlerContext) {
            pump(context)
            context.fireChannelWritabilityChanged()
        }
        private func pump(_ context: ChannelHandlerContext) {
            while left > 0 && context.channel.isWritable {
                left -= chunk.readableBytes
                context.write(wrapOutboundOut(.body(.byteBuffer(chunk)))).whenSuccess { [sent, n = chunk.readableBytes] in
                    sent.withLockedValue { $0 += n }
                }
                context.flush()
            }
            if left <= 0 { context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil) }
        }
    }
}

extension KeepAliveClient {
    /// Waits (up to 5 s) until `text` was received.
    func waitFor(_ text: String) async throws -> Bool {
        for _ in 0..<200 {
            if received.contains(text) { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return false
    }
}
