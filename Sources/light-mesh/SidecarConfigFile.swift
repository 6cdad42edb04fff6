import ArgumentParser
import Foundation
import MeshConfig
import Yams

/// Reads `light-mesh http-sidecar --config FILE`: YAML mirroring the command's options, every key
/// validated (an unknown or malformed key is refused naming its path), and every scalar overridable
/// by an environment variable `LIGHT_MESH_<PATH>` (`LIGHT_MESH_INGRESS_LISTEN`, lists comma-separated).
enum SidecarConfigFile {
    typealias Me = SidecarConfigFile
    static func apply(_ path: String, to command: inout HTTPSidecarCommand, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ConfigError(key: "", "cannot read \(path)") }
        var top = try YAMLFields.document(text, source: path)
        let env = Overrides(environment)

        var ingress = try top.child("ingress")
        command.listen = try Me.first(env.string("ingress.listen"), ingress.string("listen")) ?? command.listen
        command.app = try Me.first(env.string("ingress.app"), ingress.string("app")) ?? command.app
        command.maxBodyBytes = try Me.first(env.int("ingress.max_body_bytes"), ingress.int("max_body_bytes")) ?? command.maxBodyBytes
        command.headerTimeout = try Me.first(env.seconds("ingress.header_timeout"), ingress.duration("header_timeout")?.seconds) ?? command.headerTimeout
        command.upstreamTimeout = try Me.first(env.seconds("ingress.upstream_timeout"), ingress.duration("upstream_timeout")?.seconds) ?? command.upstreamTimeout
        if ingress.has("rate_limit") || env.has("ingress.rate_limit.rate") {
            var r = try ingress.child("rate_limit")
            command.rateLimit = try Me.first(env.double("ingress.rate_limit.rate"), r.double("rate"))
            command.burst = try Me.first(env.int("ingress.rate_limit.burst"), r.int("burst")) ?? command.burst
            try r.rejectUnknownKeys()
        }
        if let log = try Me.first(env.string("ingress.access_log"), ingress.string("access_log")) {
            guard log == "stdout" || log == "off" else { throw ConfigError(key: "ingress.access_log", "must be stdout or off") }
            command.accessLog = log == "stdout"
        }
        var cors = try ingress.child("cors")
        command.corsOrigins = try Me.first(env.list("ingress.cors.origins"), cors.strings("origins")) ?? command.corsOrigins
        try cors.rejectUnknownKeys()
        var ip = try ingress.child("ip")
        command.allow = try Me.first(env.list("ingress.ip.allow"), ip.strings("allow")) ?? command.allow
        command.deny = try Me.first(env.list("ingress.ip.deny"), ip.strings("deny")) ?? command.deny
        try ip.rejectUnknownKeys()
        var jwt = try ingress.child("jwt")
        command.jwksFile = try Me.first(env.string("ingress.jwt.jwks_file"), jwt.string("jwks_file")) ?? command.jwksFile
        command.jwtIssuer = try Me.first(env.string("ingress.jwt.issuer"), jwt.string("issuer")) ?? command.jwtIssuer
        command.jwtAudience = try Me.first(env.string("ingress.jwt.audience"), jwt.string("audience")) ?? command.jwtAudience
        if jwt.has("scopes") {
            var scopes = try jwt.child("scopes")
            command.jwtScopes = try scopes.keys.map { prefix in "\(prefix)=\((try scopes.strings(prefix) ?? []).joined(separator: " "))" }
        }
        try jwt.rejectUnknownKeys()
        try ingress.rejectUnknownKeys()

        var egress = try top.child("egress")
        command.egressListen = try Me.first(env.string("egress.listen"), egress.string("listen")) ?? command.egressListen
        command.lbPolicy = try Me.first(env.string("egress.lb_policy"), egress.string("lb_policy")) ?? command.lbPolicy
        if egress.has("services") {
            var services = try egress.child("services")
            command.services = try services.keys.map { name in
                var service = try services.child(name)
                guard let endpoints = try service.strings("endpoints"), !endpoints.isEmpty else {
                    throw ConfigError(key: service.name("endpoints"), "a service needs endpoints: [HOST:PORT, ...]")
                }
                try service.rejectUnknownKeys()
                return "\(name)=\(endpoints.joined(separator: ","))"
            }
        }
        if egress.has("routes") {
            var routes = try egress.child("routes")
            command.routes = try routes.keys.map { prefix in
                guard let service = try routes.string(prefix) else { throw ConfigError(key: routes.name(prefix), "expected a service name") }
                return "\(prefix)=\(service)"
            }
        }
        try egress.rejectUnknownKeys()

        var admin = try top.child("admin")
        command.adminListen = try Me.first(env.string("admin.listen"), admin.string("listen")) ?? command.adminListen
        command.appHealthPath = try Me.first(env.string("admin.app_health_path"), admin.string("app_health_path")) ?? command.appHealthPath
        try admin.rejectUnknownKeys()
        command.threads = try Me.first(env.int("threads"), top.int("threads")) ?? command.threads
        command.drainTimeout = try Me.first(env.seconds("drain_timeout"), top.duration("drain_timeout")?.seconds) ?? command.drainTimeout
        try top.rejectUnknownKeys()
    }

    /// The environment's value when set, else the file's. Both are evaluated, so the file's key is
    /// always read (and so never reported as unknown) even when a variable overrides it.
    static func first<T>(_ override: T?, _ file: T?) -> T? { override ?? file }

    /// `LIGHT_MESH_<PATH>` variables, PATH being the key path upper-cased with `.` as `_`.
    struct Overrides {
        let environment: [String: String]
        init(_ environment: [String: String]) { self.environment = environment }

        static func variable(_ path: String) -> String {
            "LIGHT_MESH_" + path.uppercased().replacingOccurrences(of: ".", with: "_")
        }
        func has(_ path: String) -> Bool { environment[Self.variable(path)] != nil }
        func string(_ path: String) -> String? { environment[Self.variable(path)] }
        func list(_ path: String) -> [String]? { string(path).map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } }
        func int(_ path: String) throws -> Int? {
            guard let s = string(path) else { return nil }
            guard let v = Int(s) else { throw ConfigError(key: Self.variable(path), "expected an integer, got '\(s)'") }
            return v
        }
        func double(_ path: String) throws -> Double? {
            guard let s = string(path) else { return nil }
            guard let v = Double(s) else { throw ConfigError(key: Self.variable(path), "expected a number, got '\(s)'") }
            return v
        }
        func seconds(_ path: String) throws -> Double? {
            guard let s = string(path) else { return nil }
            guard let d = DurationText.parse(s) else { throw ConfigError(key: Self.variable(path), "expected a duration such as 10s, got '\(s)'") }
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
    }
}
