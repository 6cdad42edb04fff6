import ArgumentParser
import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import Logging
import MeshCore
import NIOPosix
import Prometheus
import MeshConfig
import SidecarAuth

struct HTTPSidecarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-sidecar",
        abstract: "Run the HTTP sidecar: ingress in front of the app, and egress for the app's outgoing calls.",
        discussion: """
            Ingress: keep-alive proxying to the app, hop-by-hop header removal, X-Forwarded-*,
            X-Correlation-Id, W3C traceparent (new span per hop), IP allow/deny, CORS, rate limiting
            (GCRA, RateLimit-* and Retry-After), body-size limit, header timeout, smuggling defence.
            Egress (with --service): the app names a service by a service_id header, a Host equal to the
            service name, or a --route path prefix; the sidecar balances (peak-EWMA by default), breaks
            circuits, ejects outliers and retries safe requests under a budget. 503 when no endpoint is
            healthy, 504 on timeout, 404 for an unknown service, 403 for service_url.
            SIGTERM or SIGINT stops accepting and drains in-flight requests up to --drain-timeout.
            Admin (--admin-listen): /health/live, /health/ready (ready when --app-health-path answers),
            /metrics (Prometheus), /config, /endpoints.
            JWT (--jwks-file): 401 with WWW-Authenticate for a missing, forged, expired or misaddressed
            token (alg none and HMAC-with-public-key are refused), 403 for missing scopes.
            TLS, discovery beyond static endpoints and YAML configuration are not in this build yet.
            """
    )

    @Option(help: "YAML configuration (keys mirror these options; LIGHT_MESH_<KEY_PATH> variables override it). With it, the file and the variables configure everything.") var config: String?
    @Option(help: "Listen address, HOST:PORT.") var listen = "0.0.0.0:9080"
    @Option(help: "The app, HOST:PORT.") var app = "127.0.0.1:8080"
    @Option(help: "Largest request body in bytes (larger: 413).") var maxBodyBytes = 10 * 1024 * 1024
    @Option(help: "Seconds a client may take to send a request head.") var headerTimeout = 10.0
    @Option(help: "Seconds the app may take to answer (then 504).") var upstreamTimeout = 30.0
    @Option(help: "Requests per second per client address (off when absent).") var rateLimit: Double?
    @Option(help: "Burst allowed above the rate.") var burst = 20
    @Option(name: .customLong("cors-origin"), help: "Allowed CORS origin (repeatable; * for any).") var corsOrigins: [String] = []
    @Option(name: .customLong("allow"), help: "Allowed client CIDR (repeatable; when given, only these pass).") var allow: [String] = []
    @Option(name: .customLong("deny"), help: "Denied client CIDR (repeatable; deny wins).") var deny: [String] = []
    @Option(help: "Egress listen address, HOST:PORT (loopback by default: not an open proxy).") var egressListen = "127.0.0.1:9090"
    @Option(name: .customLong("service"), help: "Egress service: NAME=HOST:PORT[,HOST:PORT...] (repeatable).") var services: [String] = []
    @Option(name: .customLong("route"), help: "Egress path route: PREFIX=SERVICE (repeatable).") var routes: [String] = []
    @Option(help: "Egress load balancing: peak-ewma, least-request or round-robin.") var lbPolicy = "peak-ewma"
    @Option(help: "Verify Authorization: Bearer JWTs against this JWKS file (RS256, ES256; reloaded on an unknown kid).") var jwksFile: String?
    @Option(help: "Required JWT issuer (iss).") var jwtIssuer: String?
    @Option(help: "Required JWT audience (aud).") var jwtAudience: String?
    @Option(name: .customLong("jwt-scope"), help: "Scopes a path prefix requires: PREFIX=SCOPE[ SCOPE...] (repeatable).") var jwtScopes: [String] = []
    @Option(help: "Admin listen address, HOST:PORT (loopback by default).") var adminListen = "127.0.0.1:9901"
    @Option(help: "App path /health/ready checks (ready without a check when absent).") var appHealthPath: String?
    @Flag(help: "Write a JSON access-log line per ingress request to standard output.") var accessLog = false
    @Option(help: "Event-loop threads.") var threads = 1
    @Option(help: "Seconds to wait for in-flight requests on SIGTERM.") var drainTimeout = 10.0

    func validate() throws {
        _ = try address(listen, "--listen")
        _ = try address(app, "--app")
        guard maxBodyBytes >= 0 else { throw ValidationError("--max-body-bytes must not be negative") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if let r = rateLimit, r <= 0 { throw ValidationError("--rate-limit must be positive") }
        guard burst >= 1 else { throw ValidationError("--burst must be at least 1") }
        for c in allow + deny where CIDR(c) == nil { throw ValidationError("'\(c)' is not a CIDR such as 10.0.0.0/8") }
        _ = try address(egressListen, "--egress-listen")
        _ = try address(adminListen, "--admin-listen")
        if let p = appHealthPath, !p.hasPrefix("/") { throw ValidationError("--app-health-path must start with /") }
        for rule in jwtScopes where rule.split(separator: "=", maxSplits: 1).count != 2 { throw ValidationError("--jwt-scope expects PREFIX=SCOPE, got '\(rule)'") }
        if jwksFile == nil && (jwtIssuer != nil || jwtAudience != nil || !jwtScopes.isEmpty) { throw ValidationError("--jwt-* options need --jwks-file") }
        _ = try egressServices()
        guard LoadBalancingPolicy(rawValue: lbPolicy) != nil else { throw ValidationError("--lb-policy must be peak-ewma, least-request or round-robin") }
        for r in routes where r.split(separator: "=").count != 2 { throw ValidationError("--route expects PREFIX=SERVICE, got '\(r)'") }
    }

    /// The effective settings as JSON for /config (no secrets are configurable yet).
    func effectiveConfigJSON() -> String {
        func list(_ xs: [String]) -> String { "[" + xs.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
        return """
            {"ingress":{"listen":"\(listen)","app":"\(app)","max_body_bytes":\(maxBodyBytes),"header_timeout_s":\(headerTimeout),\
            "upstream_timeout_s":\(upstreamTimeout),"rate_limit":\(rateLimit.map { "{\"rate\":\($0),\"burst\":\(burst)}" } ?? "null"),\
            "cors_origins":\(list(corsOrigins)),"allow":\(list(allow)),"deny":\(list(deny))},\
            "egress":{"listen":"\(egressListen)","services":\(list(services)),"routes":\(list(routes)),"lb_policy":"\(lbPolicy)"},\
            "admin":{"listen":"\(adminListen)","app_health_path":\(appHealthPath.map { "\"\($0)\"" } ?? "null")},"threads":\(threads)}
            """
    }

    func egressServices() throws -> [ServiceConfig] {
        try services.map { spec in
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--service expects NAME=HOST:PORT[,HOST:PORT], got '\(spec)'") }
            let endpoints = try parts[1].split(separator: ",").map { try address(String($0), "--service \(parts[0])") }
            guard !endpoints.isEmpty else { throw ValidationError("--service \(parts[0]) has no endpoints") }
            var s = ServiceConfig(name: parts[0], endpoints: endpoints)
            s.pool.policy = LoadBalancingPolicy(rawValue: lbPolicy) ?? .peakEWMA
            return s
        }
    }

    func address(_ text: String, _ option: String) throws -> MeshAddress {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option) expects HOST:PORT, got '\(text)'")
        }
        return MeshAddress(host: String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
    }

    /// This command with the configuration file (and its environment overrides) applied.
    func resolved() throws -> HTTPSidecarCommand {
        guard let config else { return self }
        var copy = self
        do {
            try SidecarConfigFile.apply(config, to: &copy)
        } catch let error as ConfigError {
            throw ValidationError("\(config): \(error)")
        }
        try copy.validate()
        return copy
    }

    func run() async throws {
        let sidecar = try await resolved().start()
        await waitForSignal()
        try await sidecar.stop()
    }

    /// The running listeners, so `up` can start the sidecar next to other parts.
    struct Running {
        let group: MultiThreadedEventLoopGroup
        let ingress: IngressServer
        let egress: EgressServer?
        let admin: AdminServer
        let drainTimeout: Duration

        /// Stops admin and egress, drains the ingress, shuts the event loops down.
        func stop() async throws {
            try await admin.stop()
            try await egress?.stop()
            let left = try await ingress.drain(deadline: drainTimeout)
            FileHandle.standardError.write(Data("light-mesh http-sidecar: drained (\(left) request(s) cut off)\n".utf8))
            try await group.shutdownGracefully()
        }
    }

    /// Starts ingress, egress (when services are configured) and admin.
    func start() async throws -> Running {
        var config = IngressConfig()
        config.listen = try address(listen, "--listen")
        config.app = try address(app, "--app")
        config.maxBodyBytes = maxBodyBytes
        config.headerTimeout = .milliseconds(Int64(headerTimeout * 1000))
        config.upstreamTimeout = .milliseconds(Int64(upstreamTimeout * 1000))
        config.rateLimit = rateLimit.map { RateLimiter.Config(rate: $0, burst: burst) }
        config.cors = corsOrigins.isEmpty ? nil : CORSPolicy(allowedOrigins: corsOrigins)
        config.ipFilter = IPFilter(allow: allow.compactMap(CIDR.init), deny: deny.compactMap(CIDR.init))
        if let jwksFile {
            var policy = JWTPolicy()
            policy.issuer = jwtIssuer
            policy.audience = jwtAudience
            policy.requiredScopes = jwtScopes.map { r in
                let p = r.split(separator: "=", maxSplits: 1).map(String.init)
                return (p[0], p[1].split(separator: " ").map(String.init))
            }
            do {
                config.jwt = try await JWTAuthenticator(policy: policy, jwksFile: jwksFile)
            } catch {
                throw ValidationError("--jwks-file \(jwksFile): \(error)")
            }
        }
        if accessLog { config.accessLog = AccessLog() }
        var logger = Logger(label: "light-mesh.ingress")
        logger.logLevel = .warning
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let registry = PrometheusCollectorRegistry()
        let metrics = SidecarMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let ingress = IngressServer(config: config, group: group, logger: logger, metrics: metrics)
        let bound = try await ingress.start()
        FileHandle.standardError.write(Data("light-mesh http-sidecar: ingress on \(bound), app at \(config.app)\n".utf8))
        var egress: EgressServer?
        if !services.isEmpty {
            var e = EgressConfig()
            e.listen = try address(egressListen, "--egress-listen")
            e.services = try egressServices()
            e.pathRoutes = routes.map { r in let p = r.split(separator: "=").map(String.init); return (p[0], p[1]) }
            let server = try EgressServer(config: e, group: group, metrics: metrics)
            let at = try await server.start()
            FileHandle.standardError.write(Data("light-mesh http-sidecar: egress on \(at) for \(e.services.map(\.name).joined(separator: ", "))\n".utf8))
            egress = server
        }
        let effective = effectiveConfigJSON()
        let admin = AdminServer(listen: try address(adminListen, "--admin-listen"), group: group, sources: AdminServer.Sources(
            registry: registry, configJSON: { effective }, egress: egress, appHealth: appHealthPath.map { (config.app, $0) }))
        let adminAt = try await admin.start()
        FileHandle.standardError.write(Data("light-mesh http-sidecar: admin on \(adminAt)\n".utf8))
        return Running(group: group, ingress: ingress, egress: egress, admin: admin, drainTimeout: .milliseconds(Int64(drainTimeout * 1000)))
    }
}

/// Suspends until SIGINT or SIGTERM.
func waitForSignal() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let once = SignalOnce(continuation)
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { once.fire() }
            source.resume()
            once.keep(source)
        }
    }
}

final class SignalOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var sources: [any DispatchSourceSignal] = []
    init(_ c: CheckedContinuation<Void, Never>) { continuation = c }
    func keep(_ s: any DispatchSourceSignal) { lock.lock(); sources.append(s); lock.unlock() }
    func fire() {
        lock.lock()
        let c = continuation
        continuation = nil
        lock.unlock()
        c?.resume()
    }
}
