import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Keep-alive connections from one event loop to one upstream (the app, or an egress endpoint),
/// confined to that loop: every method must be called on it. Idle connections are reused newest
/// first; one idle longer than the idle timeout is closed instead.
package final class UpstreamConnectionPool {
    package let eventLoop: any EventLoop
    private let target: SocketAddress
    package let settings: ConnectionPoolSettings
    private let tls: ClientTLS?
    private var idle: [UpstreamConnection] = []

    package init(eventLoop: any EventLoop, target: SocketAddress, config: ConnectionPoolSettings, tls: ClientTLS? = nil) {
        self.eventLoop = eventLoop
        self.target = target
        self.settings = config
        self.tls = tls
    }

    /// An idle, live connection, if there is one (no allocation, no wait).
    package func takeIdle() -> UpstreamConnection? {
        let freshSince = NIODeadline.now() - .nanoseconds(settings.idleTimeout.nanoseconds)
        while let c = idle.popLast() {
            if c.isActive && c.idleSince > freshSince { return c }
            c.abandon()
        }
        return nil
    }

    /// Opens a new connection; `done` runs on the pool's loop.
    package func connect(_ done: @escaping (Result<UpstreamConnection, TransportError>) -> Void) {
        let tls = self.tls
        let handler = UpstreamConnection(pool: self, tls: tls != nil)
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        let finish = NIOLoopBound(done, eventLoop: eventLoop)  // the connect completes on this loop
        let target = self.target
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(settings.connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: tls.hostname))
                    }
                    // Outbound validation off: the request's headers were read by the framing scanner
                    // on the way in, or are the sidecar's own (configured header rules are checked
                    // when loaded). Answers are framed by the sidecar's own scanner too.
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(to: target)
            .whenComplete { result in
                switch result {
                case .success:
                    finish.value(.success(bound.value))
                case .failure(let error):
                    let kind: TransportError.Kind = error is ChannelError ? .connectTimeout : .connectRefused  // ChannelError here is the connect timeout
                    finish.value(.failure(TransportError(kind, "\(target): \(error)")))
                }
            }
    }

    /// An idle connection, or a new one.
    package func acquire(_ done: @escaping (Result<UpstreamConnection, TransportError>) -> Void) {
        if let c = takeIdle() { return done(.success(c)) }
        connect(done)
    }

    package func release(_ connection: UpstreamConnection) {
        guard connection.isActive, idle.count < settings.maxIdle else { return connection.abandon() }
        connection.idleSince = .now()
        idle.append(connection)
    }

    package func forget(_ connection: UpstreamConnection) {
        idle.removeAll { $0 === connection }
    }

    /// Sends one whole request and collects the whole response (token endpoint, JWKS URL, readiness
    /// probe, pushes to the app). The whole answer must arrive within the response timeout (a peer
    /// that trickles it a byte at a time is cut off) and fit in `maxResponseBytes`; either way the
    /// connection is closed, so nothing of the exchange stays open. Fails with `TransportError`.
    package func send(_ head: HTTPRequestHead, body: ByteBuffer?) -> EventLoopFuture<AppResponse> {
        eventLoop.assertInEventLoop()
        let collector = ResponseCollector(promise: eventLoop.makePromise(of: AppResponse.self), limit: settings.maxResponseBytes)
        let timeout = settings.responseTimeout
        let deadline = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            collector.giveUp(TransportError(.responseTimeout, "the whole answer did not arrive within \(timeout)"))
        }
        collector.promise.futureResult.whenComplete { _ in deadline.cancel() }
        acquire { result in
            switch result {
            case .success(let c):
                guard !collector.isOver else { return c.abandon() }
                collector.connection = c
                c.start(EncodedRequestHead(head), sink: collector, timeout: timeout)
                if let body, body.readableBytes > 0 { c.sendBody(body) }
                c.sendEnd()
            case .failure(let error):
                collector.giveUp(error)
            }
        }
        return collector.promise.futureResult
    }
}

/// A whole response from an upstream.
package struct AppResponse {
    package var head: HTTPResponseHead
    package var body: ByteBuffer
}

/// Timeouts and limits of one connection pool.
package struct ConnectionPoolSettings: Sendable, Hashable {
    package var connectTimeout: Duration
    /// The whole response must arrive within this long.
    package var responseTimeout: Duration
    package var maxIdle: Int
    /// Largest whole answer taken by ``UpstreamConnectionPool/send(_:body:)`` (body bytes).
    package var maxResponseBytes = 1 << 20
    /// A pooled connection unused for this long is closed rather than reused (the peer may have
    /// dropped it already).
    package var idleTimeout: Duration = .seconds(60)

    package init(connectTimeout: Duration, responseTimeout: Duration, maxIdle: Int, maxResponseBytes: Int = 1 << 20,
                 idleTimeout: Duration = .seconds(60)) {
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        self.maxIdle = maxIdle
        self.maxResponseBytes = maxResponseBytes
        self.idleTimeout = idleTimeout
    }
}

/// Collects a streamed response into an ``AppResponse``, up to a size limit; ``giveUp(_:)`` ends
/// the exchange early (its connection closed).
package final class ResponseCollector: UpstreamResponseSink {
    package let promise: EventLoopPromise<AppResponse>
    /// The connection carrying the exchange, once it has one.
    weak var connection: UpstreamConnection?
    private let limit: Int
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private(set) var isOver = false

    package init(promise: EventLoopPromise<AppResponse>, limit: Int) {
        self.promise = promise
        self.limit = limit
    }

    /// Ends the exchange with `error` and closes its connection; nothing after it counts.
    package func giveUp(_ error: TransportError) {
        guard !isOver else { return }
        isOver = true
        connection?.abandon()
        promise.fail(error)
    }

    package func upstreamHead(_ head: ScannedResponseHead) { self.head = head.nio }
    package func upstreamBody(_ chunk: ByteBuffer) {
        guard !isOver else { return }
        guard body.readableBytes + chunk.readableBytes <= limit else {
            return giveUp(TransportError(.protocolViolation, "the answer is larger than \(limit) bytes"))
        }
        var chunk = chunk
        body.writeBuffer(&chunk)
    }
    package func upstreamEnd() {
        guard !isOver else { return }
        isOver = true
        guard let head else { return promise.fail(TransportError(.protocolViolation, "a response without a head")) }
        promise.succeed(AppResponse(head: head, body: body))
    }
    package func upstreamFailed(_ error: TransportError, requestSent: Bool) {
        guard !isOver else { return }
        isOver = true
        promise.fail(error)
    }
}
