import HTTPSidecar
import MeshCore

/// A middleware step of an ingress route. Correlation id, trace context, forwarding headers, the
/// body limit, header rules, metrics and the access log always apply; these four are chosen and
/// ordered per route.
public enum IngressMiddleware: String, Sendable, Hashable, CaseIterable {
    case ipFilter = "ip_filter"
    case cors
    case rateLimit = "rate_limit"
    case jwt
}

/// The middleware of requests whose path starts with `prefix` (the longest prefix wins; requests
/// matching no route get the listener's default chain).
public struct IngressRoute: Sendable, Hashable {
    public var prefix: String
    /// Run in this order; one not listed does not run on this route.
    public var middleware: [IngressMiddleware]
    /// This route's own limit, with its own buckets (nil: the listener's limit).
    public var rateLimit: RateLimiter.Config?
    /// This route's header rules (nil: the listener's).
    public var headers: HeaderRewrite?

    public init(prefix: String, middleware: [IngressMiddleware], rateLimit: RateLimiter.Config? = nil, headers: HeaderRewrite? = nil) {
        self.prefix = prefix
        self.middleware = middleware
        self.rateLimit = rateLimit
        self.headers = headers
    }
}

extension IngressConfig {
    /// The chain for requests no route matches: IP filter, CORS, rate limit, JWT (the rate limit
    /// after JWT when it is keyed by the JWT subject). Only what is configured runs.
    public var defaultMiddleware: [IngressMiddleware] {
        rateLimitKey == .jwtSubject ? [.ipFilter, .cors, .jwt, .rateLimit] : [.ipFilter, .cors, .rateLimit, .jwt]
    }

    /// Why this configuration's routes cannot work, or nil. Checked when a configuration is built.
    public func routeProblem(jwtConfigured: Bool) -> ConfigError? {
        for (i, route) in routes.enumerated() {
            let key = "ingress.routes[\(i)]"
            guard route.prefix.hasPrefix("/") else { return ConfigError(key: key + ".prefix", "must start with /") }
            // A prefix is compared with normalized paths, so it must be one itself.
            guard case .success(let n) = RequestTarget.normalize(route.prefix, escaped: .keep), n.path == route.prefix, n.query == nil else {
                return ConfigError(key: key + ".prefix", "must be a normalized path (no //, ., .., %-escapes of unreserved characters or query)")
            }
            if Set(route.middleware).count != route.middleware.count { return ConfigError(key: key + ".middleware", "lists a middleware twice") }
            if route.middleware.contains(.jwt) && !jwtConfigured { return ConfigError(key: key + ".middleware", "jwt needs ingress.jwt (jwks_file or jwks_url)") }
            if route.middleware.contains(.rateLimit) && route.rateLimit == nil && rateLimit == nil {
                return ConfigError(key: key + ".middleware", "rate_limit needs a rate (the route's or ingress.rate_limit)")
            }
            if route.middleware.contains(.cors) && cors == nil { return ConfigError(key: key + ".middleware", "cors needs ingress.cors.origins") }
            if let j = route.middleware.firstIndex(of: .jwt) {
                for m in route.middleware[j...] where m == .cors || m == .ipFilter {
                    return ConfigError(key: key + ".middleware", "\(m.rawValue) must come before jwt (a CORS preflight carries no token)")
                }
            }
            if rateLimitKey == .jwtSubject, let r = route.middleware.firstIndex(of: .rateLimit),
               route.middleware.firstIndex(of: .jwt).map({ $0 > r }) ?? true {
                return ConfigError(key: key + ".middleware", "a rate limit keyed by jwt_subject must come after jwt")
            }
        }
        return nil
    }

    /// The route for a normalized `path`: the longest prefix that covers it on a segment boundary
    /// (`/public` covers `/public` and `/public/x`, not `/publicX`), if any; letters compare without
    /// case unless ``IngressConfig/exactCasePolicy``.
    func route(for path: String) -> IngressRoute? {
        var best: IngressRoute?
        for r in routes where RequestTarget.path(path, isUnder: r.prefix, exactCase: exactCasePolicy) && r.prefix.count > (best?.prefix.count ?? -1) {
            best = r
        }
        return best
    }
}
