import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// Receives one response from an ``UpstreamConnection`` as it streams in. Called on the
/// connection's event loop, in order: `head`, any `body`s, then `end`; or `failed` once at any point.
package protocol UpstreamResponseSink: AnyObject {
    func upstreamHead(_ head: ScannedResponseHead)
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
    package func upstreamReadComplete() {}
    package func upstreamWritabilityChanged(_ writable: Bool) {}
}

/// One keep-alive HTTP/1.1 connection to an upstream, driving one exchange at a time: the NIO driver
/// of the sans-IO ``UpstreamLink``, which decides the response timeout, reuse and whether the request
/// was sent (the simulator's drivers run the same link). The request is written part by part as it
/// arrives, the response handed on part by part as it is read. The connection's one pipeline stage
/// (after TLS), so no part crosses a handler boundary. Backpressure both ways: ``pauseReading()``
/// stops reading the response while the downstream cannot take more, and the sink hears when the
/// request side stops being writable.
///
/// One timer per connection for the link's deadline, re-armed lazily: progress only moves the
/// deadline, so a busy connection does not schedule and cancel a task per request.
package final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private(set) var channel: (any Channel)?
    private var context: ChannelHandlerContext?
    private weak var pool: UpstreamConnectionPool?
    private var sink: (any UpstreamResponseSink)?
    private var link: UpstreamLink
    private var paused = false
    private var readPending = false
    private var timer: Scheduled<Void>?
    /// When it went back to the pool (for the idle timeout).
    package var idleSince = NIODeadline.now()

    /// - Parameter tls: whether a TLS handler sits before this one.
    package init(pool: UpstreamConnectionPool, tls: Bool) {
        self.pool = pool
        link = UpstreamLink(tls: tls, connectTimeout: pool.settings.connectTimeout, now: Self.now)
    }

    private static var now: MeshInstant { MeshInstant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds)) }

    package var isActive: Bool { channel?.isActive ?? false }
    package var isWritable: Bool { channel?.isWritable ?? false }

    // MARK: Driving an exchange

    /// Starts an exchange: writes the head (flushed with the first body part or the end).
    package func start(_ head: EncodedRequestHead, sink: any UpstreamResponseSink, timeout: Duration) {
        self.sink = sink
        let context = self.context
        link.start(head, timeout: timeout, now: Self.now) { context?.write(NIOAny($0), promise: nil) }
        armTimer()
    }

    /// Writes a body part; it leaves with the next ``flush()`` or ``sendEnd()``.
    package func sendBody(_ chunk: ByteBuffer) {
        let context = self.context
        link.send(.body(chunk), now: Self.now) { context?.write(NIOAny($0), promise: nil) }
    }

    package func flush() { context?.flush() }

    package func sendEnd() {
        let context = self.context
        link.send(.end, now: Self.now) { context?.write(NIOAny($0), promise: nil) }
        context?.flush()
    }

    /// The downstream cannot take more: stop reading the response until ``resumeReading()``.
    package func pauseReading() { paused = true }

    package func resumeReading() {
        guard paused else { return }
        paused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Gives up on the exchange (the client went away, the attempt timed out, or the request was
    /// refused midway): the connection is reset, since the peer may still be reading or writing a
    /// message.
    package func abandon() {
        sink = nil
        link.abandon()
        reset()
    }

    /// Closes the connection abortively (`SO_LINGER` 0, so the kernel sends RST): request bytes still
    /// in the send queue, or waiting for a retransmission through a partition, are discarded rather
    /// than reaching the peer after the exchange was given up (a request the client was already told
    /// failed, or has retried elsewhere, must not run late). The simulator's drivers do the same.
    private func reset() {
        guard let channel else { return }
        if let socket = channel as? SocketOptionProvider {
            _ = socket.setSoLinger(linger(l_onoff: 1, l_linger: 0))
        }
        channel.close(promise: nil)
    }

    // MARK: Channel events

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        channel = context.channel
        if context.channel.isActive { link.connected(now: Self.now) }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        link.connected(now: Self.now)
        context.fireChannelActive()
    }

    package func read(context: ChannelHandlerContext) {
        if paused {
            readPending = true
        } else {
            context.read()
        }
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.received(unwrapInboundIn(data))
        let now = Self.now
        while let event = link.next(now: now) { handle(event) }
    }

    /// One event of the exchange: handed to the sink (bytes of an exchange already given up are
    /// never read); at its end the connection goes back to the pool or is closed.
    private func handle(_ event: UpstreamLinkEvent) {
        guard let sink else { return }
        switch event {
        case .head(let head):
            sink.upstreamHead(head)
        case .body(let chunk):
            sink.upstreamBody(chunk)
        case .end(let reuse):
            self.sink = nil
            if reuse, let pool {
                pool.release(self)
            } else {
                channel?.close(promise: nil)
            }
            sink.upstreamEnd()
        case .failed(let error, let requestSent):
            self.sink = nil
            reset()
            sink.upstreamFailed(error, requestSent: requestSent)
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { link.handshakeCompleted() }
        context.fireUserInboundEventTriggered(event)
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        sink?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        sink?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        pool?.forget(self)
        // The close ends a body delimited by it; anything else unfinished failed.
        if let event = link.peerClosed() { handle(event) }
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let tls = error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
        if let event = link.failed(TransportError(tls ? .tls : .protocolViolation, "\(error)")) { handle(event) }
        context.close(promise: nil)
    }

    // MARK: The link's deadline

    private func armTimer() {
        guard timer == nil, let deadline = link.deadline, let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, deadline.nanoseconds)))) { loopBound.value.timerFired() }
    }

    private func timerFired() {
        timer = nil
        guard sink != nil else { return }
        if let event = link.deadlinePassed(now: Self.now) {
            handle(event)
        } else {
            armTimer()
        }
    }
}
