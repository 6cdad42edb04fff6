import HTTPSidecar
import MeshCore
import SidecarAuth

/// Settings of the ingress listener: where it listens, where the app is, and the middleware chain.
public struct IngressConfig: Sendable {
    public var listen = MeshAddress(host: "0.0.0.0", port: 9080)
    public var app = MeshAddress(host: "127.0.0.1", port: 8080)
    /// Bodies larger than this get 413 (from `Content-Length` before reading, or while reading).
    public var maxBodyBytes = 10 * 1024 * 1024
    /// A client must finish sending a request head within this long (slow-header defence), and may
    /// not pause longer than this within a body.
    public var headerTimeout: Duration = .seconds(10)
    /// The slowest average a body may arrive at, in bytes per second (0: no minimum). The body's
    /// deadline starts at ``headerTimeout`` after its head and moves one second later for every
    /// this many bytes, so a body trickled in to hold a connection is cut off (408) while a fast
    /// one never notices. Time the sidecar itself holds the client back (the app reads slowly) is
    /// not counted against it.
    public var minBodyRate = 1024
    /// The app must answer within this long, or the client gets 504.
    public var upstreamTimeout: Duration = .seconds(30)
    public var connectTimeout: Duration = .seconds(2)
    public var ipFilter = IPFilter()
    public var cors: CORSPolicy?
    public var rateLimit: RateLimiter.Config?
    /// What the rate limit counts by: client address (default), a header, or the JWT subject.
    public var rateLimitKey = RateLimitKey.clientAddress
    /// Header edits on the way to the app (request) and back (response).
    public var headers = HeaderRewrite()
    /// The TLS listener (default port 9445), when a certificate and key are configured.
    public var tls: ServerTLS?
    /// Middleware chosen and ordered per path prefix (see ``IngressRoute``); other paths get
    /// ``defaultMiddleware``.
    public var routes: [IngressRoute] = []
    /// Idle keep-alive connections kept to the app per event loop (below the concurrency clients
    /// drive, connections churn).
    public var maxIdleAppConnections = 256
    /// Header fields a request may have (more get 431): bounds the work one head can cause.
    public var maxHeaders = 100
    /// Client connections one listener keeps open at once; more are closed on accept.
    public var maxConnections = 4096
    /// What `%2F`, `%5C` and `%2E` in a path do (see ``RequestTarget``); refused by default.
    public var escapedSeparators = RequestTarget.EscapedSeparators.reject
    /// What path parameters (`;x` in a segment) do (see ``RequestTarget``); stripped by default, so
    /// the policy and the app see the same path.
    public var pathParameters = RequestTarget.PathParameters.strip
    /// Header fields whose names contain `_` reach the app; dropped by default (as nginx and Envoy
    /// do), since CGI-style stacks map `X_Forwarded_For` onto the same variable as `X-Forwarded-For`.
    public var allowUnderscoreHeaders = false
    /// Route prefixes match letters exactly; by default without case, so `/ADMIN` is under `/admin`.
    public var exactCasePolicy = false
    /// Proxies whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are believed. From any other
    /// client those headers are removed and set afresh from the connection.
    public var trustedProxies: [CIDR] = []
    public init() {}
}

extension IngressConfig {
    /// Whether `client` (a peer address) is one of ``trustedProxies``, whose forwarding headers are kept.
    func trusts(_ client: String?) -> Bool {
        guard !trustedProxies.isEmpty, let client, let address = CIDR.parse(client) else { return false }
        return trustedProxies.contains { $0.contains(address) }
    }
}

/// The live objects the ingress runs with beside its configuration (which is plain data): built
/// from settings in the composition root (`light-mesh`), or by a test or the simulator, and handed
/// to the policy with the configuration.
public struct IngressServices: Sendable {
    /// Bearer-token verification; requests without a valid token get 401 (403 for missing scopes).
    public var jwt: JWTAuthenticator?
    /// One JSON line per request, when set (written by the NIO driver).
    public var accessLog: AccessLog?

    public init(jwt: JWTAuthenticator? = nil, accessLog: AccessLog? = nil) {
        self.jwt = jwt
        self.accessLog = accessLog
    }
}
