import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import SidecarAuth

/// Everything the HTTP sidecar runs with, from the command line or from a configuration file (and
/// its environment overrides). A reload builds a new one and hands the changes to the listeners.
struct SidecarSettings: Sendable {
    var ingress = IngressConfig()
    var egress = EgressConfig()
    var jwt: JWTSettings?
    var accessLog = false
    var adminListen = MeshAddress(host: "127.0.0.1", port: 9901)
    var appHealthPath: String?
    var threads = 1
    var drainTimeout: Duration = .seconds(10)
    /// Security sections the configuration file turns off on purpose (`ingress.disabled`).
    var disabledOnPurpose: Set<String> = []
    /// `LIGHT_MESH_*` variables the file reader never looked up, so they have no effect (reported at start and reload).
    var unknownVariables: [String] = []

    /// The listener configurations, with the JWT authenticator (`reuse` when the JWT settings did not change).
    func ingressConfig(group: any EventLoopGroup, reuse: (JWTSettings, JWTAuthenticator)? = nil) async throws -> IngressConfig {
        var config = ingress
        if let jwt {
            if let reuse, reuse.0 == jwt { config.jwt = reuse.1 } else { config.jwt = try await jwt.makeAuthenticator(group: group) }
        }
        if accessLog { config.accessLog = AccessLog() }
        return config
    }

