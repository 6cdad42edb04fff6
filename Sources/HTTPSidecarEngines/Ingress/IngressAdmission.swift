import HTTPSidecar
import MeshCore
import NIOCore
import NIOConcurrencyHelpers
import NIOHTTP1

/// The ingress's policy state for one configuration generation: the configuration, its rate
/// limiters (kept across reloads when their settings did not change) and the chain of paths no
/// route matches. No I/O: the NIO listener and the simulator's ingress driver each hold one.
public final class IngressPolicy: Sendable {
    public let config: IngressConfig
    /// The live objects beside the configuration (the JWT verifier, the access log).
    public let services: IngressServices
    let limiter: NIOLockedValueBox<RateLimiter>?
    /// Limiters of routes with a rate of their own, by prefix.
    let routeLimiters: [String: NIOLockedValueBox<RateLimiter>]
    /// The middleware of paths no route matches (JWT left out when it is not configured).
    let defaultChain: [IngressMiddleware]

    /// Builds the policy of `config`, keeping `previous`'s limiters whose settings are unchanged;
    /// throws when the routes cannot work. New limiters hash keys with a seed from the system (so
    /// clients cannot aim at collisions), or with `hashSeed` when given (the simulator's, for replay).
    public init(config: IngressConfig, services: IngressServices = IngressServices(), previous: IngressPolicy? = nil,
                hashSeed: UInt64? = nil) throws(ConfigError) {
        if let problem = config.routeProblem(jwtConfigured: services.jwt != nil) { throw problem }
        self.config = config
        self.services = services
        let old = previous?.config
        if let previous, let same = previous.limiter, old?.rateLimit == config.rateLimit, old?.rateLimitKey == config.rateLimitKey {
            limiter = same
        } else {
            limiter = config.rateLimit.map { NIOLockedValueBox(Self.limiter($0, hashSeed)) }
        }
        var routeLimiters: [String: NIOLockedValueBox<RateLimiter>] = [:]
        for route in config.routes {
            guard let rate = route.rateLimit else { continue }
            if let previous, let same = previous.routeLimiters[route.prefix], previous.config.route(for: route.prefix)?.rateLimit == rate,
               old?.rateLimitKey == config.rateLimitKey {
                routeLimiters[route.prefix] = same
            } else {
                routeLimiters[route.prefix] = NIOLockedValueBox(Self.limiter(rate, hashSeed))
            }
        }
        self.routeLimiters = routeLimiters
        defaultChain = config.defaultMiddleware.filter { $0 != .jwt || services.jwt != nil }
    }

    static func limiter(_ config: RateLimiter.Config, _ hashSeed: UInt64?) -> RateLimiter {
        var seeded = config
        var random = SystemRandom()
        seeded.hashSeed = hashSeed ?? random.next()
        return RateLimiter(seeded)
    }
}

/// What the ingress decides at a request head, before anything reaches the app: the head checks,
/// the normalized target (policy is matched on it, and the app is sent it), the route's middleware
/// up to JWT (IP filter, CORS, rate limit), the declared body size, and the request as the app will
/// see it. Run by the NIO handler and by the simulator's ingress driver alike.
public enum IngressAdmission {
    /// An admitted request: what goes to the app and what its answer needs.
    public struct Admitted {
        /// The request head as the app gets it, encoded (see ``upstreamRequest(_:_:_:_:_:client:scheme:trusted:dropUnderscores:defaultHost:random:)``).
        public var upstreamHead: EncodedRequestHead
        public var traceId: String
        public var correlationId: String
        /// Headers the answer gets (correlation id, CORS, rate-limit state).
        public var responseHeaders: [(String, String)]
        /// The route it matched (nil: the default chain).
        public var route: IngressRoute?
        /// The normalized path policy was matched on.
        public var path: String
        /// Header edits for the answer on its way back (``ProxyHeaders/relayedHead(scanned:rules:setting:requestVersion:keepAlive:)``).
        public var responseRules: HeaderRules
        /// The route's steps after JWT (only a rate limit may follow it).
        public var afterJWT: [IngressMiddleware]
        /// Whether JWT verification comes before the app.
        public var needsJWT: Bool
        /// Whether the client's connection stays open after the answer (its `Connection` and version).
        public var keepAlive: Bool
        /// How the request's body is framed (re-checked here from its fields, whatever the scanner said).
        public var framing: RequestFraming
    }

    /// The decision at a request head.
    public enum Decision {
        /// Answer with this error; nothing reaches the app.
        case refuse(ErrorResponse, close: Bool)
        /// Answer with this status and headers and no body (a CORS preflight); nothing reaches the app.
        case answer(status: HTTPResponseStatus, headers: [(String, String)], close: Bool)
        /// Go on to JWT (when ``Admitted/needsJWT``) and the app.
        case admit(Admitted)
    }

