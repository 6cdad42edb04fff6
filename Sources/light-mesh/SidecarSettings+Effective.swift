import Foundation
import HTTPSidecar
import HTTPSidecarEngines
import MeshConfig
import MeshCore

/// `/config`: the effective configuration in the configuration file's own shape and key names
/// (durations written as the file writes them), so what `/config` shows can be saved and loaded as
/// a file. Secrets are redacted (client secrets, private-key paths, header values added by rules,
/// credentials and query values in URLs); a key with no value is left out.
extension SidecarSettings {
    func effectiveJSON() -> String {
        let data = (try? JSONSerialization.data(withJSONObject: effectiveDocument(), options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    func effectiveDocument() -> [String: Any] {
        let i = ingress, e = egress
        var ingressDoc: [String: Any] = [
            "listen": i.listen.description, "app": i.app.description, "max_body_bytes": i.maxBodyBytes,
            "header_timeout": Self.duration(i.headerTimeout), "min_body_rate": i.minBodyRate,
            "upstream_timeout": Self.duration(i.upstreamTimeout), "connect_timeout": Self.duration(i.connectTimeout),
            "max_headers": i.maxHeaders, "max_connections": i.maxConnections, "escaped_slashes": i.escapedSeparators.rawValue,
            "path_parameters": i.pathParameters.rawValue, "exact_case_routes": i.exactCasePolicy,
            "allow_underscore_headers": i.allowUnderscoreHeaders, "trusted_proxies": i.trustedProxies.map(\.description),
            "disabled": disabledOnPurpose.sorted(), "access_log": accessLog ? "stdout" : "off",
            "cors": ["origins": i.cors?.allowedOrigins ?? []],
            "ip": ["allow": i.ipFilter.allow.map(\.description), "deny": i.ipFilter.deny.map(\.description)],
            "headers": Self.rewrite(i.headers),
            "routes": i.routes.map { r -> [String: Any] in
                var route: [String: Any] = ["prefix": r.prefix, "middleware": r.middleware.map(\.rawValue)]
                route["rate_limit"] = r.rateLimit.map { ["rate": $0.rate, "burst": $0.burst] as [String: Any] }
                route["headers"] = r.headers.map(Self.rewrite)
                return route
            },
        ]
        ingressDoc["rate_limit"] = i.rateLimit.map { ["rate": $0.rate, "burst": $0.burst, "key": i.rateLimitKey.description] as [String: Any] }
        ingressDoc["tls"] = i.tls.map { t -> [String: Any] in
            var tls: [String: Any] = ["listen": t.listen.description, "certificate": t.certificateFile, "key": Self.redacted, "required": t.required]
            tls["client_ca"] = t.clientCAFile
            return tls
        }
        ingressDoc["jwt"] = jwt.map { j -> [String: Any] in
            var doc: [String: Any] = ["scopes": j.scopes]
            doc["jwks_file"] = j.jwksFile
            doc["jwks_url"] = j.jwksURL.map(Self.redactedURL)
            doc["jwks_ca"] = j.jwksCA
            doc["issuer"] = j.issuer
            doc["audience"] = j.audience
            return doc
        }
        var egressDoc: [String: Any] = [
            "listen": e.listen.description, "lb_policy": egressPolicy.rawValue,
            "connect_timeout": Self.duration(e.connectTimeout), "attempt_timeout": Self.duration(e.attemptTimeout),
            "request_timeout": Self.duration(e.requestTimeout), "idle_timeout": Self.duration(e.idleTimeout),
            "max_body_bytes": e.maxBodyBytes, "max_headers": e.maxHeaders, "max_connections": e.maxConnections,
            "service_url_allow": e.serviceURLAllowList.map(Self.redactedURL),
            "services": Dictionary(e.services.map { ($0.name, Self.service($0)) }, uniquingKeysWith: { a, _ in a }),
            "routes": Dictionary(e.pathRoutes.map { ($0.prefix, $0.service) }, uniquingKeysWith: { a, _ in a }),
        ]
        egressDoc["service_url_tls"] = e.serviceURLTLS.map(Self.tls)
        var admin: [String: Any] = ["listen": adminListen.description]
        admin["app_health_path"] = appHealthPath
        return ["ingress": ingressDoc, "egress": egressDoc, "admin": admin, "threads": threads, "drain_timeout": Self.duration(drainTimeout)]
    }

    private static let redacted = "<redacted>"

    private static func duration(_ d: Duration) -> String { DurationText.format(d) }

    private static func service(_ s: ServiceConfig) -> [String: Any] {
        var doc: [String: Any] = ["lb_policy": s.pool.policy.rawValue, "headers": rewrite(s.headers)]
        switch s.discovery {
        case .fixed(let endpoints): doc["endpoints"] = endpoints.map(\.description)
        case .dns(let name, let port, let every): (doc["dns"], doc["refresh"]) = ("\(name):\(port)", duration(every))
        case .file(let path, let every): (doc["file"], doc["refresh"]) = (path, duration(every))
        }
        doc["tls"] = s.tls.map(tls)
        doc["oauth"] = s.oauth.map { o -> [String: Any] in
            var oauth: [String: Any] = ["token_url": redactedURL(o.tokenURL), "client_id": o.clientId, "client_secret": redacted, "timeout": duration(o.timeout)]
            oauth["scope"] = o.scope
            oauth["audience"] = o.audience
            oauth["ca"] = o.tls?.caFile
            return oauth
        }
        var timeouts: [String: Any] = [:]
        timeouts["connect"] = s.timeouts.connect.map(duration)
        timeouts["attempt"] = s.timeouts.attempt.map(duration)
        timeouts["request"] = s.timeouts.request.map(duration)
        timeouts["idle"] = s.timeouts.idle.map(duration)
        doc["timeouts"] = timeouts
        let p = s.pool
        doc["retry"] = ["max_attempts": p.retry.maxAttempts, "retry_non_idempotent": p.retry.retryNonIdempotent, "budget_ratio": p.retry.budgetRatio,
                        "budget_min_per_second": p.retry.budgetMinPerSecond, "budget_window": duration(p.retry.budgetWindow)] as [String: Any]
        doc["breaker"] = ["consecutive_failures": p.breaker.consecutiveFailures, "open_duration": duration(p.breaker.openDuration),
                          "half_open_probes": p.breaker.halfOpenProbes] as [String: Any]
        doc["outlier"] = ["consecutive_5xx": p.outlier.consecutiveServerErrors, "consecutive_gateway_errors": p.outlier.consecutiveGatewayErrors,
                          "base_ejection_time": duration(p.outlier.baseEjectionTime), "max_ejected_percent": p.outlier.maxEjectedPercent] as [String: Any]
        return doc
    }

    private static func tls(_ t: UpstreamTLS) -> [String: Any] {
        var doc: [String: Any] = [:]
        doc["ca"] = t.caFile
        doc["certificate"] = t.certificateFile
        doc["key"] = t.keyFile.map { _ in redacted }
        doc["server_name"] = t.serverName
        return doc
    }

    /// Header rules: values added are often credentials (API keys), so only their names show.
    private static func rewrite(_ r: HeaderRewrite) -> [String: Any] {
        func rules(_ h: HeaderRules) -> [String: Any] { ["add": h.add.mapValues { _ in redacted }, "remove": h.remove, "rename": h.rename] }
        return ["request": rules(r.request), "response": rules(r.response)]
    }
}
