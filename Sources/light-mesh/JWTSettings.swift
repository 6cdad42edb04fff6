import ArgumentParser
import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOCore
import SidecarAuth

/// Where JWT verification keys come from, and the claims required: one shape for the HTTP
/// sidecar's ingress (`ingress.jwt`) and the Kafka sidecar's REST port (`rest.jwt`).
struct JWTSettings: Sendable, Hashable {
    var jwksFile: String?
    var jwksURL: String?
    /// CA for an `https` JWKS URL with a private CA.
    var jwksCA: String?
    var issuer: String?
    var audience: String?
    var scopes: [String: [String]] = [:]
    /// Where the settings came from (`ingress.jwt`, `rest.jwt`), for errors naming the key.
    var section = "ingress.jwt"

    var policy: JWTPolicy {
        var p = JWTPolicy()
        p.issuer = issuer
        p.audience = audience
        p.requiredScopes = scopes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return p
    }

    /// Loads the keys (fails naming the file or URL).
    func makeAuthenticator(group: any EventLoopGroup) async throws -> JWTAuthenticator {
        if let jwksURL {
            let loader = try DocumentLoader(url: jwksURL, group: group, tls: jwksCA.map { UpstreamTLS(caFile: $0) })
            do {
                return try await JWTAuthenticator(policy: policy) { try await loader.load() }
            } catch {
                throw ConfigError(key: section + ".jwks_url", "\(error)")
            }
        }
        let file = jwksFile ?? ""
        do {
            return try await JWTAuthenticator(policy: policy, jwksFile: file)
        } catch {
            throw ConfigError(key: section + ".jwks_file", "\(file): \(error)")
        }
    }

    /// The `jwt` section of a configuration file: nil when it names no keys (and sets nothing else).
    static func read(_ jwt: inout SidecarConfigFile.Section) throws -> JWTSettings? {
        let jwksFile = try jwt.string("jwks_file"), jwksURL = try jwt.string("jwks_url")
        var settings = JWTSettings(jwksFile: jwksFile, jwksURL: jwksURL, jwksCA: try jwt.string("jwks_ca"),
                                   issuer: try jwt.string("issuer"), audience: try jwt.string("audience"))
        settings.section = String(jwt.name("").dropLast())
        var scopes = try jwt.child("scopes")
        for prefix in scopes.keys { settings.scopes[prefix] = try scopes.strings(prefix) ?? [] }
        try scopes.done()
        try jwt.done()
        if jwksFile != nil && jwksURL != nil { throw ConfigError(key: jwt.name("jwks_url"), "set jwks_file or jwks_url, not both") }
        if jwksFile != nil || jwksURL != nil { return settings }
        var nothing = JWTSettings()
        nothing.section = settings.section
        if settings != nothing { throw ConfigError(key: jwt.name("jwks_file"), "JWT settings need jwks_file or jwks_url") }
        return nil
    }
}

/// The JWT flags both sidecars take.
struct JWTOptions: ParsableArguments {
    @Option(help: "Verify Authorization: Bearer JWTs against this JWKS file (RS256, ES256; reloaded on an unknown kid).") var jwksFile: String?
    @Option(help: "Verify JWTs against the JWKS at this URL (fetched at start and on an unknown kid).") var jwksURL: String?
    @Option(help: "Required JWT issuer (iss).") var jwtIssuer: String?
    @Option(help: "Required JWT audience (aud).") var jwtAudience: String?
    @Option(name: .customLong("jwt-scope"), help: "Scopes a path prefix requires: PREFIX=SCOPE[ SCOPE...] (repeatable).") var jwtScopes: [String] = []

    /// Writes the flags given as the `jwt` section's keys at `path` (the reader checks the rules:
    /// a JWKS file or URL, not both; issuer, audience and scopes only with one).
    func write(into d: inout FlagDocument, at path: [String]) throws {
        d.name(path, flags: "--jwks-file/--jwks-url/--jwt-*")
        d.set(path + ["jwks_file"], jwksFile, flag: "--jwks-file")
        d.set(path + ["jwks_url"], jwksURL, flag: "--jwks-url")
        d.set(path + ["issuer"], jwtIssuer, flag: "--jwt-issuer")
        d.set(path + ["audience"], jwtAudience, flag: "--jwt-audience")
        for rule in jwtScopes {
            let (prefix, scopes) = try FlagDocument.pair(rule, flag: "--jwt-scope", shape: "PREFIX=SCOPE[ SCOPE...]")
            d.set(path + ["scopes", prefix], scopes.split(separator: " ").map(String.init), flag: "--jwt-scope")
        }
    }
}
