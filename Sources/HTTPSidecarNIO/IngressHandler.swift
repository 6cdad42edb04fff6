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
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case held(Exchange, parts: [HTTPServerRequestPart])
        case streaming(Exchange, UpstreamConnection)
        case draining
        case closing
    }

    /// The request being answered (a class: the state enum carries it without copying its fields).
    private final class Exchange {
        let head: HTTPRequestHead
        let upstreamHead: HTTPRequestHead
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
        var responseRules = HeaderRules()
        var afterJWT: [IngressMiddleware] = []
        /// The answer is delimited by closing (an HTTP/1.0 client and an answer without a length).
        var closeAfterAnswer = false

        init(head: HTTPRequestHead, upstreamHead: HTTPRequestHead, correlationId: String, traceId: String,
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

    private let generation: IngressGeneration
    /// The configuration generation of the request being handled (read afresh at each request head).
    private var shared: IngressShared
    /// The app pool of this loop for ``shared``'s generation, looked up once per generation.
    private var pool: UpstreamConnectionPool?
    private var poolGeneration: ObjectIdentifier?
    /// `http` or `https`: the listener's scheme, for `X-Forwarded-Proto`.
    private let scheme: String
    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// Parts of pipelined requests that arrived while one was being answered.
    private var queued: CircularBuffer<HTTPServerRequestPart> = []
    private var readsPaused = false
    private var readPending = false
    /// Inside a read burst from the client: upstream writes are flushed once, at its end.
    private var inReadBurst = false
    private var upstreamNeedsFlush = false
    /// Header deadline: one timer per connection, re-armed lazily.
    private var headerDeadline: NIODeadline?
    private var headerTimer: Scheduled<Void>?
    /// The client's address, read once per connection (each read is a getpeername system call).
    private var client: String?
    /// Ids (correlation, trace, span) come from a fast generator seeded once per connection from the
    /// system: a getrandom system call per id cost a fifth of the proxy's time.
    private var random: SeededRandom = {
        var system = SystemRandom()
        return SeededRandom(seed: system.next())
    }()

    init(generation: IngressGeneration, scheme: String) {
        self.generation = generation
        self.shared = generation.current
        self.scheme = scheme
    }

    private func appPool(_ context: ChannelHandlerContext) -> UpstreamConnectionPool {
        let id = ObjectIdentifier(shared.appPools)
        if let pool, poolGeneration == id { return pool }
        let fresh = shared.appPools.pool(for: context.eventLoop, target: shared.app)
        pool = fresh
        poolGeneration = id
        return fresh
    }

    // MARK: Connection events

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

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
    private func abortExchange(answer: Int = 499) {
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
        abortExchange(answer: (error as? HTTPParserError).map { Int(ProtocolErrors.response(for: $0).status.code) } ?? 499)
        ProtocolErrors.answer(context, error, responseStarted: started)
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused { readPending = true } else { context.read() }
    }

    private func pauseReads() { readsPaused = true }

    private func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client reads slowly: stop reading the app's answer until it catches up.
        if case .streaming(_, let upstream) = state {
            if context.channel.isWritable { upstream.resumeReading() } else { upstream.pauseReading() }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Header deadline

    private func armHeaderDeadline() {
        guard let context else { return }
        headerDeadline = .now() + .nanoseconds(shared.config.headerTimeout.nanoseconds)
        guard headerTimer == nil, let deadline = headerDeadline else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        headerTimer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.headerTimerFired() }
    }

    /// The client must send its head, and then each part of its body, within the header timeout:
    /// a client that stalls mid-upload is cut off (408) instead of holding an app connection.
    private func headerTimerFired() {
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
        handle(unwrapInboundIn(data), context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        if upstreamNeedsFlush, case .streaming(_, let upstream) = state { upstream.flush() }
        upstreamNeedsFlush = false
        context.fireChannelReadComplete()
    }

    private func handle(_ part: HTTPServerRequestPart, _ context: ChannelHandlerContext) {
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
    private func admitBody(_ part: HTTPServerRequestPart, _ ex: Exchange, _ context: ChannelHandlerContext) -> Bool {
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
    private func bodyProgress(_ ex: Exchange) {
        if ex.requestEnded { headerDeadline = nil } else { armHeaderDeadline() }
    }

    private func enqueue(_ part: HTTPServerRequestPart) {
        queued.append(part)
        if queued.count > 64 { pauseReads() }
    }

    private func forward(_ part: HTTPServerRequestPart, to upstream: UpstreamConnection) {
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

    // MARK: Middleware decisions

    private func begin(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let config = shared.config
        let closeAfter = head.hasBody || !head.isKeepAlive
        let route = config.routes.isEmpty ? nil : config.route(for: head.uri)
        let chain = route?.middleware ?? shared.defaultChain
        let correlation = head.headers.first(name: "x-correlation-id").flatMap { $0.isEmpty || $0.count > 128 ? nil : $0 }
            ?? Self.newCorrelationId(&random)
        var responseHeaders = [("x-correlation-id", correlation)]
        // RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host (two are a smuggling vector).
        let hosts = head.headers["host"].count
        if hosts > 1 || (hosts == 0 && head.version.minor >= 1) {
            return refuse(context, head, ErrorResponse(status: .badRequest, code: "bad_host",
                                                       message: hosts > 1 ? "more than one Host header" : "an HTTP/1.1 request needs a Host header",
                                                       headers: responseHeaders), close: true)
        }

        // The steps before JWT run at the head; JWT and what follows it run once the verdict is in.
        var rest = chain[...]
        while let step = rest.first, step != .jwt {
            rest = rest.dropFirst()
            switch step {
            case .ipFilter:
                if !config.ipFilter.allow.isEmpty || !config.ipFilter.deny.isEmpty {
                    guard let client, config.ipFilter.permits(client) else {
                        return refuse(context, head, ErrorResponse(status: .forbidden, code: "ip_denied", message: "this client address is not allowed",
                                                                   headers: responseHeaders), close: true)
                    }
                }
            case .cors:
                guard let cors = config.cors else { continue }
                switch cors.decide(method: head.method.rawValue, origin: head.headers.first(name: "origin"),
                                   requestMethod: head.headers.first(name: "access-control-request-method"),
                                   requestHeaders: head.headers.first(name: "access-control-request-headers")) {
                case .notCORS:
                    break
                case .preflight(let h):
                    return refuse(context, head, status: .noContent, headers: responseHeaders + h.pairs.map { ($0.name, $0.value) }, body: nil, close: closeAfter)
                case .rejected(let reason):
                    if head.method == .OPTIONS {
                        return refuse(context, head, ErrorResponse(status: .forbidden, code: "cors_rejected", message: reason, headers: responseHeaders), close: closeAfter)
                    }
                case .actual(let h):
                    responseHeaders += h.pairs.map { ($0.name, $0.value) }
                }
            case .rateLimit:
                if let refusal = rateLimit(route, head: head, subject: nil, &responseHeaders) { return refuse(context, head, refusal, close: closeAfter) }
            case .jwt:
                break
            }
        }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > config.maxBodyBytes {
            return refuse(context, head, ErrorResponse(status: .payloadTooLarge, code: "body_too_large",
                                                       message: "the request body exceeds \(config.maxBodyBytes) bytes", headers: responseHeaders), close: true)
        }

        let rules = route?.headers ?? config.headers
        let (upstreamHead, traceId) = upstreamRequest(head, correlation, rules.request)
        let ex = Exchange(head: head, upstreamHead: upstreamHead, correlationId: correlation, traceId: traceId,
                          responseHeaders: responseHeaders, started: shared.clock.now, keepAlive: head.isKeepAlive)
        ex.route = route
        ex.responseRules = rules.response
        ex.afterJWT = Array(rest.dropFirst())
        shared.metrics.inFlight("ingress", shared.inFlight.increment())
        if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        state = .held(ex, parts: [])
        if head.hasBody { armHeaderDeadline() }  // the body must keep coming, too
        if rest.first == .jwt, let jwt = config.jwt { authenticate(context, jwt, head) } else { connect(context) }
    }

    /// The request as the app sees it: hop-by-hop headers gone, forwarding, correlation and trace
    /// headers set, the configured rules applied.
    private func upstreamRequest(_ head: HTTPRequestHead, _ correlation: String, _ rules: HeaderRules) -> (HTTPRequestHead, String) {
        var upstream = head
        let chunked = head.headers.first(name: "transfer-encoding")?.lowercased().contains("chunked") ?? false
        ProxyHeaders.removeHopByHop(&upstream.headers)
        upstream.headers.remove(name: "expect")
        if chunked { upstream.headers.add(name: "transfer-encoding", value: "chunked") }
        ProxyHeaders.addForwarded(&upstream.headers, client: client, proto: scheme)
        upstream.headers.replaceOrAdd(name: "x-correlation-id", value: correlation)
        let (trace, _) = TracePropagation.nextHop(
            traceparent: head.headers.first(name: "traceparent"), tracestate: head.headers.first(name: "tracestate"), random: &random)
        upstream.headers.replaceOrAdd(name: "traceparent", value: trace.traceParentHeaderValue)
        upstream.headers.remove(name: "tracestate")
        if let state = trace.traceStateHeaderValue { upstream.headers.add(name: "tracestate", value: state) }
        rules.apply(to: &upstream.headers)
        upstream.version = .http1_1
        return (upstream, "\(trace.traceID)")
    }

    /// Runs the route's rate limit (or the listener's) for this request's key; the 429 to answer
    /// when over it. `subject` is the verified token's subject, when JWT ran before.
    private func rateLimit(_ route: IngressRoute?, head: HTTPRequestHead, subject: String?, _ responseHeaders: inout [(String, String)]) -> ErrorResponse? {
        guard let limiter = route.flatMap({ shared.routeLimiters[$0.prefix] }) ?? shared.limiter else { return nil }
        let key: String
        switch shared.config.rateLimitKey {
        case .header(let name): key = head.headers.first(name: name).map { "h:" + $0 } ?? (client ?? "unknown")
        case .jwtSubject: key = subject.map { "s:" + $0 } ?? (client ?? "unknown")
        case .clientAddress: key = client ?? "unknown"
        }
        let now = shared.clock.now
        let decision = limiter.withLockedValue { $0.admit(key, now: now) }
        let reset = Int((decision.reset.seconds).rounded(.up))
        responseHeaders += [("ratelimit-limit", String(decision.limit)), ("ratelimit-remaining", String(decision.remaining)), ("ratelimit-reset", String(reset))]
        guard decision.allowed else {
            let retry = Int((decision.retryAfter ?? .seconds(1)).seconds.rounded(.up))
            return ErrorResponse(status: .tooManyRequests, code: "rate_limited", message: "too many requests; retry in \(retry)s",
                                 headers: responseHeaders + [("retry-after", String(max(1, retry)))])
        }
        return nil
    }

    static func newCorrelationId(_ random: inout SeededRandom) -> String {
        let a = random.next(), b = random.next()
        return String(a, radix: 16).leftPadded(16) + String(b, radix: 16).leftPadded(16)
    }

    /// Verifies the bearer token: at once for a token seen before (or a missing one), else off the
    /// event loop (the signature check) and back.
    private func authenticate(_ context: ChannelHandlerContext, _ jwt: JWTAuthenticator, _ head: HTTPRequestHead) {
        let authorization = head.headers.first(name: "authorization")
        let path = head.uri
        if let verdict = jwt.authenticateWithoutWaiting(authorization: authorization, path: path) {
            return authenticated(context, .success(verdict))
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await jwt.authenticate(authorization: authorization, path: path)
        }.whenComplete { result in
            let (handler, context) = bound.value
            handler.authenticated(context, result)
        }
    }

    private func authenticated(_ context: ChannelHandlerContext, _ result: Result<Result<VerifiedToken, AuthFailure>, any Error>) {
        guard case .held(let ex, _) = state else { return }
        switch result {
        case .success(.success(let token)):
            // What the route lists after JWT (only a rate limit may follow it).
            for step in ex.afterJWT where step == .rateLimit {
                if let refusal = rateLimit(ex.route, head: ex.head, subject: token.subject ?? token.clientId, &ex.responseHeaders) {
                    return answerWithoutApp(context, ex, refusal)
                }
            }
            connect(context)
        case .success(.failure(let failure)):
            answerWithoutApp(context, ex, ErrorResponse(
                status: HTTPResponseStatus(statusCode: failure.status), code: failure.code, message: failure.message,
                headers: ex.responseHeaders + [("www-authenticate", failure.wwwAuthenticate)]))
        case .failure(let error):
            answerWithoutApp(context, ex, ErrorResponse(status: .internalServerError, code: "auth_error", message: "\(error)", headers: ex.responseHeaders))
        }
    }

    // MARK: Forwarding

    /// Takes an app connection (at once when one is idle) and starts streaming the held request.
    private func connect(_ context: ChannelHandlerContext) {
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

    private func startStreaming(_ context: ChannelHandlerContext, _ upstream: UpstreamConnection) {
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

    func upstreamHead(_ response: HTTPResponseHead) {
        guard let context, case .streaming(let ex, _) = state else { return }
        var headers = response.headers
        ProxyHeaders.removeHopByHop(&headers)
        ex.responseRules.apply(to: &headers)
        for (name, value) in ex.responseHeaders { headers.replaceOrAdd(name: name, value: value) }
        // An HTTP/1.0 client cannot read chunked framing: without a length, the answer is
        // delimited by closing the connection (and the head says HTTP/1.0 so nothing chunks it).
        let http10 = ex.head.version.major == 1 && ex.head.version.minor == 0
        if http10 && !headers.contains(name: "content-length") { ex.closeAfterAnswer = true }
        if !ex.keepAlive || ex.closeAfterAnswer { headers.replaceOrAdd(name: "connection", value: "close") }
        ex.responseStarted = true
        ex.status = Int(response.status.code)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: http10 ? .http1_0 : .http1_1, status: response.status, headers: headers))), promise: nil)
    }

    func upstreamBody(_ chunk: ByteBuffer) {
        guard let context, case .streaming = state else { return }
        context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
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
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        if ex.keepAlive && !ex.closeAfterAnswer {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            requestDone(context)
        } else {
            state = .closing
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
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
        let timedOut = error.kind == .responseTimeout
        let status: HTTPResponseStatus = timedOut ? .gatewayTimeout : .badGateway
        answerWithoutApp(context, ex, ErrorResponse(status: status, code: timedOut ? "upstream_timeout" : "upstream_unavailable",
                                                    message: "the app could not be reached: \(error)", headers: ex.responseHeaders))
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable { resumeReads() } else { pauseReads() }
    }

    // MARK: Answers

    /// Answers an admitted request without (or instead of) the app: 401/403/429 after JWT, 502/504.
    private func answerWithoutApp(_ context: ChannelHandlerContext, _ ex: Exchange, _ error: ErrorResponse) {
        finished(ex, status: Int(error.status.code))
        let close = !ex.keepAlive || !ex.requestEnded
        write(context, status: error.status, headers: error.headers + [("content-type", "application/json")],
              body: error.body(allocator: context.channel.allocator), close: close, method: ex.head.method)
        if close { state = .closing } else { requestDone(context) }
    }

    /// Refuses a request at its head (IP, CORS, rate limit, declared size): nothing reaches the app.
    private func refuse(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ error: ErrorResponse, close: Bool) {
        refuse(context, head, status: error.status, headers: error.headers + [("content-type", "application/json")],
               body: error.body(allocator: context.channel.allocator), close: close)
    }

    private func refuse(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, status: HTTPResponseStatus,
                        headers: [(String, String)], body: ByteBuffer?, close: Bool) {
        shared.metrics.finished("ingress", status: Int(status.code), seconds: 0)
        write(context, status: status, headers: headers, body: body, close: close, method: head.method)
        // Kept open only for a request without a body: its end is still to come.
        state = close ? .closing : .draining
    }

    private func reject(_ context: ChannelHandlerContext, _ error: ErrorResponse, close: Bool) {
        write(context, status: error.status, headers: error.headers + [("content-type", "application/json")],
              body: error.body(allocator: context.channel.allocator), close: close, method: .GET)
        state = .closing
    }

    private func write(_ context: ChannelHandlerContext, status: HTTPResponseStatus, headers: [(String, String)], body: ByteBuffer?, close: Bool, method: HTTPMethod) {
        ResponseWriter.write(context, status: status, headers: headers, body: body, close: close, method: method)
    }

    /// The exchange is over and the connection stays: back to idle, then the queued parts of the
    /// next request (as many as the state takes without queueing them again, so order is kept).
    private func requestDone(_ context: ChannelHandlerContext) {
        state = .idle
        armHeaderDeadline()
        while let part = queued.first, takesPartNow {
            queued.removeFirst()
            handle(part, context)
        }
        if queued.count <= 64 { resumeReads() }
    }

    /// Whether ``handle(_:_:)`` would act on a part now rather than queue it.
    private var takesPartNow: Bool {
        switch state {
        case .idle, .draining: return true
        case .held(let ex, _), .streaming(let ex, _): return !ex.requestEnded
        case .closing: return false
        }
    }

    private func finished(_ ex: Exchange, status: Int) {
        shared.metrics.inFlight("ingress", shared.inFlight.decrement())
        let elapsed = shared.clock.now - ex.started
        shared.metrics.finished("ingress", status: status, seconds: elapsed.seconds)
        if let route = ex.route { shared.metrics.routeFinished(route.prefix, status: status) }
        if let log = shared.config.accessLog {
            log.record([
                ("time", .string(Date().formatted(.iso8601))), ("client", .string(client ?? "")),
                ("method", .string(ex.head.method.rawValue)), ("path", .string(ex.head.uri)), ("status", .int(status)),
                ("duration_ms", .double(elapsed.seconds * 1000)), ("bytes_in", .int(ex.bodyBytes)),
                ("correlation_id", .string(ex.correlationId)), ("trace_id", .string(ex.traceId)),
                ("user_agent", .string(ex.head.headers.first(name: "user-agent") ?? "")),
            ])
        }
    }
}

extension HTTPRequestHead {
    /// Whether a body follows the head (a length or chunked framing).
    var hasBody: Bool {
        if let l = headers.first(name: "content-length"), l != "0" { return true }
        return headers.contains(name: "transfer-encoding")
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
