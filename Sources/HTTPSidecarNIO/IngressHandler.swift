import Foundation
import HTTPSidecar
import Logging
import MeshCore
import NIOCore
import NIOHTTP1
import NIOConcurrencyHelpers
import Synchronization

/// One client connection of the ingress: reads a request, applies the middleware decisions, forwards
/// it to the app over the loop's keep-alive pool, and writes the app's answer back.
///
/// State machine (one request at a time; NIO's pipelining helper holds later ones):
/// - `.idle`: waiting for a head; a header timer cuts off clients that send heads too slowly.
/// - `.reading`: collecting a body up to the limit.
/// - `.forwarding`: the app has the request; nothing more is read until it answers.
/// - `.closing`: an answer that ends the connection is on its way.
final class IngressHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case reading(HTTPRequestHead, ByteBuffer, RequestContext)
        case forwarding
        case closing
    }

    /// What the middleware decided for the request being handled.
    struct RequestContext {
        var correlationId: String
        var responseHeaders: [(String, String)] = []
    }

    private let generation: IngressGeneration
    /// The configuration generation of the request being handled (read afresh at each request head).
    private var shared: IngressShared
    /// The app pool of this loop for ``shared``'s generation, looked up once per generation.
    private var pool: AppConnectionPool?
    private var poolGeneration: ObjectIdentifier?
    /// `http` or `https`: the listener's scheme, for `X-Forwarded-Proto`.
    private let scheme: String
    private var state = State.idle
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

    private func appPool(_ context: ChannelHandlerContext) -> AppConnectionPool {
        let id = ObjectIdentifier(shared.appPools)
        if let pool, poolGeneration == id { return pool }
        let fresh = shared.appPools.pool(for: context.eventLoop, target: shared.app)
        pool = fresh
        poolGeneration = id
        return fresh
    }

    func channelActive(context: ChannelHandlerContext) {
        client = context.remoteAddress?.ipAddress
        armHeaderTimer(context)
        context.fireChannelActive()
    }

    /// A protocol error (malformed framing, smuggling attempt, oversized head): answered with 400 or
    /// 431 when no response is under way, and the connection is closed either way.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let started: Bool
        switch state {
        case .idle, .reading: started = false
        case .forwarding, .closing: started = true
        }
        headerTimer?.cancel()
        state = .closing
        ProtocolErrors.answer(context, error, responseStarted: started)
    }

    func channelInactive(context: ChannelHandlerContext) {
        headerTimer?.cancel()
        context.fireChannelInactive()
    }

    private func armHeaderTimer(_ context: ChannelHandlerContext) {
        headerTimer?.cancel()
        let channel = context.channel
        headerTimer = context.eventLoop.scheduleTask(in: .nanoseconds(shared.config.headerTimeout.nanoseconds)) {
            channel.close(promise: nil)  // the head did not arrive in time: no answer, just close
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            headerTimer?.cancel()
            shared = generation.current
            begin(context, head)
        case (.body(var chunk), .reading(let head, var body, let ctx)):
            guard body.readableBytes + chunk.readableBytes <= shared.config.maxBodyBytes else {
                return reject(context, ErrorResponse(status: .payloadTooLarge, code: "body_too_large",
                                                     message: "the request body exceeds \(shared.config.maxBodyBytes) bytes"), close: true)
            }
            body.writeBuffer(&chunk)
            state = .reading(head, body, ctx)
        case (.end, .reading(let head, let body, let ctx)):
            forward(context, head, body, ctx)
        default:
            break  // the rest of a request already answered (and being closed)
        }
    }

    // MARK: Middleware decisions

    private func begin(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let config = shared.config
        if !config.ipFilter.allow.isEmpty || !config.ipFilter.deny.isEmpty {
            guard let client, config.ipFilter.permits(client) else {
                return reject(context, ErrorResponse(status: .forbidden, code: "ip_denied", message: "this client address is not allowed"), close: true)
            }
        }
        let correlation = head.headers.first(name: "x-correlation-id").flatMap { $0.isEmpty || $0.count > 128 ? nil : $0 }
            ?? Self.newCorrelationId(&random)
        var ctx = RequestContext(correlationId: correlation)
        ctx.responseHeaders.append(("x-correlation-id", correlation))

        if let cors = config.cors {
            switch cors.decide(method: head.method.rawValue, origin: head.headers.first(name: "origin"),
                               requestMethod: head.headers.first(name: "access-control-request-method"),
                               requestHeaders: head.headers.first(name: "access-control-request-headers")) {
            case .notCORS:
                break
            case .preflight(let h):
                return respond(context, head, status: .noContent, headers: ctx.responseHeaders + h.pairs.map { ($0.name, $0.value) }, body: nil, close: !head.isKeepAlive || head.hasBody)
            case .rejected(let reason):
                if head.method == .OPTIONS {
                    return reject(context, ErrorResponse(status: .forbidden, code: "cors_rejected", message: reason, headers: ctx.responseHeaders), close: head.hasBody || !head.isKeepAlive)
                }
            case .actual(let h):
                ctx.responseHeaders += h.pairs.map { ($0.name, $0.value) }
            }
        }
        if config.rateLimitKey != .jwtSubject || config.jwt == nil {
            let key: String
            if case .header(let name) = config.rateLimitKey, let value = head.headers.first(name: name) { key = "h:" + value } else { key = client ?? "unknown" }
            guard admit(context, head, &ctx, key: key) else { return }
        }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > config.maxBodyBytes {
            return reject(context, ErrorResponse(status: .payloadTooLarge, code: "body_too_large",
                                                 message: "the request body exceeds \(config.maxBodyBytes) bytes", headers: ctx.responseHeaders), close: true)
        }
        state = .reading(head, context.channel.allocator.buffer(capacity: 0), ctx)
    }

    /// Runs the rate limit for `key`; answers 429 and returns false when over it.
    private func admit(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ ctx: inout RequestContext, key: String) -> Bool {
        guard let limiter = shared.limiter else { return true }
        let now = shared.clock.now
        let decision = limiter.withLockedValue { $0.admit(key, now: now) }
        let reset = Int((decision.reset.seconds).rounded(.up))
        ctx.responseHeaders += [("ratelimit-limit", String(decision.limit)), ("ratelimit-remaining", String(decision.remaining)), ("ratelimit-reset", String(reset))]
        guard decision.allowed else {
            let retry = Int((decision.retryAfter ?? .seconds(1)).seconds.rounded(.up))
            reject(context, ErrorResponse(status: .tooManyRequests, code: "rate_limited",
                                          message: "too many requests; retry in \(retry)s",
                                          headers: ctx.responseHeaders + [("retry-after", String(max(1, retry)))]), close: head.hasBody || !head.isKeepAlive)
            return false
        }
        return true
    }

    static func newCorrelationId(_ random: inout SeededRandom) -> String {
        let a = random.next(), b = random.next()
        return String(a, radix: 16).leftPadded(16) + String(b, radix: 16).leftPadded(16)
    }

    // MARK: Forwarding

    private func forward(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer, _ ctx: RequestContext) {
        state = .forwarding
        guard let jwt = shared.config.jwt else { return proxy(context, head, body, ctx) }
        let authorization = head.headers.first(name: "authorization")
        let path = head.uri
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await jwt.authenticate(authorization: authorization, path: path)
        }.whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success(.success(let token)):
                var ctx = ctx
                if handler.shared.config.rateLimitKey == .jwtSubject {
                    guard handler.admit(context, head, &ctx, key: "s:" + (token.subject ?? token.clientId ?? handler.client ?? "unknown")) else { return }
                }
                handler.proxy(context, head, body, ctx)
            case .success(.failure(let failure)):
                let status = HTTPResponseStatus(statusCode: failure.status)
                handler.reject(context, ErrorResponse(status: status, code: failure.code, message: failure.message,
                                                      headers: ctx.responseHeaders + [("www-authenticate", failure.wwwAuthenticate)]), close: !head.isKeepAlive)
            case .failure(let error):
                handler.reject(context, ErrorResponse(status: .internalServerError, code: "auth_error", message: "\(error)", headers: ctx.responseHeaders), close: true)
            }
        }
    }

    private func proxy(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer, _ ctx: RequestContext) {
        var upstream = head
        ProxyHeaders.removeHopByHop(&upstream.headers)
        ProxyHeaders.addForwarded(&upstream.headers, client: client, proto: scheme)
        upstream.headers.replaceOrAdd(name: "x-correlation-id", value: ctx.correlationId)
        let (trace, _) = TracePropagation.nextHop(
            traceparent: head.headers.first(name: "traceparent"), tracestate: head.headers.first(name: "tracestate"), random: &random)
        upstream.headers.replaceOrAdd(name: "traceparent", value: trace.traceParentHeaderValue)
        upstream.headers.remove(name: "tracestate")
        if let state = trace.traceStateHeaderValue { upstream.headers.add(name: "tracestate", value: state) }
        upstream.headers.remove(name: "content-length")
        if body.readableBytes > 0 || head.method == .POST || head.method == .PUT || head.method == .PATCH {
            upstream.headers.add(name: "content-length", value: String(body.readableBytes))
        }
        shared.config.headers.request.apply(to: &upstream.headers)
        upstream.version = .http1_1
        let started = shared.clock.now
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let shared = self.shared
        shared.metrics.inFlight("ingress", shared.inFlight.increment())
        appPool(context).send(upstream, body: body).whenComplete { result in
            let (handler, context) = loopBound.value
            defer { shared.metrics.inFlight("ingress", shared.inFlight.decrement()) }
            let status: Int
            if case .success(let r) = result { status = Int(r.head.status.code) } else { status = 502 }
            shared.metrics.finished("ingress", status: status, seconds: (shared.clock.now - started).seconds)
            if let log = shared.config.accessLog {
                log.record([
                    ("time", .string(Date().formatted(.iso8601))), ("client", .string(handler.client ?? "")),
                    ("method", .string(head.method.rawValue)), ("path", .string(head.uri)), ("status", .int(status)),
                    ("duration_ms", .double((shared.clock.now - started).seconds * 1000)), ("bytes_in", .int(body.readableBytes)),
                    ("correlation_id", .string(ctx.correlationId)), ("trace_id", .string("\(trace.traceID)")),
                    ("user_agent", .string(head.headers.first(name: "user-agent") ?? "")),
                ])
            }
            switch result {
            case .success(let response):
                var headers = response.head.headers
                ProxyHeaders.removeHopByHop(&headers)
                headers.remove(name: "content-length")
                shared.config.headers.response.apply(to: &headers)
                let pairs = headers.map { ($0.name, $0.value) } + ctx.responseHeaders
                handler.respond(context, head, status: response.head.status, headers: pairs, body: response.body, close: !head.isKeepAlive)
            case .failure(let error):
                let e = error as? TransportError
                let status: HTTPResponseStatus = e?.kind == .closed && "\(e!.detail)".contains("did not answer") ? .gatewayTimeout : .badGateway
                handler.respond(context, head, status: status, headers: ctx.responseHeaders + [("content-type", "application/json")],
                                body: ErrorResponse(status: status, code: status == .gatewayTimeout ? "upstream_timeout" : "upstream_unavailable",
                                                    message: "the app could not be reached: \(e?.description ?? "\(error)")").body(allocator: context.channel.allocator),
                                close: !head.isKeepAlive)
            }

        }
    }

    // MARK: Responses

    private func reject(_ context: ChannelHandlerContext, _ error: ErrorResponse, close: Bool) {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        respond(context, head, status: error.status, headers: error.headers + [("content-type", "application/json")],
                body: error.body(allocator: context.channel.allocator), close: close)
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, status: HTTPResponseStatus,
                         headers: [(String, String)], body: ByteBuffer?, close: Bool) {
        state = close ? .closing : .idle
        ResponseWriter.write(context, status: status, headers: headers, body: body, close: close, method: request.method)
        if !close { armHeaderTimer(context) }
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
