import ArgumentParser
import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import Logging
import MeshConfig
import MeshCore
import NIOPosix
import Prometheus
import SidecarAuth

struct HTTPSidecarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-sidecar",
        abstract: "Run the HTTP sidecar: ingress in front of the app, and egress for the app's outgoing calls.",
        discussion: """
            Ingress: keep-alive proxying to the app with streamed bodies and backpressure, hop-by-hop \
            header removal, X-Forwarded-*, X-Correlation-Id, W3C traceparent (new span per hop), IP \
            allow/deny, CORS, rate limiting (GCRA, RateLimit-* and Retry-After), body-size limit (413), \
            header limit (431), header timeout, smuggling defence (400 and close), JWT, and TLS \
            (--tls-cert/--tls-key: a second listener, 9445 by default).

            Egress (with --service): the app names a service by a service_id header, a Host equal to \
            the service name, or a --route path prefix; a service_url header only for \
            --service-url-allow origins (else 403). The sidecar balances (peak-EWMA by default), breaks \
            circuits, ejects outliers and retries safe requests under a budget: 503 when no endpoint is \
            healthy, 504 on timeout, 404 for an unknown service.

            Admin (--admin-listen): /health/live, /health/ready (ready when --app-health-path \
            answers), /metrics (Prometheus), /config (secrets redacted), /endpoints.

            JWT (--jwks-file or --jwks-url): 401 with WWW-Authenticate for a missing, forged, expired \
            or misaddressed token (alg none and HMAC-with-public-key are refused), 403 for missing scopes.

            With --config FILE everything comes from the YAML file and LIGHT_MESH_<KEY_PATH> \
            variables, including what has no flag: DNS and file discovery, TLS and mutual TLS to \
            upstreams, OAuth2 client-credentials tokens, header add/remove/rename, per-service \
            timeouts and retries. SIGHUP, or a change of the file, reloads it: an invalid file is \
            reported and the running configuration kept; a valid one applies to new requests without \
            dropping connections.

            SIGTERM or SIGINT stops accepting and drains in-flight requests up to the drain timeout.
            """
    )

    @Option(help: "YAML configuration (see docs/configuration.md); LIGHT_MESH_<KEY_PATH> variables override it. With it, the file and the variables configure everything.") var config: String?
    @Option(help: "Listen address, HOST:PORT.") var listen = "0.0.0.0:9080"
    @Option(help: "The app, HOST:PORT.") var app = "127.0.0.1:8080"
    @Option(help: "Largest request body in bytes (larger: 413).") var maxBodyBytes = 10 * 1024 * 1024
    @Option(help: "Seconds a client may take to send a request head, or pause within a body (then 408), or stay idle between requests.") var headerTimeout = 10.0
    @Option(help: "Slowest average, in bytes per second, a request body may arrive at after the header timeout it starts with (then 408); 0: no minimum.") var minBodyRate = 1024
    @Option(help: "Seconds the app may take to start answering, and to pause within an answer (then 504).") var upstreamTimeout = 30.0
    @Option(help: "Requests per second per key (off when absent).") var rateLimit: Double?
    @Option(help: "Burst allowed above the rate.") var burst = 20
    @Option(help: "What the rate limit counts by: client_address, jwt_subject or header:NAME.") var rateLimitKey = "client_address"
    @Option(name: .customLong("cors-origin"), help: "Allowed CORS origin (repeatable; * for any).") var corsOrigins: [String] = []
    @Option(name: .customLong("allow"), help: "Allowed client CIDR (repeatable; when given, only these pass).") var allow: [String] = []
    @Option(name: .customLong("deny"), help: "Denied client CIDR (repeatable; deny wins).") var deny: [String] = []
    @Option(help: "TLS certificate chain (PEM) for the TLS ingress listener.") var tlsCert: String?
    @Option(help: "TLS private key (PEM) for the TLS ingress listener.") var tlsKey: String?
    @Option(help: "TLS ingress listen address, HOST:PORT.") var tlsListen = "0.0.0.0:9445"
    @Option(help: "Egress listen address, HOST:PORT (loopback by default: not an open proxy).") var egressListen = "127.0.0.1:9090"
    @Option(name: .customLong("service"), help: "Egress service: NAME=HOST:PORT[,HOST:PORT...] (repeatable).") var services: [String] = []
    @Option(name: .customLong("route"), help: "Egress path route: PREFIX=SERVICE (repeatable).") var routes: [String] = []
    @Option(name: .customLong("service-url-allow"), help: "Origin a service_url header may name, e.g. https://api.example.com (repeatable).") var serviceURLAllow: [String] = []
    @Option(help: "Egress load balancing: peak-ewma, least-request or round-robin.") var lbPolicy = "peak-ewma"
    @OptionGroup(title: "JWT verification on the ingress") var jwt: JWTOptions
    @Option(help: "Admin listen address, HOST:PORT (loopback by default).") var adminListen = "127.0.0.1:9901"
    @Option(help: "App path /health/ready checks (ready without a check when absent).") var appHealthPath: String?
    @Flag(help: "Write a JSON access-log line per ingress request to standard output.") var accessLog = false
    @Option(help: "Event-loop threads.") var threads = 1
    @Option(help: "Seconds to wait for in-flight requests on SIGTERM.") var drainTimeout = 10.0
    @Option(help: "Header fields a request may have; more get 431.") var maxHeaders = 100
    @Option(help: "Client connections each listener keeps open at once; more are closed on accept.") var maxConnections = 4096
    @Option(help: "What %2F, %5C and %2E in an ingress path do: reject (400), decode, or keep.") var escapedSlashes = "reject"
    @Option(name: .customLong("trusted-proxy"), help: "A CIDR whose X-Forwarded-*, Forwarded and X-Real-IP are believed (repeatable); from others they are replaced.")
    var trustedProxies: [String] = []

    func validate() throws {
        if config == nil { _ = try settings() }
    }

    /// The settings: from the configuration file when given, else from the flags.
    func settings() throws -> SidecarSettings {
        if let config {
            do {
                return try SidecarConfigFile.load(config)
            } catch let error as ConfigError {
                throw ValidationError("\(config): \(error)")
            }
        }
        var s = SidecarSettings()
        s.ingress.listen = try address(listen, "--listen")
        s.ingress.app = try address(app, "--app")
        guard maxBodyBytes >= 0 else { throw ValidationError("--max-body-bytes must not be negative") }
        s.ingress.maxBodyBytes = maxBodyBytes
        guard headerTimeout > 0, upstreamTimeout > 0, drainTimeout >= 0 else { throw ValidationError("timeouts must be positive") }
        s.ingress.headerTimeout = .milliseconds(Int64(headerTimeout * 1000))
        guard minBodyRate >= 0 else { throw ValidationError("--min-body-rate must not be negative") }
        s.ingress.minBodyRate = minBodyRate
        s.ingress.upstreamTimeout = .milliseconds(Int64(upstreamTimeout * 1000))
        if let r = rateLimit {
            guard r > 0 else { throw ValidationError("--rate-limit must be positive") }
            guard burst >= 1 else { throw ValidationError("--burst must be at least 1") }
            s.ingress.rateLimit = RateLimiter.Config(rate: r, burst: burst)
        }
        guard let key = RateLimitKey(text: rateLimitKey) else { throw ValidationError("--rate-limit-key must be client_address, jwt_subject or header:NAME") }
        s.ingress.rateLimitKey = key
        s.ingress.cors = corsOrigins.isEmpty ? nil : CORSPolicy(allowedOrigins: corsOrigins)
        s.ingress.ipFilter = IPFilter(allow: try cidrs(allow), deny: try cidrs(deny))
        switch (tlsCert, tlsKey) {
        case (let cert?, let key?):
            var tls = ServerTLS(certificateFile: cert, keyFile: key)
            tls.listen = try address(tlsListen, "--tls-listen")
            s.ingress.tls = tls
        case (nil, nil): break
        default: throw ValidationError("--tls-cert and --tls-key go together")
        }
        s.jwt = try jwt.settings(section: "ingress.jwt")
        s.accessLog = accessLog
        s.egress.listen = try address(egressListen, "--egress-listen")
        guard let policy = LoadBalancingPolicy(rawValue: lbPolicy) else { throw ValidationError("--lb-policy must be peak-ewma, least-request or round-robin") }
        s.egressPolicy = policy
        s.egress.services = try services.map { spec in
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--service expects NAME=HOST:PORT[,HOST:PORT], got '\(spec)'") }
            let endpoints = try parts[1].split(separator: ",").map { try address(String($0), "--service \(parts[0])") }
            guard !endpoints.isEmpty else { throw ValidationError("--service \(parts[0]) has no endpoints") }
            var service = ServiceConfig(name: parts[0], endpoints: endpoints)
            service.pool.policy = policy
            return service
        }
        s.egress.pathRoutes = try routes.map { r in
            let p = r.split(separator: "=").map(String.init)
            guard p.count == 2 else { throw ValidationError("--route expects PREFIX=SERVICE, got '\(r)'") }
            guard services.contains(where: { $0.hasPrefix(p[1] + "=") }) else { throw ValidationError("--route \(r): no --service called \(p[1])") }
            return (p[0], p[1])
        }
        for origin in serviceURLAllow {
            guard let url = FetchURL(origin), url.target == "/" else { throw ValidationError("--service-url-allow expects an origin such as https://api.example.com, got '\(origin)'") }
        }
        s.egress.serviceURLAllowList = serviceURLAllow
        s.adminListen = try address(adminListen, "--admin-listen")
        if let p = appHealthPath, !p.hasPrefix("/") { throw ValidationError("--app-health-path must start with /") }
        s.appHealthPath = appHealthPath
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        s.threads = threads
        s.drainTimeout = .milliseconds(Int64(drainTimeout * 1000))
        guard maxHeaders >= 1, maxConnections >= 1 else { throw ValidationError("--max-headers and --max-connections must be at least 1") }
        s.ingress.maxHeaders = maxHeaders
        s.egress.maxHeaders = maxHeaders
        s.ingress.maxConnections = maxConnections
        s.egress.maxConnections = maxConnections
        guard let escaped = RequestTarget.EscapedSeparators(rawValue: escapedSlashes) else { throw ValidationError("--escaped-slashes must be reject, decode or keep") }
        s.ingress.escapedSeparators = escaped
        s.ingress.trustedProxies = try cidrs(trustedProxies)
        return s
    }

    private func cidrs(_ texts: [String]) throws -> [CIDR] {
        try texts.map { t in
            guard let c = CIDR(t) else { throw ValidationError("'\(t)' is not a CIDR such as 10.0.0.0/8") }
            return c
        }
    }

    func address(_ text: String, _ option: String) throws -> MeshAddress {
        guard let a = MeshAddress(parsing: text) else { throw ValidationError("\(option) expects HOST:PORT, got '\(text)'") }
        return a
    }

    func run() async throws {
        let sidecar = try await SidecarProcess.start(try settings(), configFile: config)
        await waitForSignal()
        try await sidecar.stop()
    }
}
