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

/// One keep-alive HTTP/1.1 connection to an upstream, driving one exchange at a time: the request
/// is written part by part as it arrives, the response handed on part by part as it is read. The
/// connection's one pipeline stage (after TLS): it frames the bytes itself (``HTTP1RequestEncoder``
/// out, ``HTTP1ResponseDecoder`` in), so no part crosses a handler boundary.
/// Backpressure both ways: ``pauseReading()`` stops reading the response while the downstream
/// cannot take more, and the sink hears when the request side stops being writable.
///
/// The response timeout bounds the wait for the head and then every gap between reads (a long
/// download that keeps moving is never cut). It uses one timer per connection, re-armed lazily:
/// progress only moves a deadline, so a busy connection does not schedule and cancel a task per request.
package final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private(set) var channel: (any Channel)?
    private var context: ChannelHandlerContext?
    private weak var pool: UpstreamConnectionPool?
    private var sink: (any UpstreamResponseSink)?
    private var codec = UpstreamCodec()
    private var requestWritten = false
    /// Whether bytes written now can leave for the peer: at once on plain TCP, only after the
    /// handshake on TLS (NIOSSL holds them until then).
    private var secured: Bool
    private var requestEnded = false
    private var responseEnded = false
    private var reusable = true
    private var paused = false
    private var readPending = false
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timeout: Duration = .seconds(30)
    /// When it went back to the pool (for the idle timeout).
    package var idleSince = NIODeadline.now()

    /// - Parameter tls: whether a TLS handler sits before this one.
    package init(pool: UpstreamConnectionPool, tls: Bool) {
        self.pool = pool
        secured = !tls
    }

    package var isActive: Bool { channel?.isActive ?? false }
    package var isWritable: Bool { channel?.isWritable ?? false }

    // MARK: Driving an exchange

    /// Starts an exchange: writes the head (flushed with the first body part or the end).
    package func start(_ head: EncodedRequestHead, sink: any UpstreamResponseSink, timeout: Duration) {
        self.sink = sink
        requestWritten = false
        requestEnded = false
        responseEnded = false
        self.timeout = timeout
        deadline = .now() + .nanoseconds(timeout.nanoseconds)
        armTimer()
        write(.head(head.bytes, head.kind))
    }

    /// Writes a body part; it leaves with the next ``flush()`` or ``sendEnd()``. An upload that
    /// keeps moving keeps the exchange alive: the response timeout counts from the last progress in
    /// either direction, so a slow but steady upload is not cut.
    package func sendBody(_ chunk: ByteBuffer) {
        deadline = .now() + .nanoseconds(timeout.nanoseconds)
        write(.body(chunk))
    }

    package func flush() { context?.flush() }

    package func sendEnd() {
        requestEnded = true
        deadline = .now() + .nanoseconds(timeout.nanoseconds)
        write(.end)
        context?.flush()
        if responseEnded { complete() }
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

    /// Gives up on the exchange (the client went away or the request was refused midway): the
    /// connection is closed, since the peer may still be reading or writing a message.
    package func abandon() {
        sink = nil
        reusable = false
        channel?.close(promise: nil)
    }

    private func write(_ part: UpstreamRequestPart) {
        guard let context else { return }
        requestWritten = true
        codec.encode(part, allocator: context.channel.allocator) { context.write(NIOAny($0), promise: nil) }
    }

    // MARK: Channel events

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        channel = context.channel
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    package func read(context: ChannelHandlerContext) {
        if paused {
            readPending = true
        } else {
            context.read()
        }
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        codec.received(unwrapInboundIn(data))
        do {
            while let part = try codec.nextPart() { received(part) }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    /// One part of the answer: handed to the sink (bytes of an exchange already given up are dropped).
    private func received(_ part: UpstreamResponsePart) {
        guard let sink else { return }
        switch part {
        case .head(let head):
            if !head.scan.keepAlive { reusable = false }
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
            // Bytes after the answer must never become the next request's answer.
            if !codec.reusableAfterAnswer { reusable = false }
            complete()
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { secured = true }
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
        // The close ends a body delimited by it.
        if let end = codec.endOfStream() { received(end) }
        timer?.cancel()
        timer = nil
        pool?.forget(self)
        fail(TransportError(.reset, "the upstream closed the connection"))
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
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
        // Whether any request byte may have left, whatever the error's kind: a TLS error after the
        // handshake (a peer that read the request and closed without close_notify) is no proof
        // that the request went unread, so it counts as sent.
        sink.upstreamFailed(error, requestSent: requestWritten && secured)
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
