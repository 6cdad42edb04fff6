/// Cross-origin resource sharing decisions (Fetch standard), independent of any HTTP library.
public struct CORSPolicy: Hashable, Sendable {
    /// Allowed origins, exactly as browsers send them (`https://app.example.com`); `*` allows any.
    public var allowedOrigins: [String]
    public var allowedMethods: [String] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    /// Request headers a preflight may ask for (compared case-insensitively); `*` allows any.
    public var allowedHeaders: [String] = ["content-type", "authorization", "x-correlation-id", "traceparent", "tracestate"]
    public var exposedHeaders: [String] = ["x-correlation-id", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after"]
    public var allowCredentials = false
    public var maxAge: Int = 600

    public init(allowedOrigins: [String]) { self.allowedOrigins = allowedOrigins }

    /// What to do with a request.
    public enum Verdict: Hashable, Sendable {
        /// Not a CORS request (no `Origin`): pass it on untouched.
        case notCORS
        /// A preflight: answer 204 at once with these headers; the app never sees it.
        case preflight(HeaderPairs)
        /// A preflight or actual request from an origin or for a method/header that is not allowed:
        /// answer 403 to a preflight; for an actual request, pass on without CORS headers (the browser blocks it).
        case rejected(reason: String)
        /// An allowed actual request: pass on, and add these headers to the response.
        case actual(HeaderPairs)
    }

    /// Decides from the request's method, `Origin`, `Access-Control-Request-Method` and
    /// `Access-Control-Request-Headers`.
    public func decide(method: String, origin: String?, requestMethod: String?, requestHeaders: String?) -> Verdict {
        guard let origin else { return .notCORS }
        let anyOrigin = allowedOrigins.contains("*")
        guard anyOrigin || allowedOrigins.contains(origin) else { return .rejected(reason: "origin \(origin) is not allowed") }
        // With credentials the origin must be echoed, never `*`.
        // ci/mutants: cors-wildcard-origin (the next line)
        let allowOrigin = anyOrigin && !allowCredentials ? "*" : origin
        var headers: [(String, String)] = [("access-control-allow-origin", allowOrigin)]
        if allowOrigin != "*" { headers.append(("vary", "Origin")) }
        if allowCredentials { headers.append(("access-control-allow-credentials", "true")) }

        if method.uppercased() == "OPTIONS", let wanted = requestMethod {
            guard allowedMethods.contains(wanted.uppercased()) else { return .rejected(reason: "method \(wanted) is not allowed") }
            let asked = (requestHeaders ?? "").split(separator: ",").map { $0.trimmingSpaces.lowercased() }.filter { !$0.isEmpty }
            if !allowedHeaders.contains("*"), let bad = asked.first(where: { !allowedHeaders.contains($0) }) {
                return .rejected(reason: "header \(bad) is not allowed")
            }
            headers.append(("access-control-allow-methods", allowedMethods.joined(separator: ", ")))
            if !asked.isEmpty { headers.append(("access-control-allow-headers", asked.joined(separator: ", "))) }
            headers.append(("access-control-max-age", String(maxAge)))
            return .preflight(.init(headers))
        }
        if !exposedHeaders.isEmpty { headers.append(("access-control-expose-headers", exposedHeaders.joined(separator: ", "))) }
        return .actual(.init(headers))
    }
}

/// Response header pairs a decision adds, in order.
public struct HeaderPairs: Hashable, Sendable {
    public struct Pair: Hashable, Sendable {
        public let name: String
        public let value: String
    }
    public let pairs: [Pair]
    public init(_ pairs: [(String, String)]) { self.pairs = pairs.map { Pair(name: $0.0, value: $0.1) } }
    /// The value of the first header called `name`.
    public func value(_ name: String) -> String? { pairs.first { $0.name == name }?.value }
}