    /// The effective configuration as JSON for `/config`, secrets redacted.
    func effectiveJSON() -> String {
        func seconds(_ d: Duration) -> Double { d.seconds }
        func tls(_ t: UpstreamTLS?) -> Any {
            guard let t else { return NSNull() }
            return ["ca": t.caFile ?? NSNull(), "certificate": t.certificateFile ?? NSNull(), "key": t.keyFile.map { _ in "<redacted>" } ?? NSNull(),
                    "server_name": t.serverName ?? NSNull()] as [String: Any]
        }
        // Header values added by rules are often credentials (API keys): only their names show.
        func rules(_ r: HeaderRewrite) -> Any {
            ["request": ["add": r.request.add.mapValues { _ in "<redacted>" }, "remove": r.request.remove, "rename": r.request.rename],
             "response": ["add": r.response.add.mapValues { _ in "<redacted>" }, "remove": r.response.remove, "rename": r.response.rename]]
        }
        let url = Self.redactedURL
        let i = ingress
        var ingressJSON: [String: Any] = [
            "listen": i.listen.description, "app": i.app.description, "max_body_bytes": i.maxBodyBytes,
            "header_timeout_s": seconds(i.headerTimeout), "min_body_rate": i.minBodyRate, "upstream_timeout_s": seconds(i.upstreamTimeout), "connect_timeout_s": seconds(i.connectTimeout),
            "rate_limit": i.rateLimit.map { ["rate": $0.rate, "burst": $0.burst, "key": i.rateLimitKey.description] as [String: Any] } ?? NSNull(),
            "cors_origins": i.cors?.allowedOrigins ?? [], "allow": i.ipFilter.allow.map(\.description), "deny": i.ipFilter.deny.map(\.description),
            "access_log": accessLog ? "stdout" : "off", "headers": rules(i.headers),
            "max_headers": i.maxHeaders, "max_connections": i.maxConnections, "escaped_slashes": i.escapedSeparators.rawValue,
            "path_parameters": i.pathParameters.rawValue, "exact_case_routes": i.exactCasePolicy,
            "allow_underscore_headers": i.allowUnderscoreHeaders,
            "path_normalization": "absolute-form to origin-form, unreserved %-escapes decoded, encoded controls refused, path parameters \(i.pathParameters.rawValue), slashes merged, dot segments removed; prefixes match on segment boundaries\(i.exactCasePolicy ? "" : ", letters without case")",
            "trusted_proxies": i.trustedProxies.map(\.description), "disabled": disabledOnPurpose.sorted(),
            "routes": i.routes.map { r -> [String: Any] in
                ["prefix": r.prefix, "middleware": r.middleware.map(\.rawValue),
                 "rate_limit": r.rateLimit.map { ["rate": $0.rate, "burst": $0.burst] as [String: Any] } ?? NSNull(),
                 "headers": r.headers.map { rules($0) } ?? NSNull()]
            },
        ]
        ingressJSON["tls"] = i.tls.map { ["listen": $0.listen.description, "certificate": $0.certificateFile, "key": "<redacted>", "client_ca": $0.clientCAFile ?? NSNull(), "required": $0.required] as [String: Any] } ?? NSNull()
        ingressJSON["jwt"] = jwt.map { ["jwks_file": $0.jwksFile ?? NSNull(), "jwks_url": $0.jwksURL.map(url) ?? NSNull(), "issuer": $0.issuer ?? NSNull(),
                                       "audience": $0.audience ?? NSNull(), "scopes": $0.scopes] as [String: Any] } ?? NSNull()
        var services: [String: Any] = [:]
        for s in egress.services {
            services[s.name] = [
                "discovery": url(s.discovery.description), "lb_policy": s.pool.policy.rawValue, "tls": tls(s.tls), "headers": rules(s.headers),
                "oauth": s.oauth.map { ["token_url": url($0.tokenURL), "client_id": $0.clientId, "client_secret": "<redacted>", "scope": $0.scope ?? NSNull(), "timeout_s": seconds($0.timeout)] as [String: Any] } ?? NSNull(),
                "retry": ["max_attempts": s.pool.retry.maxAttempts, "retry_non_idempotent": s.pool.retry.retryNonIdempotent,
                          "budget_ratio": s.pool.retry.budgetRatio, "budget_min_per_second": s.pool.retry.budgetMinPerSecond],
                "breaker": ["consecutive_failures": s.pool.breaker.consecutiveFailures, "open_duration_s": seconds(s.pool.breaker.openDuration),
                            "half_open_probes": s.pool.breaker.halfOpenProbes],
                "outlier": ["consecutive_5xx": s.pool.outlier.consecutiveServerErrors, "consecutive_gateway_errors": s.pool.outlier.consecutiveGatewayErrors,
                            "base_ejection_time_s": seconds(s.pool.outlier.baseEjectionTime), "max_ejected_percent": s.pool.outlier.maxEjectedPercent],
            ] as [String: Any]
        }
        let e = egress
        let egressJSON: [String: Any] = [
            "listen": e.listen.description, "services": services, "routes": Dictionary(e.pathRoutes.map { ($0.prefix, $0.service) }, uniquingKeysWith: { a, _ in a }),
            "service_url_allow": e.serviceURLAllowList.map(url), "max_headers": e.maxHeaders, "max_connections": e.maxConnections, "connect_timeout_s": seconds(e.connectTimeout), "attempt_timeout_s": seconds(e.attemptTimeout),
            "request_timeout_s": seconds(e.requestTimeout), "idle_timeout_s": seconds(e.idleTimeout), "max_body_bytes": e.maxBodyBytes,
        ]
        let all: [String: Any] = [
            "ingress": ingressJSON, "egress": egressJSON,
            "admin": ["listen": adminListen.description, "app_health_path": appHealthPath ?? NSNull()] as [String: Any],
            "threads": threads, "drain_timeout_s": seconds(drainTimeout),
        ]
        let data = (try? JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// A URL with any `user:password@` and query values redacted (`https://u:p@h/x?k=v` →
    /// `https://<redacted>@h/x?k=*`).
    static func redactedURL(_ text: String) -> String {
        var out = text
        if let scheme = out.range(of: "://") {
            let rest = out[scheme.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@") {
                out.replaceSubrange(scheme.upperBound..<at, with: "<redacted>")
            }
        }
        if let q = out.firstIndex(of: "?") {
            let query = out[out.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).map { pair in
                pair.firstIndex(of: "=").map { String(pair[..<$0]) + "=*" } ?? String(pair)
            }
            out = String(out[...q]) + query.joined(separator: "&")
        }
        return out
    }
}
