import Foundation
import JWTKit
import MeshCore

/// What a route requires of a bearer token.
public struct JWTPolicy: Sendable {
    /// Expected `iss`, when set.
    public var issuer: String?
    /// `aud` must include this, when set.
    public var audience: String?
    /// Tolerance for `exp` and `nbf` against the wall clock.
    public var clockSkew: Duration = .seconds(60)
    /// Scopes required per path prefix (the longest matching prefix applies); `scope` (space separated)
    /// or `scp` (array) in the token must contain them all.
    public var requiredScopes: [(prefix: String, scopes: [String])] = []
    public init() {}
}

/// Why a request was not authenticated: the status, a stable code, and the `WWW-Authenticate` value.
public struct AuthFailure: Error, Sendable, Equatable {
    public var status: Int
    public var code: String
    public var message: String
    public var wwwAuthenticate: String
}

/// The verified claims the sidecar uses (rate-limit keys, logs).
public struct VerifiedToken: Sendable, Equatable {
    public var subject: String?
    public var clientId: String?
    public var scopes: [String]
}

/// Verifies `Authorization: Bearer` JWTs against keys from a JWKS (RS256, ES256 and the other
/// asymmetric algorithms jwt-kit supports). The algorithm comes from the key, never from the token
/// alone, so `alg: none` and HMAC signed with a public key are rejected. An unknown `kid` reloads the
/// JWKS (at most once per `reloadInterval`) before failing, so key rotation needs no restart.
public final class JWTAuthenticator: Sendable {
    private let keys: JWTKeyCollection
    private let policy: JWTPolicy
    private let loadJWKS: @Sendable () async throws -> String
    private let wallClock: @Sendable () -> Date
    private let reloads = ReloadGate()
    /// The `kid`s of the loaded JWKS: a token naming another one triggers a reload (key rotation).
    private let knownKids = LockedKids()
    public let reloadInterval: Duration

    /// - Parameters:
    ///   - loadJWKS: returns the JWKS JSON (read a file, or fetch a URL).
    ///   - wallClock: the time `exp`/`nbf` are compared with.
    public init(policy: JWTPolicy, reloadInterval: Duration = .seconds(30), wallClock: @escaping @Sendable () -> Date = { Date() },
                loadJWKS: @escaping @Sendable () async throws -> String) async throws {
        self.policy = policy
        self.loadJWKS = loadJWKS
        self.wallClock = wallClock
        self.reloadInterval = reloadInterval
        keys = JWTKeyCollection()
        try await load()
    }

    private func load() async throws {
        let json = try await loadJWKS()
        try await keys.add(jwksJSON: json)
        knownKids.add(Self.kids(inJWKS: json))
    }

    static func kids(inJWKS json: String) -> Set<String> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let keys = object["keys"] as? [[String: Any]] else { return [] }
        return Set(keys.compactMap { $0["kid"] as? String })
    }

    /// The `kid` of a compact JWS header, when it has one.
    static func kid(ofToken token: String) -> String? {
        guard let header = token.split(separator: ".", maxSplits: 1).first else { return nil }
        var b64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["kid"] as? String
    }

    /// Convenience: keys from a JWKS file.
    public convenience init(policy: JWTPolicy, jwksFile: String) async throws {
        try await self.init(policy: policy) { try String(contentsOfFile: jwksFile, encoding: .utf8) }
    }

    struct Claims: JWTPayload {
        var exp: ExpirationClaim
        var nbf: NotBeforeClaim?
        var iss: IssuerClaim?
        var aud: AudienceClaim?
        var sub: SubjectClaim?
        var scope: String?
        var scp: [String]?
        var client_id: String?
        /// Time checks happen in ``JWTAuthenticator/authenticate(authorization:path:)`` against the injected clock.
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// Authenticates one request; `nil` authorization means the header was absent.
    public func authenticate(authorization: String?, path: String) async -> Result<VerifiedToken, AuthFailure> {
        guard let authorization, authorization.lowercased().hasPrefix("bearer "), authorization.count > 7 else {
            return .failure(AuthFailure(status: 401, code: "missing_token", message: "an Authorization: Bearer token is required",
                                        wwwAuthenticate: "Bearer"))
        }
        let token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        let claims: Claims
        do {
            claims = try await verify(token)
        } catch {
            return .failure(invalid("the token is not valid: \(error)"))
        }
        let now = wallClock()
        let skew = TimeInterval(policy.clockSkew.seconds)
        if claims.exp.value.addingTimeInterval(skew) < now { return .failure(invalid("the token expired")) }
        if let nbf = claims.nbf, nbf.value.addingTimeInterval(-skew) > now { return .failure(invalid("the token is not valid yet")) }
        if let issuer = policy.issuer, claims.iss?.value != issuer { return .failure(invalid("unexpected issuer")) }
        if let audience = policy.audience, !(claims.aud?.value.contains(audience) ?? false) { return .failure(invalid("unexpected audience")) }
        let scopes = (claims.scope?.split(separator: " ").map(String.init) ?? []) + (claims.scp ?? [])
        if let rule = policy.requiredScopes.filter({ path.hasPrefix($0.prefix) }).max(by: { $0.prefix.count < $1.prefix.count }) {
            let missing = rule.scopes.filter { !scopes.contains($0) }
            if !missing.isEmpty {
                return .failure(AuthFailure(status: 403, code: "insufficient_scope", message: "missing scope(s): \(missing.joined(separator: " "))",
                                            wwwAuthenticate: "Bearer error=\"insufficient_scope\", scope=\"\(rule.scopes.joined(separator: " "))\""))
            }
        }
        return .success(VerifiedToken(subject: claims.sub?.value, clientId: claims.client_id, scopes: scopes))
    }

    private func verify(_ token: String) async throws -> Claims {
        // Key rotation: a kid the loaded JWKS does not have reloads it (once per interval) first.
        // jwt-kit would otherwise try its default key and report a bad signature.
        if let kid = Self.kid(ofToken: token), !knownKids.contains(kid) {
            if reloads.mayReload(every: reloadInterval) { try await load() }
            guard knownKids.contains(kid) else { throw UnknownKeyId(kid: kid) }
        }
        return try await keys.verify(token, as: Claims.self)
    }

    private func invalid(_ message: String) -> AuthFailure {
        AuthFailure(status: 401, code: "invalid_token", message: message,
                    wwwAuthenticate: "Bearer error=\"invalid_token\", error_description=\"\(message.replacingOccurrences(of: "\"", with: "'"))\"")
    }
}

/// Lets a reload through at most once per interval.
final class ReloadGate: @unchecked Sendable {
    private let lock = NSLock()
    private var last: ContinuousClock.Instant?

    func mayReload(every interval: Duration) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let now = ContinuousClock.now
        if let last, now - last < interval { return false }
        last = now
        return true
    }
}

/// A token names a key the JWKS does not have (even after a reload).
struct UnknownKeyId: Error, CustomStringConvertible {
    var kid: String
    var description: String { "unknown key id \(kid)" }
}

/// The known key ids, shared by concurrent verifications.
final class LockedKids: @unchecked Sendable {
    private let lock = NSLock()
    private var kids = Set<String>()
    func add(_ more: Set<String>) { lock.lock(); kids.formUnion(more); lock.unlock() }
    func contains(_ kid: String) -> Bool { lock.lock(); defer { lock.unlock() }; return kids.contains(kid) }
}
