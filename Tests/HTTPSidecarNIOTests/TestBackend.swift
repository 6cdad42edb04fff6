import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A tiny app for the live tests: answers every request with a text dump of what it received and
/// counts requests, so a test can assert what did (and did not) reach the app.
final class TestBackend: Sendable {
    let received = NIOLockedValueBox<[String]>([])
    private let children = NIOLockedValueBox<[any Channel]>([])
    private let channel: any Channel
    /// The listening port (kept: a closed channel no longer knows it).
    let port: Int

    init(group: any EventLoopGroup) async throws {
        let received = self.received
        let children = self.children
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                children.withLockedValue { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Echo(received: received))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }
    var requests: [String] { received.withLockedValue { $0 } }

    func stop() async throws { try await channel.close() }

    /// Like a crashed pod: stops listening and resets every open connection.
    func kill() async throws {
        try await channel.close()
        for c in children.withLockedValue({ $0 }) { try? await c.close() }
    }

    final class Echo: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let received: NIOLockedValueBox<[String]>
        var head: HTTPRequestHead?
        var body = ""
        init(received: NIOLockedValueBox<[String]>) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h; body = ""
            case .body(let b): body += String(buffer: b)
            case .end:
                guard let head else { return }
                var dump = "\(head.method.rawValue) \(head.uri)\n"
                for (n, v) in head.headers { dump += "\(n.lowercased()): \(v)\n" }
                dump += "\n\(body)"
                received.withLockedValue { $0.append(dump) }
                var headers = HTTPHeaders([("content-length", String(dump.utf8.count)), ("x-app", "yes"), ("connection", "keep-alive, x-secret-hop"), ("x-secret-hop", "1")])
                if !head.isKeepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: dump)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// Sends raw bytes and returns everything the server sends back until it closes or `timeout` passes.
func rawExchange(port: Int, _ request: String, timeout: TimeAmount = .seconds(8), group: any EventLoopGroup) async throws -> String {
    let collected = NIOLockedValueBox("")
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collect(into: collected)) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    // The server may answer and close before the whole request is written (that is fine: read what came).
    try? await channel.writeAndFlush(channel.allocator.buffer(string: request))
    let closed = channel.closeFuture
    let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    try? await closed.get()
    deadline.cancel()
    return collected.withLockedValue { $0 }
}

final class Collect: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let into: NIOLockedValueBox<String>
    init(into: NIOLockedValueBox<String>) { self.into = into }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let s = String(buffer: unwrapInboundIn(data))
        into.withLockedValue { $0 += s }
    }
}
