import Foundation
import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1
import SidecarAuth

/// The ingress middleware: the route's chain at the request head (IP filter, CORS, rate limit),
/// JWT off the event loop when the token is new, and the request as the app will see it.
extension IngressHandler {
    // MARK: Middleware decisions

    func begin(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let config = shared.config
        let closeAfter = head.hasBody || !head.isKeepAlive
        // A correlation id is echoed in the answer: only a plain one is taken from the client.
        let correlation = head.headers.first(name: "x-correlation-id").flatMap { HeaderValue.isPlainId($0) ? $0 : nil }
            ?? Self.newCorrelationId(&random)
        var responseHeaders = [("x-correlation-id", correlation)]
        // The checks that decide whether the head can be relayed at all, before any work on it.
        if head.headers.count > config.maxHeaders {
            return refuse(context, head, ErrorResponse(status: .requestHeaderFieldsTooLarge, code: "too_many_headers",
                                                       message: "more than \(config.maxHeaders) header fields", headers: responseHeaders), close: true)
        }
        let framing: RequestFraming
        switch RequestFraming.of(method: head.method.rawValue, contentLength: head.headers["content-length"],
                                 transferEncoding: head.headers["transfer-encoding"]) {
        case .success(let f): framing = f
        case .failure(let problem):
            return refuse(context, head, ErrorResponse(status: .badRequest, code: problem.code, message: "\(problem)", headers: responseHeaders), close: true)
        }
        let target: RequestTarget
        switch RequestTarget.normalize(head.uri, escaped: config.escapedSeparators) {
        case .success(let t) where t.path != "*" || head.method == .OPTIONS: target = t
        case .success:
            return refuse(context, head, ErrorResponse(status: .badRequest, code: "bad_path", message: "* is a target for OPTIONS only",
                                                       headers: responseHeaders), close: true)
        case .failure(let problem):
            return refuse(context, head, ErrorResponse(status: .badRequest, code: "bad_path", message: "\(problem)", headers: responseHeaders), close: true)
        }
        // Policy is matched on the normalized path, and the app is sent that same path.
        let route = config.routes.isEmpty ? nil : config.route(for: target.path)
        let chain = route?.middleware ?? shared.defaultChain

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
        let (upstreamHead, traceId) = upstreamRequest(head, target, framing, correlation, rules.request)
        let ex = Exchange(head: head, upstreamHead: upstreamHead, correlationId: correlation, traceId: traceId,
                          responseHeaders: responseHeaders, started: shared.clock.now, keepAlive: head.isKeepAlive)
        ex.route = route
        ex.responseRules = rules.response
        ex.afterJWT = Array(rest.dropFirst())
        ex.path = target.path
        shared.metrics.inFlight("ingress", shared.inFlight.increment())
        if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        state = .held(ex, parts: [])
        if head.hasBody { armHeaderDeadline() }  // the body must keep coming, too
        if rest.first == .jwt, let jwt = config.jwt { authenticate(context, jwt, head, path: target.path) } else { connect(context) }
    }

    /// The request as the app sees it: the normalized target, explicit framing matching the bytes
    /// that follow, hop-by-hop headers gone, forwarding, correlation and trace headers set, the
    /// configured rules applied.
    func upstreamRequest(_ head: HTTPRequestHead, _ target: RequestTarget, _ framing: RequestFraming, _ correlation: String,
                         _ rules: HeaderRules) -> (HTTPRequestHead, String) {
        var upstream = head
        upstream.uri = target.originForm
        ProxyHeaders.removeHopByHop(&upstream.headers)
        upstream.headers.remove(name: "expect")
        if let authority = target.authority { upstream.headers.replaceOrAdd(name: "host", value: authority) }
        ProxyHeaders.addForwarded(&upstream.headers, client: client, proto: scheme, trusted: shared.config.trusts(client))
        upstream.headers.replaceOrAdd(name: "x-correlation-id", value: correlation)
        let (trace, _) = TracePropagation.nextHop(
            traceparent: head.headers.first(name: "traceparent"), tracestate: head.headers.first(name: "tracestate"), random: &random)
        upstream.headers.replaceOrAdd(name: "traceparent", value: trace.traceParentHeaderValue)
        upstream.headers.remove(name: "tracestate")
        if let state = trace.traceStateHeaderValue { upstream.headers.add(name: "tracestate", value: state) }
        rules.apply(to: &upstream.headers)
        // Framing last: no rule and no Connection token can take it away or add a second one.
        upstream.headers.remove(name: "content-length")
        upstream.headers.remove(name: "transfer-encoding")
        if let field = framing.field(method: head.method.rawValue) { upstream.headers.add(name: field.name, value: field.value) }
        upstream.version = .http1_1
        return (upstream, "\(trace.traceID)")
    }

    /// Runs the route's rate limit (or the listener's) for this request's key; the 429 to answer
    /// when over it. `subject` is the verified token's subject, when JWT ran before.
    func rateLimit(_ route: IngressRoute?, head: HTTPRequestHead, subject: String?, _ responseHeaders: inout [(String, String)]) -> ErrorResponse? {
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
    func authenticate(_ context: ChannelHandlerContext, _ jwt: JWTAuthenticator, _ head: HTTPRequestHead, path: String) {
        let authorization = head.headers.first(name: "authorization")
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

    func authenticated(_ context: ChannelHandlerContext, _ result: Result<Result<VerifiedToken, AuthFailure>, any Error>) {
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

}
