import MeshCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Receives one response from an ``UpstreamConnection`` as it streams in. Called on the
/// connection's event loop, in order: `head`, any `body`s, then `end`; or `failed` once at any point.
protocol UpstreamResponseSink: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    func upstreamBody(_ chunk: ByteBuffer)
    /// The response is complete; the connection has already gone back to its pool (or closed).
    func upstreamEnd()
    /// The exchange failed; `requestSent` tells whether any of the request may have reached the peer.
    func upstreamFailed(_ error: TransportError, requestSent: Bool)
    /// The end of one read burst: a good moment to flush what was written downstream.
    func upstreamReadComplete()
    /// The connection's writability changed (request-body backpressure).
    func upstreamWritabilityChanged(_ writable: Bool)
}

extension UpstreamResponseSink {
    func upstreamReadComplete() {}
    func upstreamWritabilityChanged(_ writable: Bool) {}
}

/// One keep-alive HTTP/1.1 connection to an upstream, driving one exchange at a time: the request
/// is written part by part as it arrives, the response handed on part by part as it is read.
/// Backpressure both ways: ``pauseReading()`` stops reading the response while the downstream
/// cannot take more, and the sink hears when the request side stops being writable.
///
/// The response timeout bounds the wait for the head and then every gap between reads (a long
/// download that keeps moving is never cut). It uses one timer per connection, re-armed lazily:
/// progress only moves a deadline, so a busy connection does not schedule and cancel a task per request.
final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private(set) var channel: (any Channel)?
    private var context: ChannelHandlerContext?
    private weak var pool: UpstreamConnectionPool?
    private var sink: (any UpstreamResponseSink)?
    private var requestWritten = false
    private var requestEnded = false
    private var responseEnded = false
    private var reusable = true
    private var paused = false
    private var readPending = false
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timeout: Duration = .seconds(30)
    /// When it went back to the pool (for the idle timeout).
    var idleSince = NIODeadline.now()

    init(pool: UpstreamConnectionPool) { self.pool = pool }

    var isActive: Bool { channel?.isActive ?? false }
    var isWritable: Bool { channel?.isWritable ?? false }

    // MARK: Driving an exchange

    /// Starts an exchange: writes the head (flushed with the first body part or the end).
    func start(_ head: HTTPRequestHead, sink: any UpstreamResponseSink, timeout: Duration) {
        self.sink = sink
        requestWritten = false
        requestEnded = false
        responseEnded = false
        self.timeout = timeout
        deadline = .now() + .nanoseconds(timeout.nanoseconds)
        armTimer()
        write(.head(head))
    }

    /// Writes a body part; it leaves with the next ``flush()`` or ``sendEnd()``.
    func sendBody(_ chunk: ByteBuffer) {
        write(.body(.byteBuffer(chunk)))
    }

    func flush() { context?.flush() }

    func sendEnd() {
        requestEnded = true
        write(.end(nil))
        context?.flush()
        if responseEnded { complete() }
    }

    /// The downstream cannot take more: stop reading the response until ``resumeReading()``.
    func pauseReading() { paused = true }

    func resumeReading() {
        guard paused else { return }
        paused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Gives up on the exchange (the client went away or the request was refused midway): the
    /// connection is closed, since the peer may still be reading or writing a message.
    func abandon() {
        sink = nil
        reusable = false
        channel?.close(promise: nil)
    }

    private func write(_ part: HTTPClientRequestPart) {
        guard let context else { return }
        requestWritten = true
        context.write(wrapOutboundOut(part), promise: nil)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        channel = context.channel
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let sink else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code >= 100 && head.status.code < 200 && head.status != .switchingProtocols { return }  // interim: not forwarded
            if !head.isKeepAlive { reusable = false }
            deadline = .now() + .nanoseconds(timeout.nanoseconds)
            sink.upstreamHead(head)
        case .body(let chunk):
            deadline = .now() + .nanoseconds(timeout.nanoseconds)
            sink.upstreamBody(chunk)
        case .end:
            responseEnded = true
            // An answer before the whole request was sent (an early 413, say): the peer's reading
            // state is unknown, so the connection is not reused.
            if !requestEnded { reusable = false }
            complete()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        sink?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        sink?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        pool?.forget(self)
        fail(TransportError(.reset, "the upstream closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let tls = error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
        fail(TransportError(tls ? .tls : .protocolViolation, "\(error)"))
        reusable = false
        context.close(promise: nil)
    }

    private func complete() {
        guard let sink, responseEnded, requestEnded || !reusable else { return }
        self.sink = nil
        deadline = nil
        if reusable, let pool {
            pool.release(self)
        } else {
            channel?.close(promise: nil)
        }
        sink.upstreamEnd()
    }

    private func fail(_ error: TransportError) {
        guard let sink else { return }
        self.sink = nil
        deadline = nil
        reusable = false
        // A TLS failure happens during the handshake, before any request byte leaves (NIOSSL buffers them).
        sink.upstreamFailed(error, requestSent: requestWritten && error.kind != .tls)
    }

    // MARK: Response timeout

    private func armTimer() {
        guard timer == nil, let deadline, let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) { loopBound.value.timerFired() }
    }

    private func timerFired() {
        timer = nil
        guard let deadline, sink != nil else { return }
        if deadline <= .now() {
            fail(TransportError(.responseTimeout, "no answer (or a pause in it) for \(timeout)"))
            channel?.close(promise: nil)
        } else {
            armTimer()
        }
    }
}

/// Keep-alive connections from one event loop to one upstream (the app, or an egress endpoint),
/// confined to that loop: every method must be called on it. Idle connections are reused newest
/// first; one idle longer than the idle timeout is closed instead.
final class UpstreamConnectionPool {
    let eventLoop: any EventLoop
    private let target: SocketAddress
    let settings: ConnectionPoolSettings
    private let tls: ClientTLS?
    private var idle: [UpstreamConnection] = []

    init(eventLoop: any EventLoop, target: SocketAddress, config: ConnectionPoolSettings, tls: ClientTLS? = nil) {
        self.eventLoop = eventLoop
        self.target = target
        self.settings = config
        self.tls = tls
    }

    /// An idle, live connection, if there is one (no allocation, no wait).
    func takeIdle() -> UpstreamConnection? {
        let freshSince = NIODeadline.now() - .nanoseconds(settings.idleTimeout.nanoseconds)
        while let c = idle.popLast() {
            if c.isActive && c.idleSince > freshSince { return c }
            c.abandon()
        }
        return nil
    }

    /// Opens a new connection; `done` runs on the pool's loop.
    func connect(_ done: @escaping (Result<UpstreamConnection, TransportError>) -> Void) {
        let tls = self.tls
        let handler = UpstreamConnection(pool: self)
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        let target = self.target
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(settings.connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: tls.hostname))
                    }
                    // Outbound validation off: the request's headers were parsed by llhttp on the way
                    // in, or are the sidecar's own (configured header rules are checked when loaded).
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(to: target)
            .whenComplete { result in
                switch result {
                case .success:
                    done(.success(bound.value))
                case .failure(let error):
                    let kind: TransportError.Kind = error is ChannelError ? .connectTimeout : .connectRefused  // ChannelError here is the connect timeout
                    done(.failure(TransportError(kind, "\(target): \(error)")))
                }
            }
    }

    /// An idle connection, or a new one.
    func acquire(_ done: @escaping (Result<UpstreamConnection, TransportError>) -> Void) {
        if let c = takeIdle() { return done(.success(c)) }
        connect(done)
    }

    func release(_ connection: UpstreamConnection) {
        guard connection.isActive, idle.count < settings.maxIdle else { return connection.abandon() }
        connection.idleSince = .now()
        idle.append(connection)
    }

    func forget(_ connection: UpstreamConnection) {
        idle.removeAll { $0 === connection }
    }

    func closeAll() {
        for c in idle { c.abandon() }
        idle.removeAll()
    }

    /// Sends one whole request and collects the whole response (egress attempts, control-plane
    /// calls). Fails with `TransportError`.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?) -> EventLoopFuture<AppResponse> {
        eventLoop.assertInEventLoop()
        let collector = ResponseCollector(promise: eventLoop.makePromise(of: AppResponse.self))
        let timeout = settings.responseTimeout
        acquire { result in
            switch result {
            case .success(let c):
                c.start(head, sink: collector, timeout: timeout)
                if let body, body.readableBytes > 0 { c.sendBody(body) }
                c.sendEnd()
            case .failure(let error):
                collector.promise.fail(error)
            }
        }
        return collector.promise.futureResult
    }
}

/// A whole response from an upstream.
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

/// Collects a streamed response into an ``AppResponse``.
final class ResponseCollector: UpstreamResponseSink {
    let promise: EventLoopPromise<AppResponse>
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    init(promise: EventLoopPromise<AppResponse>) { self.promise = promise }

    func upstreamHead(_ head: HTTPResponseHead) { self.head = head }
    func upstreamBody(_ chunk: ByteBuffer) {
        var chunk = chunk
        body.writeBuffer(&chunk)
    }
    func upstreamEnd() {
        guard let head else { return promise.fail(TransportError(.protocolViolation, "a response without a head")) }
        promise.succeed(AppResponse(head: head, body: body))
    }
    func upstreamFailed(_ error: TransportError, requestSent: Bool) {
        promise.fail(error)
    }
}