    /// Decides `head` from `client` (its peer address) on a listener of `scheme`.
    public static func decide(_ head: ScannedRequestHead, client: String?, scheme: String, policy: IngressPolicy, now: MeshInstant,
                              random: inout SeededRandom) -> Decision {
        let config = policy.config
        let keepAlive = head.scan.keepAlive
        // A correlation id is echoed in the answer: only a plain one is taken from the client.
        let correlation = head.first("x-correlation-id").flatMap { HeaderValue.isPlainId($0) ? $0 : nil } ?? newCorrelationId(&random)
        var responseHeaders = [("x-correlation-id", correlation)]
        // The checks that decide whether the head can be relayed at all, before any work on it
        // (the same for egress: ``RequestHeadCheck``).
        let framing: RequestFraming, target: RequestTarget
        switch RequestHeadCheck.check(head, maxHeaders: config.maxHeaders, escaped: config.escapedSeparators, parameters: config.pathParameters) {
        case .success(let passed): (framing, target) = (passed.framing, passed.target)
        case .failure(var refusal):
            refusal.headers += responseHeaders
            return .refuse(refusal, close: true)
        }
        let closeAfter = framing.hasBody || !keepAlive
        // One credential: with two, the sidecar would verify one and the app might read the other.
        if head.values("authorization").count > 1 {
            return .refuse(ErrorResponse(status: .badRequest, code: "duplicate_authorization", message: "more than one Authorization field",
                                         headers: responseHeaders), close: true)
        }
        // Policy is matched on the normalized path, and the app is sent that same path.
        // ci/mutants: policy-on-raw-path (the next line)
        let route = config.routes.isEmpty ? nil : config.route(for: target.path)
        let chain = route?.middleware ?? policy.defaultChain

        // The steps before JWT run at the head; JWT and what follows it run once the verdict is in.
        var rest = chain[...]
        while let step = rest.first, step != .jwt {
            rest = rest.dropFirst()
            switch step {
            case .ipFilter:
                if !config.ipFilter.allow.isEmpty || !config.ipFilter.deny.isEmpty {
                    guard let client, config.ipFilter.permits(client) else {
                        // ci/mutants: ip-denied-as-not-found (the next line)
                        return .refuse(ErrorResponse(status: .forbidden, code: "ip_denied", message: "this client address is not allowed",
                                                     headers: responseHeaders), close: true)
                    }
                }
            case .cors:
                guard let cors = config.cors else { continue }
                switch cors.decide(method: head.method.text, origin: head.first("origin"),
                                   requestMethod: head.first("access-control-request-method"),
                                   requestHeaders: head.first("access-control-request-headers")) {
                case .notCORS:
                    break
                case .preflight(let h):
                    return .answer(status: .noContent, headers: responseHeaders + h.pairs.map { ($0.name, $0.value) }, close: closeAfter)
                case .rejected(let reason):
                    if head.method == .options {
                        return .refuse(ErrorResponse(status: .forbidden, code: "cors_rejected", message: reason, headers: responseHeaders), close: closeAfter)
                    }
                case .actual(let h):
                    responseHeaders += h.pairs.map { ($0.name, $0.value) }
                }
            case .rateLimit:
                if let refusal = rateLimit(policy, route, head: head, subject: nil, client: client, now: now, &responseHeaders) {
                    return .refuse(refusal, close: closeAfter)
                }
            case .jwt:
                break
            }
        }
        if case .length(let length) = framing, length > config.maxBodyBytes {
            return .refuse(ErrorResponse(status: .payloadTooLarge, code: "body_too_large",
                                         message: "the request body exceeds \(config.maxBodyBytes) bytes", headers: responseHeaders), close: true)
        }
        let rules = route?.headers ?? config.headers
        let (upstreamHead, traceId) = upstreamRequest(head, target, framing, correlation, rules.request, client: client, scheme: scheme,
                                                      trusted: config.trusts(client), dropUnderscores: !config.allowUnderscoreHeaders,
                                                      defaultHost: config.app.description, random: &random)
        return .admit(Admitted(upstreamHead: upstreamHead, traceId: traceId, correlationId: correlation, responseHeaders: responseHeaders,
                               route: route, path: target.path, responseRules: rules.response, afterJWT: Array(rest.dropFirst()),
                               needsJWT: rest.first == .jwt && policy.services.jwt != nil, keepAlive: keepAlive, framing: framing))
    }


