import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshConfig
import MeshCore
import Yams

/// Reads `light-mesh http-sidecar --config FILE` into ``SidecarSettings``: every key validated (an
/// unknown or malformed key is refused naming its path), and every scalar or list overridable by an
/// environment variable `LIGHT_MESH_<PATH>` (`LIGHT_MESH_INGRESS_LISTEN`,
/// `LIGHT_MESH_EGRESS_SERVICES_PETSTORE_OAUTH_CLIENT_SECRET`; lists comma-separated).
enum SidecarConfigFile {
    static func load(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SidecarSettings {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ConfigError(key: "", "cannot read \(path)") }
        let document = try YAMLFields.document(text, source: path)
        // An empty (or truncated-to-nothing) file is never "all defaults": a half-written file
        // during a reload must not turn every policy off.
        guard !document.keys.isEmpty else { throw ConfigError(key: "", "\(path) is empty; write at least one section (ingress, egress or admin)") }
        return try read(document, environment: environment)
    }

    /// Reads a configuration document: a file's, or the flags' (``FlagDocument``, with no environment).
    static func read(_ document: YAMLFields, environment: [String: String]) throws -> SidecarSettings {
        let consulted = ConsultedVariables()
        var top = Section(document, environment, consulted)
        var s = SidecarSettings()

        var ingress = try top.child("ingress")
        let i = s.ingress
        s.ingress.listen = try ingress.address("listen") ?? i.listen
        s.ingress.app = try ingress.address("app") ?? i.app
        s.ingress.maxBodyBytes = try ingress.int("max_body_bytes", min: 0) ?? i.maxBodyBytes
        s.ingress.headerTimeout = try ingress.duration("header_timeout") ?? i.headerTimeout
        guard s.ingress.headerTimeout > .zero else { throw ConfigError(key: ingress.name("header_timeout"), "must be positive") }
        s.ingress.minBodyRate = try ingress.int("min_body_rate", min: 0) ?? i.minBodyRate
        s.ingress.upstreamTimeout = try ingress.duration("upstream_timeout") ?? i.upstreamTimeout
        guard s.ingress.upstreamTimeout > .zero else { throw ConfigError(key: ingress.name("upstream_timeout"), "must be positive") }
        s.ingress.connectTimeout = try ingress.duration("connect_timeout") ?? i.connectTimeout
        s.ingress.maxHeaders = try ingress.int("max_headers", min: 1) ?? i.maxHeaders
        s.ingress.maxConnections = try ingress.int("max_connections", min: 1) ?? i.maxConnections
        if let text = try ingress.string("escaped_slashes") {
            guard let action = RequestTarget.EscapedSeparators(rawValue: text) else {
                throw ConfigError(key: ingress.name("escaped_slashes"), "must be reject, decode or keep")
            }
            s.ingress.escapedSeparators = action
        }
        if let text = try ingress.string("path_parameters") {
            guard let action = RequestTarget.PathParameters(rawValue: text) else {
                throw ConfigError(key: ingress.name("path_parameters"), "must be strip, reject or keep")
            }
            s.ingress.pathParameters = action
        }
        s.ingress.exactCasePolicy = try ingress.bool("exact_case_routes") ?? i.exactCasePolicy
        s.ingress.allowUnderscoreHeaders = try ingress.bool("allow_underscore_headers") ?? i.allowUnderscoreHeaders
        s.ingress.trustedProxies = try ingress.cidrs("trusted_proxies")
        for name in try ingress.strings("disabled") ?? [] {
            guard SecuritySection(rawValue: name) != nil else {
                throw ConfigError(key: ingress.name("disabled"), "unknown section '\(name)' (known: \(SecuritySection.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            s.disabledOnPurpose.insert(name)
        }
        var rate = try ingress.child("rate_limit")
        if let limit = try rate.rateLimit() {
            s.ingress.rateLimit = limit
            if let key = try rate.string("key") {
                guard let k = RateLimitKey(text: key) else { throw ConfigError(key: rate.name("key"), "must be client_address, jwt_subject or header:NAME") }
                s.ingress.rateLimitKey = k
            }
        }
        try rate.done()
        if let log = try ingress.string("access_log") {
            guard log == "stdout" || log == "off" else { throw ConfigError(key: ingress.name("access_log"), "must be stdout or off") }
            s.accessLog = log == "stdout"
        }
        var cors = try ingress.child("cors")
        if let origins = try cors.strings("origins"), !origins.isEmpty { s.ingress.cors = CORSPolicy(allowedOrigins: origins) }
        try cors.done()
        var ip = try ingress.child("ip")
        s.ingress.ipFilter = IPFilter(allow: try ip.cidrs("allow"), deny: try ip.cidrs("deny"))
        try ip.done()
        var jwt = try ingress.child("jwt")
        s.jwt = try JWTSettings.read(&jwt)
        var tls = try ingress.child("tls")
        let certificate = try tls.string("certificate"), key = try tls.string("key")
        if certificate != nil || key != nil {
            guard let certificate, let key else { throw ConfigError(key: tls.name(certificate == nil ? "certificate" : "key"), "TLS needs both certificate and key") }
            var server = ServerTLS(certificateFile: certificate, keyFile: key)
            server.listen = try tls.address("listen") ?? server.listen
            server.clientCAFile = try tls.string("client_ca")
            server.required = try tls.bool("required") ?? false
            s.ingress.tls = server
        }
        try tls.done()
        s.ingress.headers = try ingress.headerRewrite("headers")
        for var r in try ingress.children("routes") {
            guard let prefix = try r.string("prefix"), prefix.hasPrefix("/") else { throw ConfigError(key: r.name("prefix"), "a route needs a prefix starting with /") }
            let names = try r.strings("middleware") ?? []
            let middleware = try names.map { name in
                guard let m = IngressMiddleware(rawValue: name) else {
                    throw ConfigError(key: r.name("middleware"), "unknown middleware '\(name)' (known: \(IngressMiddleware.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return m
            }
            var route = IngressRoute(prefix: prefix, middleware: middleware)
            var rate = try r.child("rate_limit")
            route.rateLimit = try rate.rateLimit()
            try rate.done()
            if r.has("headers") { route.headers = try r.headerRewrite("headers") }
            try r.done()
            s.ingress.routes.append(route)
        }
        try ingress.done()

        var egress = try top.child("egress")
        let e = s.egress
        s.egress.listen = try egress.address("listen") ?? e.listen
        s.egress.connectTimeout = try egress.duration("connect_timeout") ?? e.connectTimeout
        s.egress.attemptTimeout = try egress.duration("attempt_timeout") ?? e.attemptTimeout
        s.egress.requestTimeout = try egress.duration("request_timeout") ?? e.requestTimeout
        s.egress.idleTimeout = try egress.duration("idle_timeout") ?? e.idleTimeout
        s.egress.maxBodyBytes = try egress.int("max_body_bytes", min: 0) ?? e.maxBodyBytes
        s.egress.maxHeaders = try egress.int("max_headers", min: 1) ?? e.maxHeaders
        s.egress.maxConnections = try egress.int("max_connections", min: 1) ?? e.maxConnections
        let defaultPolicy = try egress.policy("lb_policy") ?? .peakEWMA
        s.egressPolicy = defaultPolicy
        s.egress.serviceURLAllowList = try egress.strings("service_url_allow") ?? []
        for (n, origin) in s.egress.serviceURLAllowList.enumerated() {
            guard let url = FetchURL(origin), url.target == "/" else {
                throw ConfigError(key: egress.name("service_url_allow") + "[\(n)]", "expected an origin such as https://api.example.com, got '\(origin)'")
            }
        }
        if egress.has("service_url_tls") { s.egress.serviceURLTLS = try egress.upstreamTLS("service_url_tls") }
        var services = try egress.child("services")
        for name in services.keys {
            var service = try services.child(name)
            s.egress.services.append(try serviceConfig(name, &service, defaultPolicy: defaultPolicy))
            try service.done()
        }
        try services.done()
        var routes = try egress.child("routes")
        for prefix in routes.keys {
            guard let target = try routes.string(prefix) else { continue }
            guard s.egress.services.contains(where: { $0.name == target }) else { throw ConfigError(key: routes.name(prefix), "no service called \(target)") }
            s.egress.pathRoutes.append((prefix, target))
        }
        try routes.done()
        try egress.done()

        var admin = try top.child("admin")
        s.adminListen = try admin.address("listen") ?? s.adminListen
        s.appHealthPath = try admin.string("app_health_path")
        if let p = s.appHealthPath, !p.hasPrefix("/") { throw ConfigError(key: admin.name("app_health_path"), "must start with /") }
        try admin.done()
        s.threads = try top.int("threads", min: 1) ?? s.threads
        s.drainTimeout = try top.duration("drain_timeout") ?? s.drainTimeout
        try top.done()
        for section in SecuritySection.allCases where s.disabledOnPurpose.contains(section.rawValue) && section.isOn(in: s) {
            throw ConfigError(key: "ingress.disabled", "lists \(section.rawValue), which the file also configures")
        }
        s.unknownVariables = environment.keys.filter { $0.hasPrefix("LIGHT_MESH_") && !consulted.names.contains($0) }.sorted()
        return s
    }

    /// The ingress sections whose removal weakens security; a reload may drop one only when the new
    /// file lists it under `ingress.disabled` (so a truncated or mis-merged file cannot do it silently).
    enum SecuritySection: String, CaseIterable {
        case jwt
        case ip
        case rateLimit = "rate_limit"
        case cors
        case tlsRequired = "tls_required"

        func isOn(in s: SidecarSettings) -> Bool {
            switch self {
            case .jwt: s.jwt != nil
            case .ip: !s.ingress.ipFilter.allow.isEmpty || !s.ingress.ipFilter.deny.isEmpty
            case .rateLimit: s.ingress.rateLimit != nil
            case .cors: s.ingress.cors != nil
            case .tlsRequired: s.ingress.tls?.required ?? false
            }
        }
    }

    /// Refuses a reload that turns a security section off without saying so in `ingress.disabled`.
    static func refuseSilentWeakening(from old: SidecarSettings, to new: SidecarSettings) throws {
        for section in SecuritySection.allCases where section.isOn(in: old) && !section.isOn(in: new) && !new.disabledOnPurpose.contains(section.rawValue) {
            throw ConfigError(key: "ingress.\(section == .tlsRequired ? "tls.required" : section.rawValue)",
                              "the new file drops it; list \(section.rawValue) under ingress.disabled to turn it off on purpose")
        }
    }

    /// The `LIGHT_MESH_*` names the reader looked up while reading a file: one set but never looked
    /// up can have no effect (most likely misspelt; reported, not refused, since it may be meant
    /// for another container of the pod).
    final class ConsultedVariables {
        var names: Set<String> = []
    }

    static func serviceConfig(_ name: String, _ service: inout Section, defaultPolicy: LoadBalancingPolicy) throws -> ServiceConfig {
        let endpoints = try service.strings("endpoints"), dns = try service.string("dns"), file = try service.string("file")
        let refresh = try service.duration("refresh") ?? .seconds(dns != nil ? 5 : 1)
        guard refresh >= .milliseconds(100) else { throw ConfigError(key: service.name("refresh"), "must be at least 100ms") }
        let discovery: Discovery
        switch (endpoints, dns, file) {
        case (let list?, nil, nil):
            guard !list.isEmpty else { throw ConfigError(key: service.name("endpoints"), "a service needs at least one endpoint") }
            discovery = .fixed(try list.map { text in
                guard let a = MeshAddress(parsing: text) else { throw ConfigError(key: service.name("endpoints"), "expected HOST:PORT, got '\(text)'") }
                return a
            })
        case (nil, let name?, nil):
            guard let a = MeshAddress(parsing: name) else { throw ConfigError(key: service.name("dns"), "expected NAME:PORT, got '\(name)'") }
            discovery = .dns(name: a.host, port: a.port, every: refresh)
        case (nil, nil, let path?):
            discovery = .file(path: path, every: refresh)
        default:
            throw ConfigError(key: service.name("endpoints"), "a service needs exactly one of endpoints, dns or file")
        }
        var config = ServiceConfig(name: name, discovery: discovery)
        config.pool.policy = try service.policy("lb_policy") ?? defaultPolicy
        if service.has("tls") { config.tls = try service.upstreamTLS("tls") }
        var oauth = try service.child("oauth")
        if oauth.has("token_url") || oauth.hasOverride("token_url") {
            guard let url = try oauth.string("token_url"), FetchURL(url) != nil else { throw ConfigError(key: oauth.name("token_url"), "expected an http:// or https:// URL") }
            guard let id = try oauth.string("client_id") else { throw ConfigError(key: oauth.name("client_id"), "required with token_url") }
            guard let secret = try oauth.string("client_secret") else { throw ConfigError(key: oauth.name("client_secret"), "required with token_url") }
            var o = OAuthClientCredentials(tokenURL: url, clientId: id, clientSecret: secret, scope: try oauth.string("scope"))
            o.audience = try oauth.string("audience")
            o.tls = try oauth.string("ca").map { UpstreamTLS(caFile: $0) }
            o.timeout = try oauth.duration("timeout") ?? o.timeout
            config.oauth = o
        }
        try oauth.done()
        config.headers = try service.headerRewrite("headers")
        var timeouts = try service.child("timeouts")
        config.timeouts.connect = try timeouts.duration("connect")
        config.timeouts.attempt = try timeouts.duration("attempt")
        config.timeouts.request = try timeouts.duration("request")
        config.timeouts.idle = try timeouts.duration("idle")
        try timeouts.done()
        // The same reader as the scenario files' `http` section.
        try PoolSections.read(&service, into: &config.pool)
        return config
    }

    /// A YAML mapping whose every key can be overridden by `LIGHT_MESH_<PATH>`.
    struct Section: ConfigSection {
        var fields: YAMLFields
        let environment: [String: String]
        let consulted: ConsultedVariables

        init(_ fields: YAMLFields, _ environment: [String: String], _ consulted: ConsultedVariables) {
            self.fields = fields
            self.environment = environment
            self.consulted = consulted
        }

        static func variable(_ path: String) -> String {
            "LIGHT_MESH_" + path.uppercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
        }
        func name(_ key: String) -> String { fields.name(key) }
        var keys: [String] { fields.keys }
        mutating func has(_ key: String) -> Bool { fields.has(key) }
        func hasOverride(_ key: String) -> Bool { override(key) != nil }
        private func override(_ key: String) -> String? {
            let variable = Self.variable(name(key))
            consulted.names.insert(variable)
            return environment[variable]
        }

        mutating func child(_ key: String) throws -> Section { Section(try fields.child(key), environment, consulted) }
        mutating func children(_ key: String) throws -> [Section] { try fields.children(key).map { Section($0, environment, consulted) } }
        mutating func done() throws { try fields.rejectUnknownKeys() }

        /// The file's value is always read (so it never counts as unknown), the variable's wins.
        mutating func string(_ key: String) throws -> String? {
            let file = try fields.string(key)
            return override(key) ?? file
        }
        mutating func strings(_ key: String) throws -> [String]? {
            let file = try fields.strings(key)
            return override(key).map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? file
        }
        mutating func int(_ key: String, min: Int) throws -> Int? {
            let file = try fields.int(key)
            let value: Int?
            if let text = override(key) {
                guard let v = Int(text) else { throw ConfigError(key: Self.variable(name(key)), "expected an integer, got '\(text)'") }
                value = v
            } else {
                value = file
            }
            if let value, value < min { throw ConfigError(key: name(key), "must be at least \(min)") }
            return value
        }
        mutating func double(_ key: String) throws -> Double? {
            let file = try fields.double(key)
            guard let text = override(key) else { return file }
            guard let v = Double(text) else { throw ConfigError(key: Self.variable(name(key)), "expected a number, got '\(text)'") }
            return v
        }
        mutating func bool(_ key: String) throws -> Bool? {
            let file = try fields.string(key)
            guard let text = override(key) ?? file else { return nil }
            switch text.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: throw ConfigError(key: name(key), "expected true or false, got '\(text)'")
            }
        }
        mutating func duration(_ key: String) throws -> Duration? {
            let file = try fields.duration(key)
            guard let text = override(key) else { return file }
            guard let d = DurationText.parse(text) else { throw ConfigError(key: Self.variable(name(key)), "expected a duration such as 10s, got '\(text)'") }
            return d
        }
        mutating func address(_ key: String) throws -> MeshAddress? {
            guard let text = try string(key) else { return nil }
            guard let a = MeshAddress(parsing: text) else { throw ConfigError(key: name(key), "expected HOST:PORT, got '\(text)'") }
            return a
        }
        mutating func cidrs(_ key: String) throws -> [CIDR] {
            try (strings(key) ?? []).map { text in
                guard let c = CIDR(text) else { throw ConfigError(key: name(key), "'\(text)' is not a CIDR such as 10.0.0.0/8") }
                return c
            }
        }
        /// `{rate, burst}` of a rate-limit section (nil without a rate; burst 20 by default).
        mutating func rateLimit() throws -> RateLimiter.Config? {
            guard let value = try double("rate") else { return nil }
            guard value > 0 else { throw ConfigError(key: name("rate"), "must be positive") }
            return RateLimiter.Config(rate: value, burst: try int("burst", min: 1) ?? 20)
        }

        mutating func policy(_ key: String) throws -> LoadBalancingPolicy? {
            guard let text = try string(key) else { return nil }
            guard let p = LoadBalancingPolicy(rawValue: text) else { throw ConfigError(key: name(key), "must be peak-ewma, least-request or round-robin") }
            return p
        }
        mutating func upstreamTLS(_ key: String) throws -> UpstreamTLS {
            var t = try child(key)
            let tls = UpstreamTLS(caFile: try t.string("ca"), certificateFile: try t.string("certificate"), keyFile: try t.string("key"),
                                  serverName: try t.string("server_name"))
            if (tls.certificateFile == nil) != (tls.keyFile == nil) {
                throw ConfigError(key: t.name(tls.certificateFile == nil ? "certificate" : "key"), "a client certificate needs both certificate and key")
            }
            try t.done()
            return tls
        }
        mutating func headerRules(_ key: String) throws -> HeaderRules {
            var r = try child(key)
            var add: [String: String] = [:], rename: [String: String] = [:]
            var adds = try r.child("add")
            for k in adds.keys { add[k] = try adds.string(k) ?? "" }
            try adds.done()
            var renames = try r.child("rename")
            for k in renames.keys { rename[k] = try renames.string(k) ?? k }
            try renames.done()
            let rules = HeaderRules(remove: try r.strings("remove") ?? [], rename: rename, add: add)
            if let problem = rules.invalidEntry { throw ConfigError(key: r.fields.path, problem) }
            try r.done()
            return rules
        }
        mutating func headerRewrite(_ key: String) throws -> HeaderRewrite {
            var h = try child(key)
            let rewrite = HeaderRewrite(request: try h.headerRules("request"), response: try h.headerRules("response"))
            try h.done()
            return rewrite
        }
    }
}
