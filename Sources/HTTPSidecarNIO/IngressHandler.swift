import Foundation
import HTTPSidecar
import Logging
import MeshCore
import NIOCore
import NIOHTTP1
import SidecarAuth

/// One client connection of the ingress: reads a request, applies the middleware decisions, and
/// streams it to the app over the loop's keep-alive pool, streaming the answer back. Bodies are not
/// buffered whole: a part is forwarded as it arrives, and each side's backpressure pauses reading
/// on the other (a slow app slows the client's upload; a slow client slows reading the app).
///
/// Only JWT verification holds a request back (the head waits for the verdict); parts that arrive
/// meanwhile are kept, up to the body limit.
///
/// Requests are answered in order, one at a time. Parts of a pipelined next request that arrive
/// while one is being answered wait in a queue; reading stops while it is long. Reads are not
/// paused per request (NIO's pipelining helper does that, at two `epoll_ctl` calls a request).
///
/// States:
/// - `.idle`: waiting for a head; a header deadline cuts off clients that send heads too slowly.
/// - `.held`: the head waits for JWT verification or for a connection to the app; parts are kept.
/// - `.streaming`: the app has the head; body parts go straight on; the response streams back.
/// - `.draining`: the answer was given without the app (a rejection); the request's end is awaited.
/// - `.closing`: the connection ends after the current write.
final class IngressHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamResponseSink {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    enum State {
        case idle
        case held(Exchange, parts: [ClientRequestPart])
        case streaming(Exchange, UpstreamConnection)
        case draining
        case closing
    }

    /// The request being answered (a class: the state enum carries it without copying its fields).
    final class Exchange {
        let head: ScannedRequestHead
        let upstreamHead: EncodedRequestHead
        let correlationId: String
        let traceId: String
        var responseHeaders: [(String, String)]
        let started: MeshInstant
        var bodyBytes = 0
        var requestEnded = false
        var responseStarted = false
        var status = 0
        let keepAlive: Bool
        /// The route it matched (nil: the default chain), its response rules, and the steps after JWT.
        var route: IngressRoute?
        /// The normalized path policy was matched on (and the app was sent).
        var path = "/"
        var responseRules = HeaderRules()
        var afterJWT: [IngressMiddleware] = []
        /// The connection closes after the answer (the client asked, or an HTTP/1.0 client gets an
        /// answer without a length).
        var closeAfterAnswer = false

        init(head: ScannedRequestHead, upstreamHead: EncodedRequestHead, correlationId: String, traceId: String,
             responseHeaders: [(String, String)], started: MeshInstant, keepAlive: Bool) {
            self.head = head
            self.upstreamHead = upstreamHead
            self.correlationId = correlationId
            self.traceId = traceId
            self.responseHeaders = responseHeaders
            self.started = started
            self.keepAlive = keepAlive
        }
    }

    let generation: Generation<IngressShared>
    /// The configuration generation of the request being handled (read afresh at each request head).
    var shared: IngressShared
    /// The app pool of this loop for ``shared``'s generation, looked up once per generation.
    var pool: UpstreamConnectionPool?
    var poolGeneration: ObjectIdentifier?
    /// `http` or `https`: the listener's scheme, for `X-Forwarded-Proto`.
    let scheme: String
    var state = State.idle
    var context: ChannelHandlerContext?
    /// The connection's bytes: requests read from them, answers written to them.
    let wire = ClientWire()
    /// Parts of pipelined requests that arrived while one was being answered.
    var queued: CircularBuffer<ClientRequestPart> = []
    var readsPaused = false
    var readPending = false
    /// The client is not reading the sidecar's own answers: see ``blockReadsUntilClientReads(_:)``.
    var clientBlocked = false
    /// Inside a read burst from the client: upstream writes are flushed once, at its end.
    var inReadBurst = false
    var upstreamNeedsFlush = false
    /// Header deadline: one timer per connection, re-armed lazily.
    var headerDeadline: NIODeadline?
    var headerTimer: Scheduled<Void>?
    /// The client's address, read once per connection (each read is a getpeername system call).
    var client: String?
    /// Ids (correlation, trace, span) come from a fast generator seeded once per connection from the
    /// system: a getrandom system call per id cost a fifth of the proxy's time.
    var random: SeededRandom = {
        var system = SystemRandom()
        return SeededRandom(seed: system.next())
    }()

    init(generation: Generation<IngressShared>, scheme: String) {
        self.generation = generation
        self.shared = generation.current
        self.scheme = scheme
    }

    func appPool(_ context: ChannelHandlerContext) -> UpstreamConnectionPool {
        let id = ObjectIdentifier(shared.appPools)
        if let pool, poolGeneration == id { return pool }
        let fresh = shared.appPools.pool(for: context.eventLoop, target: shared.app)
        pool = fresh
        poolGeneration = id
        return fresh
    }