    /// The request as the app sees it: the normalized target, explicit framing matching the bytes
    /// that follow, hop-by-hop headers gone, forwarding, correlation and trace headers set, the
    /// configured rules applied. Written from the scanned bytes: a field that passes unchanged is
    /// copied as the client sent it (no string, no allocation per line).
    static func upstreamRequest(_ head: ScannedRequestHead, _ target: RequestTarget, _ framing: RequestFraming, _ correlation: String,
                                _ rules: HeaderRules, client: String?, scheme: String, trusted: Bool, dropUnderscores: Bool = true,
                                defaultHost: String = "localhost", random: inout SeededRandom) -> (EncodedRequestHead, String) {
        let (trace, _) = TracePropagation.nextHop(traceparent: head.first("traceparent"), tracestate: head.first("tracestate"), random: &random)
        // ci/mutants: app-gets-raw-target (the next line)
        let origin = target.originForm
        return head.bytes.withUnsafeReadableBytes { raw in
            var fields = RelayedFields(raw, fields: head.scan.fields)
            fields.removeHopByHop()
            // `X_Forwarded_For` beside `X-Forwarded-For`: CGI-style stacks map both to one variable.
            if dropUnderscores { fields.removeNamesWithUnderscore() }
            fields.remove("expect")
            if let authority = target.authority { fields.replaceOrAdd("host", authority) }
            addForwarded(&fields, client: client, proto: scheme, trusted: trusted)
            // The app is sent HTTP/1.1, which requires Host: an HTTP/1.0 client may have sent none
            // (after the forwarding fields: X-Forwarded-Host names only what a client sent).
            if !fields.contains("host") { fields.add("host", defaultHost) }
            fields.replaceOrAdd("x-correlation-id", correlation)
            fields.replaceOrAdd("traceparent", trace.traceparent)
            fields.remove("tracestate")
            if let state = trace.traceStateHeaderValue { fields.add("tracestate", state) }
            fields.apply(rules)
            // Framing last: no rule and no Connection token can take it away or add a second one.
            fields.remove("content-length")
            fields.remove("transfer-encoding")
            // ci/mutants: body-without-framing (the next line)
            if let field = framing.field(method: head.method.text) { fields.add(field.name, field.value) }

            return (fields.requestHead(method: head.method, target: origin, chunked: framing == .chunked), trace.traceIDHex)
        }
    }

    /// Sets `X-Forwarded-For` (appending the client), `-Proto` and `-Host`. What a client sent in
    /// those (and `Forwarded`, `X-Real-IP`) is kept only when it came through a trusted proxy
    /// (`trusted`); from anyone else it is removed first, so an app never believes a spoofed address.
    static func addForwarded(_ fields: inout RelayedFields, client: String?, proto: String, trusted: Bool) {
        if !trusted { for name in ProxyHeaders.forwardingHeaders { fields.remove(name) } }
        if let client {
            if let prior = fields.first("x-forwarded-for") {
                let all = fields.all("x-forwarded-for").joined(separator: ", ")
                fields.replaceOrAdd("x-forwarded-for", (all.isEmpty ? prior : all) + ", " + client)
            } else {
                fields.add("x-forwarded-for", client)
            }
        }
        if !trusted || !fields.contains("x-forwarded-proto") { fields.replaceOrAdd("x-forwarded-proto", proto) }
        if let host = fields.first("host"), !fields.contains("x-forwarded-host") { fields.add("x-forwarded-host", host) }
    }

    /// Runs the route's rate limit (or the listener's) for this request's key; the 429 to answer
    /// when over it. `subject` is the verified token's subject, when JWT ran before.
    public static func rateLimit(_ policy: IngressPolicy, _ route: IngressRoute?, head: ScannedRequestHead, subject: String?, client: String?,
                                 now: MeshInstant, _ responseHeaders: inout [(String, String)]) -> ErrorResponse? {
        guard let limiter = route.flatMap({ policy.routeLimiters[$0.prefix] }) ?? policy.limiter else { return nil }
        let key: String
        switch policy.config.rateLimitKey {
        case .header(let name): key = head.first(name).map { "h:" + $0 } ?? (client ?? "unknown")
        case .jwtSubject: key = subject.map { "s:" + $0 } ?? (client ?? "unknown")
        case .clientAddress: key = client ?? "unknown"
        }
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

    /// The answer when the app could not be reached or did not answer in time (before any of its
    /// answer was relayed): 504 `upstream_timeout` or 502 `upstream_unavailable`.
    public static func appFailure(timedOut: Bool, _ why: String, headers: [(String, String)]) -> ErrorResponse {
        ErrorResponse(status: timedOut ? .gatewayTimeout : .badGateway, code: timedOut ? "upstream_timeout" : "upstream_unavailable",
                      message: "the app could not be reached: \(why)", headers: headers)
    }

    /// 32 lower-case hex digits, written in place (one allocation, where formatting each half and
    /// padding it took five).
    static func newCorrelationId(_ random: inout SeededRandom) -> String {
        let halves = (random.next(), random.next())
        return String(unsafeUninitializedCapacity: 32) { out in
            for i in 0..<32 {
                let half = i < 16 ? halves.0 : halves.1
                let nibble = UInt8(truncatingIfNeeded: half >> UInt64(60 - 4 * (i % 16))) & 0xF
                out[i] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
            }
            return 32
        }
    }
}
