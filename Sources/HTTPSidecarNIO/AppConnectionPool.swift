import MeshCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A whole response from the app.
struct AppResponse {
    var head: HTTPResponseHead
    var body: ByteBuffer
}

/// Timeouts and limits of one connection pool.
struct ConnectionPoolSettings: Sendable, Hashable {
    var connectTimeout: Duration
    /// The whole response must arrive within this long.
    var responseTimeout: Duration
    var maxIdle: Int
    /// A pooled connection unused for this long is closed rather than reused (the peer may have
    /// dropped it already).
    var idleTimeout: Duration = .seconds(60)
}

/// Keep-alive HTTP/1.1 connections from one event loop to one upstream (the app, or an egress endpoint). Confined to its event loop: every
/// method must be called on it (the ingress handlers of that loop share it, with no locks).
final class AppConnectionPool {
    let eventLoop: any EventLoop
    private let target: SocketAddress
    private let config: ConnectionPoolSettings
    private let tls: ClientTLS?
    private var idle: [(channel: any Channel, since: NIODeadline)] = []

    init(eventLoop: any EventLoop, target: SocketAddress, config: ConnectionPoolSettings, tls: ClientTLS? = nil) {
        self.eventLoop = eventLoop
        self.target = target
        self.config = config
        self.tls = tls
    }

    /// Sends one request and collects the whole response. Fails with `TransportError`.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?) -> EventLoopFuture<AppResponse> {
        eventLoop.assertInEventLoop()
        let freshSince = NIODeadline.now() - .nanoseconds(config.idleTimeout.nanoseconds)
        while let (channel, since) = idle.popLast() {
            if channel.isActive && since > freshSince { return send(on: channel, head, body, reused: true) }
            channel.close(promise: nil)
        }
        let tls = self.tls
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(config.connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: tls.hostname))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(AppClientHandler())
                }
            }
        let target = self.target
        let pool = NIOLoopBound(self, eventLoop: eventLoop)
        return bootstrap.connect(to: target).flatMapErrorThrowing { error -> any Channel in
            let kind: TransportError.Kind = error is ChannelError ? .connectTimeout : .connectRefused  // ChannelError here is the connect timeout
            throw TransportError(kind, "\(target): \(error)")
        }.flatMap { channel in
            pool.value.send(on: channel, head, body, reused: false)
        }
    }

    private func send(on channel: any Channel, _ head: HTTPRequestHead, _ body: ByteBuffer?, reused: Bool) -> EventLoopFuture<AppResponse> {
        let promise = eventLoop.makePromise(of: AppResponse.self)
        let handler = try! channel.pipeline.syncOperations.handler(type: AppClientHandler.self)
        handler.start(promise)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body, body.readableBytes > 0 { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let limit = config.responseTimeout
        let timeout = eventLoop.scheduleTask(in: .nanoseconds(limit.nanoseconds)) {
            promise.fail(TransportError(.closed, "the app did not answer within \(limit)"))
            channel.close(promise: nil)
        }
        let pool = NIOLoopBound(self, eventLoop: eventLoop)
        return promise.futureResult.map { response in
            timeout.cancel()
            let me = pool.value
            if response.head.isKeepAlive && me.idle.count < me.config.maxIdle {
                me.idle.append((channel, .now()))
            } else {
                channel.close(promise: nil)
            }
            return response
        }.flatMapErrorThrowing { error in
            timeout.cancel()
            channel.close(promise: nil)
            throw error
        }
    }

    func closeAll() {
        for c in idle { c.channel.close(promise: nil) }
        idle.removeAll()
    }
}

/// Collects one response at a time from the app.
final class AppClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var promise: EventLoopPromise<AppResponse>?
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?

    func start(_ promise: EventLoopPromise<AppResponse>) {
        self.promise = promise
        head = nil
        body = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = context.channel.allocator.buffer(capacity: 0)
        case .body(var chunk):
            body?.writeBuffer(&chunk)
        case .end:
            guard let promise, let head else { return }
            self.promise = nil
            promise.succeed(AppResponse(head: head, body: body ?? context.channel.allocator.buffer(capacity: 0)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(TransportError(.reset, "the app closed the connection"))
        promise = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let tls = error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
        promise?.fail(TransportError(tls ? .tls : .protocolViolation, "\(error)"))
        promise = nil
        context.close(promise: nil)
    }
}