    // MARK: Connection events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        wire.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        wire.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        client = context.remoteAddress?.ipAddress
        armHeaderDeadline()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        headerTimer?.cancel()
        headerTimer = nil
        abortExchange()
        context.fireChannelInactive()
    }

    /// Ends the exchange under way, if any, because the client connection failed or went away: the
    /// app connection is given up (it may be mid-message) and the request counted once (499 when
    /// no answer had started). The state becomes `.closing`.
    func abortExchange(answer: Int = 499) {
        switch state {
        case .streaming(let ex, let upstream):
            upstream.abandon()
            finished(ex, status: ex.responseStarted ? ex.status : answer)
        case .held(let ex, _):
            finished(ex, status: answer)
        default:
            break
        }
        state = .closing
    }

    /// A protocol error (malformed framing, smuggling attempt, oversized head): answered with 400 or
    /// 431 when no response is under way, and the connection is closed either way.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        var started = false
        switch state {
        case .streaming(let ex, _): started = ex.responseStarted
        case .closing, .draining: started = true
        default: break
        }
        abortExchange(answer: ProtocolErrors.response(for: error).map { Int($0.status.code) } ?? 499)
        ProtocolErrors.answer(wire, error, responseStarted: started)
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused || clientBlocked { readPending = true } else { context.read() }
    }

    /// Answers the sidecar wrote itself (rejections, preflights) wait in the client's outbound
    /// buffer: while it is over the high-water mark, no more requests are read, so a pipelining
    /// client that never reads cannot grow the sidecar's memory.
    func blockReadsUntilClientReads(_ context: ChannelHandlerContext) {
        if !context.channel.isWritable { clientBlocked = true }
    }

    func pauseReads() { readsPaused = true }

    func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        if readPending, !clientBlocked, let context {
            readPending = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client reads slowly: stop reading the app's answer until it catches up.
        if case .streaming(_, let upstream) = state {
            if context.channel.isWritable { upstream.resumeReading() } else { upstream.pauseReading() }
        }
        if context.channel.isWritable && clientBlocked {
            clientBlocked = false
            drainQueued(context)
            if readPending && !readsPaused && !clientBlocked {
                readPending = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Header deadline

    func armHeaderDeadline() {
        guard let context else { return }
        headerDeadline = .now() + .nanoseconds(shared.config.headerTimeout.nanoseconds)
        guard headerTimer == nil, let deadline = headerDeadline else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        headerTimer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.headerTimerFired() }
    }

    /// The client must send its head, and then each part of its body, within the header timeout:
    /// a client that stalls mid-upload is cut off (408) instead of holding an app connection.
    func headerTimerFired() {
        headerTimer = nil
        guard let deadline = headerDeadline, let context else { return }
        let waitingForBody: Exchange?
        switch state {
        case .idle: waitingForBody = nil
        case .held(let ex, _) where !ex.requestEnded, .streaming(let ex, _) where !ex.requestEnded: waitingForBody = ex
        default: return
        }
        if deadline <= .now() {
            guard let ex = waitingForBody else { return context.close(promise: nil) }  // no head in time: no answer, just close
            let started = ex.responseStarted
            abortExchange(answer: 408)
            if started { return context.close(promise: nil) }
            reject(context, ErrorResponse(status: .requestTimeout, code: "body_timeout",
                                          message: "the request body stalled for \(shared.config.headerTimeout)", headers: ex.responseHeaders), close: true)
        } else {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            headerTimer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.headerTimerFired() }
        }
    }

    // MARK: Reading requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadBurst = true
        wire.received(unwrapInboundIn(data))
        do {
            while let part = try wire.nextPart() {
                // The client is not reading our answers: what is still arriving from the read burst
                // under way is kept (bounded by the burst), not answered, until it reads again.
                if clientBlocked { enqueue(part) } else { handle(part, context) }
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        if upstreamNeedsFlush, case .streaming(_, let upstream) = state { upstream.flush() }
        upstreamNeedsFlush = false
        context.fireChannelReadComplete()
    }

    func handle(_ part: ClientRequestPart, _ context: ChannelHandlerContext) {
        switch state {
        case .idle:
            guard case .head(let head) = part else { return }  // stray parts of a request already answered
            headerDeadline = nil
            shared = generation.current
            begin(context, head)
        case .held(let ex, var parts):
            if ex.requestEnded { return enqueue(part) }
            guard admitBody(part, ex, context) else { return }
            bodyProgress(ex)
            state = .idle  // keeps `parts` uniquely referenced while it grows
            parts.append(part)
            state = .held(ex, parts: parts)
        case .streaming(let ex, let upstream):
            if ex.requestEnded { return enqueue(part) }
            guard admitBody(part, ex, context) else { return }
            bodyProgress(ex)
            forward(part, to: upstream)
        case .draining:
            if case .end = part { requestDone(context) }
        case .closing:
            break
        }
    }

    /// Counts body bytes against the limit; answers 413 (and closes) when over it.
    func admitBody(_ part: ClientRequestPart, _ ex: Exchange, _ context: ChannelHandlerContext) -> Bool {
        switch part {
        case .body(let chunk):
            ex.bodyBytes += chunk.readableBytes
            if ex.bodyBytes > shared.config.maxBodyBytes {
                let started = ex.responseStarted
                abortExchange(answer: 413)  // the app connection is given up; the request counted once
                if started {
                    context.close(promise: nil)
                } else {
                    reject(context, ErrorResponse(status: .payloadTooLarge, code: "body_too_large",
                                                  message: "the request body exceeds \(shared.config.maxBodyBytes) bytes", headers: ex.responseHeaders), close: true)
                }
                return false
            }
        case .end:
            ex.requestEnded = true
        case .head:
            break
        }
        return true
    }

    /// A body part (or the end) arrived: the body deadline moves on, or ends with the body.
    func bodyProgress(_ ex: Exchange) {
        if ex.requestEnded { headerDeadline = nil } else { armHeaderDeadline() }
    }

    func enqueue(_ part: ClientRequestPart) {
        queued.append(part)
        if queued.count > 64 { pauseReads() }
    }

    func forward(_ part: ClientRequestPart, to upstream: UpstreamConnection) {
        switch part {
        case .body(let chunk):
            upstream.sendBody(chunk)
            if inReadBurst { upstreamNeedsFlush = true } else { upstream.flush() }
            if !upstream.isWritable { pauseReads() }  // the app reads slowly: stop reading the client
        case .end:
            upstream.sendEnd()
            upstreamNeedsFlush = false
        case .head:
            break
        }
    }

}

