import Foundation
import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1
import SidecarAuth

/// The ingress's forwarding and answers: taking an app connection, relaying the app's answer as it
/// streams back (``UpstreamResponseSink``), answering without the app, and closing the books on
/// each exchange (metrics, access log).
extension IngressHandler {
    // MARK: Forwarding

    /// Takes an app connection (at once when one is idle) and starts streaming the held request.
    func connect(_ context: ChannelHandlerContext) {
        let pool = appPool(context)
        if let upstream = pool.takeIdle() { return startStreaming(context, upstream) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        pool.connect { result in
            let (handler, context) = bound.value
            switch result {
            case .success(let upstream):
                guard case .held = handler.state else { return upstream.abandon() }  // the client left meanwhile
                handler.startStreaming(context, upstream)
            case .failure(let error):
                handler.upstreamFailed(error, requestSent: false)
            }
        }
    }

    func startStreaming(_ context: ChannelHandlerContext, _ upstream: UpstreamConnection) {
        guard case .held(let ex, let parts) = state else { return upstream.abandon() }
        state = .streaming(ex, upstream)
        upstream.start(ex.upstreamHead, sink: self, timeout: shared.config.upstreamTimeout)
        for part in parts { forward(part, to: upstream) }
        if !ex.requestEnded {
            // The head goes out now if the body may be slow to come (or at the end of this read burst).
            if inReadBurst { upstreamNeedsFlush = true } else { upstream.flush() }
        }
        if !context.channel.isWritable { upstream.pauseReading() }
    }

    // MARK: The app's answer (UpstreamResponseSink)

    func upstreamHead(_ response: ScannedResponseHead) {
        guard case .streaming(let ex, _) = state else { return }
        let (head, closeAfter) = ProxyHeaders.relayedHead(scanned: response, rules: ex.responseRules, setting: ex.responseHeaders,
                                                          requestVersion: ex.head.version, keepAlive: ex.keepAlive)
        ex.closeAfterAnswer = closeAfter
        ex.responseStarted = true
        ex.status = response.status
        wire.send(.relayed(consume head))
    }

    func upstreamBody(_ chunk: ByteBuffer) {
        guard case .streaming = state else { return }
        wire.send(.body(.byteBuffer(chunk)))
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamEnd() {
        guard let context, case .streaming(let ex, _) = state else { return }
        finished(ex, status: ex.status)
        if !ex.requestEnded {
            // The app answered before the request was complete: the rest is not read; the connection closes.
            state = .closing
            wire.sendAndClose(.end)
            return
        }
        if !ex.closeAfterAnswer {
            wire.sendAndFlush(.end)
            requestDone(context)
        } else {
            state = .closing
            wire.sendAndClose(.end)
        }
    }

    func upstreamFailed(_ error: TransportError, requestSent: Bool) {
        guard let context else { return }
        let ex: Exchange
        switch state {
        case .streaming(let e, _), .held(let e, _): ex = e
        default: return
        }
        if ex.responseStarted {
            finished(ex, status: ex.status)
            state = .closing
            context.close(promise: nil)  // the answer broke off midway: the client must see it broken
            return
        }
        answerWithoutApp(context, ex, IngressAdmission.appFailure(timedOut: error.kind == .responseTimeout, "\(error)", headers: ex.responseHeaders))
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable { resumeReads() } else { pauseReads() }
    }

    // MARK: Answers

    /// Answers an admitted request without (or instead of) the app: 401/403/429 after JWT, 502/504.
    func answerWithoutApp(_ context: ChannelHandlerContext, _ ex: Exchange, _ error: ErrorResponse) {
        finished(ex, status: Int(error.status.code))
        let close = !ex.keepAlive || !ex.requestEnded
        write(context, status: error.status, headers: error.headers + [("content-type", "application/json")],
              body: error.body(allocator: context.channel.allocator), close: close, method: ex.head.method.nio)
        if close { state = .closing } else { requestDone(context) }
    }

    /// Refuses a request at its head (IP, CORS, rate limit, declared size): nothing reaches the app.
    func refuse(_ context: ChannelHandlerContext, _ head: ScannedRequestHead, _ error: ErrorResponse, close: Bool) {
        refuse(context, head, status: error.status, headers: error.headers + [("content-type", "application/json")],
               body: error.body(allocator: context.channel.allocator), close: close)
    }

    func refuse(_ context: ChannelHandlerContext, _ head: ScannedRequestHead, status: HTTPResponseStatus,
                        headers: [(String, String)], body: ByteBuffer?, close: Bool) {
        shared.metrics.finished("ingress", status: Int(status.code), seconds: 0)
        write(context, status: status, headers: headers, body: body, close: close, method: head.method.nio)
        // Kept open only for a request without a body: its end is still to come.
        state = close ? .closing : .draining
    }

    func reject(_ context: ChannelHandlerContext, _ error: ErrorResponse, close: Bool) {
        write(context, status: error.status, headers: error.headers + [("content-type", "application/json")],
              body: error.body(allocator: context.channel.allocator), close: close, method: .GET)
        state = .closing
    }

    func write(_ context: ChannelHandlerContext, status: HTTPResponseStatus, headers: [(String, String)], body: ByteBuffer?, close: Bool, method: HTTPMethod) {
        ResponseWriter.write(wire, status: status, headers: headers, body: body, close: close, method: method)
        blockReadsUntilClientReads(context)
    }

    /// The exchange is over and the connection stays: back to idle, then the queued parts of the
    /// next request (as many as the state takes without queueing them again, so order is kept).
    func requestDone(_ context: ChannelHandlerContext) {
        state = .idle
        armHeaderDeadline()
        drainQueued(context)
    }

    /// Feeds queued parts while the state takes them and the client reads our answers.
    func drainQueued(_ context: ChannelHandlerContext) {
        while !clientBlocked, let part = queued.first, takesPartNow {
            queued.removeFirst()
            handle(part, context)
        }
        if queued.count <= 64 { resumeReads() }
    }

    /// Whether ``handle(_:_:)`` would act on a part now rather than queue it.
    var takesPartNow: Bool {
        switch state {
        case .idle, .draining: return true
        case .held(let ex, _), .streaming(let ex, _): return !ex.requestEnded
        case .closing: return false
        }
    }

    func finished(_ ex: Exchange, status: Int) {
        shared.metrics.inFlight("ingress", shared.inFlight.decrement())
        let elapsed = shared.clock.now - ex.started
        shared.metrics.finished("ingress", status: status, seconds: elapsed.seconds)
        if let route = ex.route { shared.metrics.routeFinished(route.prefix, status: status) }
        if let log = shared.config.accessLog {
            log.record([
                ("time", .string(Date().formatted(.iso8601))), ("client", .string(client ?? "")),
                ("method", .string(ex.head.method.text)), ("path", .string(log.loggedTarget(path: ex.path, uri: ex.head.target))), ("status", .int(status)),
                ("duration_ms", .double(elapsed.seconds * 1000)), ("bytes_in", .int(ex.bodyBytes)),
                ("correlation_id", .string(ex.correlationId)), ("trace_id", .string(ex.traceId)),
                ("user_agent", .string(ex.head.first("user-agent") ?? "")),
            ])
        }
    }
}
