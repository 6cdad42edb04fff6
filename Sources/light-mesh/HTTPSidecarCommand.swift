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

    // Each flag writes the configuration key it stands for (``FlagDocument``), read by the file's
    // reader; a flag not given leaves the key, and its default, to the settings.
    @Option(help: "YAML configuration (see docs/configuration.md); LIGHT_MESH_<KEY_PATH> variables override it. With it, the file and the variables configure everything.") var config: String?
    @Option(help: "Listen address, HOST:PORT (default \(IngressConfig().listen)).") var listen: String?
    @Option(help: "The app, HOST:PORT (default \(IngressConfig().app)).") var app: String?
    @Option(help: "Largest request body in bytes, larger: 413 (default \(IngressConfig().maxBodyBytes)).") var maxBodyBytes: Int?
    @Option(help: "Seconds a client may take to send a request head, or pause within a body (then 408), or stay idle between requests (default \(IngressConfig().headerTimeout.seconds)).") var headerTimeout: Double?
    @Option(help: "Slowest average, in bytes per second, a request body may arrive at after the header timeout it starts with (then 408); 0: no minimum (default \(IngressConfig().minBodyRate)).") var minBodyRate: Int?
    @Option(help: "Seconds the app may take to start answering, and to pause within an answer, then 504 (default \(IngressConfig().upstreamTimeout.seconds)).") var upstreamTimeout: Double?
    @Option(help: "Requests per second per key (off when absent).") var rateLimit: Double?
    @Option(help: "Burst allowed above the rate (default 20; needs --rate-limit).") var burst: Int?
    @Option(help: "What the rate limit counts by: client_address (default), jwt_subject or header:NAME (needs --rate-limit).") var rateLimitKey: String?
    @Option(name: .customLong("cors-origin"), help: "Allowed CORS origin (repeatable; * for any).") var corsOrigins: [String] = []
    @Option(name: .customLong("allow"), help: "Allowed client CIDR (repeatable; when given, only these pass).") var allow: [String] = []
    @Option(name: .customLong("deny"), help: "Denied client CIDR (repeatable; deny wins).") var deny: [String] = []
    @Option(help: "TLS certificate chain (PEM) for the TLS ingress listener.") var tlsCert: String?
    @Option(help: "TLS private key (PEM) for the TLS ingress listener.") var tlsKey: String?
    @Option(help: "TLS ingress listen address, HOST:PORT (default 0.0.0.0:9445; needs --tls-cert and --tls-key).") var tlsListen: String?
    @Option(help: "Egress listen address, HOST:PORT (default \(EgressConfig().listen): loopback, not an open proxy).") var egressListen: String?
    @Option(name: .customLong("service"), help: "Egress service: NAME=HOST:PORT[,HOST:PORT...] (repeatable).") var services: [String] = []
    @Option(name: .customLong("route"), help: "Egress path route: PREFIX=SERVICE (repeatable).") var routes: [String] = []
    @Option(name: .customLong("service-url-allow"), help: "Origin a service_url header may name, e.g. https://api.example.com (repeatable).") var serviceURLAllow: [String] = []
    @Option(help: "Egress load balancing: peak-ewma (default), least-request or round-robin.") var lbPolicy: String?
    @OptionGroup(title: "JWT verification on the ingress") var jwt: JWTOptions
    @Option(help: "Admin listen address, HOST:PORT (default \(SidecarSettings().adminListen): loopback).") var adminListen: String?
    @Option(help: "App path /health/ready checks (ready without a check when absent).") var appHealthPath: String?
    @Flag(help: "Write a JSON access-log line per ingress request to standard output.") var accessLog = false
    @Option(help: "Event-loop threads (default \(SidecarSettings().threads)).") var threads: Int?
    @Option(help: "Seconds to wait for in-flight requests on SIGTERM (default \(SidecarSettings().drainTimeout.seconds)).") var drainTimeout: Double?
    @Option(help: "Header fields a request may have; more get 431 (default \(IngressConfig().maxHeaders)).") var maxHeaders: Int?
    @Option(help: "Client connections each listener keeps open at once; more are closed on accept (default \(IngressConfig().maxConnections)).") var maxConnections: Int?
    @Option(help: "What %2F, %5C and %2E in an ingress path do: reject (default, 400), decode, or keep.") var escapedSlashes: String?
    @Option(name: .customLong("trusted-proxy"), help: "A CIDR whose X-Forwarded-*, Forwarded and X-Real-IP are believed (repeatable); from others they are replaced.")
    var trustedProxies: [String] = []

    func validate() throws {
        if config == nil { _ = try settings() }
    }

    /// The settings: from the configuration file when given, else from the flags, read by the same reader.
    func settings() throws -> SidecarSettings {
        if let config {
            do {
                return try SidecarConfigFile.load(config)
            } catch let error as ConfigError {
                throw ValidationError("\(config): \(error)")
            }
        }
        let flags = try flagDocument()
        do {
            return try SidecarConfigFile.read(try flags.document(), environment: [:])
        } catch let error as ConfigError {
            throw flags.explain(error)
        }
    }

    /// The flags given, as the configuration keys they stand for.
    func flagDocument() throws -> FlagDocument {
        var d = FlagDocument()
        d.set(["ingress", "listen"], listen, flag: "--listen")
        d.set(["ingress", "app"], app, flag: "--app")
        d.set(["ingress", "max_body_bytes"], maxBodyBytes, flag: "--max-body-bytes")
        d.set(["ingress", "header_timeout"], FlagDocument.seconds(headerTimeout), flag: "--header-timeout")
        d.set(["ingress", "min_body_rate"], minBodyRate, flag: "--min-body-rate")
        d.set(["ingress", "upstream_timeout"], FlagDocument.seconds(upstreamTimeout), flag: "--upstream-timeout")
        if rateLimit == nil, burst != nil || rateLimitKey != nil { throw ValidationError("--burst and --rate-limit-key need --rate-limit") }
        d.set(["ingress", "rate_limit", "rate"], rateLimit, flag: "--rate-limit")
        d.set(["ingress", "rate_limit", "burst"], burst, flag: "--burst")
        d.set(["ingress", "rate_limit", "key"], rateLimitKey, flag: "--rate-limit-key")
        if !corsOrigins.isEmpty { d.set(["ingress", "cors", "origins"], corsOrigins, flag: "--cors-origin") }
        if !allow.isEmpty { d.set(["ingress", "ip", "allow"], allow, flag: "--allow") }
        if !deny.isEmpty { d.set(["ingress", "ip", "deny"], deny, flag: "--deny") }
        if tlsCert == nil, tlsKey == nil, tlsListen != nil { throw ValidationError("--tls-listen needs --tls-cert and --tls-key") }
        d.set(["ingress", "tls", "certificate"], tlsCert, flag: "--tls-cert")
        d.set(["ingress", "tls", "key"], tlsKey, flag: "--tls-key")
        d.set(["ingress", "tls", "listen"], tlsListen, flag: "--tls-listen")
        try jwt.write(into: &d, at: ["ingress", "jwt"])
        if accessLog { d.set(["ingress", "access_log"], "stdout", flag: "--access-log") }
        d.set(["ingress", "max_headers"], maxHeaders, flag: "--max-headers")
        d.set(["egress", "max_headers"], maxHeaders, flag: "--max-headers")
        d.set(["ingress", "max_connections"], maxConnections, flag: "--max-connections")
        d.set(["egress", "max_connections"], maxConnections, flag: "--max-connections")
        d.set(["ingress", "escaped_slashes"], escapedSlashes, flag: "--escaped-slashes")
        if !trustedProxies.isEmpty { d.set(["ingress", "trusted_proxies"], trustedProxies, flag: "--trusted-proxy") }
        d.set(["egress", "listen"], egressListen, flag: "--egress-listen")
        d.set(["egress", "lb_policy"], lbPolicy, flag: "--lb-policy")
        for spec in services {
            let (name, list) = try FlagDocument.pair(spec, flag: "--service", shape: "NAME=HOST:PORT[,HOST:PORT...]")
            d.set(["egress", "services", name, "endpoints"], list.split(separator: ",").map(String.init), flag: "--service")
        }
        for spec in routes {
            let (prefix, service) = try FlagDocument.pair(spec, flag: "--route", shape: "PREFIX=SERVICE")
            d.set(["egress", "routes", prefix], service, flag: "--route")
        }
        if !serviceURLAllow.isEmpty { d.set(["egress", "service_url_allow"], serviceURLAllow, flag: "--service-url-allow") }
        d.set(["admin", "listen"], adminListen, flag: "--admin-listen")
        d.set(["admin", "app_health_path"], appHealthPath, flag: "--app-health-path")
        d.set(["threads"], threads, flag: "--threads")
        d.set(["drain_timeout"], FlagDocument.seconds(drainTimeout), flag: "--drain-timeout")
        return d
    }

    func run() async throws {
        let sidecar = try await SidecarProcess.start(try settings(), configFile: config)
        await waitForSignal()
        try await sidecar.stop()
    }
}
