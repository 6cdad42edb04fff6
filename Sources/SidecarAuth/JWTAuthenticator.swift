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
    /// Tokens whose signature verified, with their claims (bounded; claims are re-checked at each use).
    private let verified = VerifiedTokens(limit: 10_000)
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
        let token: String
        switch Self.bearer(authorization) {
        case .success(let t): token = t
        case .failure(let f): return .failure(f)
        }
        if let claims = verified.claims(for: token) { return check(claims, path: path) }
        let claims: Claims
        do {
            claims = try await verify(token)
        } catch {
            return .failure(invalid("the token is not valid: \(error)"))
        }
        verified.store(token, claims)
        return check(claims, path: path)
    }

    /// The verdict without waiting, when it needs no signature check: no or a malformed header, or a
    /// token whose signature was verified before (clients send the same token many times; its claims
    /// are checked afresh each time). `nil`: call ``authenticate(authorization:path:)``.
    public func authenticateWithoutWaiting(authorization: String?, path: String) -> Result<VerifiedToken, AuthFailure>? {
        switch Self.bearer(authorization) {
        case .failure(let f): return .failure(f)
        case .success(let token): return verified.claims(for: token).map { check($0, path: path) }
        }
    }

    /// The token of an `Authorization: Bearer TOKEN` header. Works on UTF-8 bytes: a token is a few
    /// hundred ASCII characters, and Foundation's trimming walked it as UTF-16 on every request.
    static func bearer(_ authorization: String?) -> Result<String, AuthFailure> {
        let missing = AuthFailure(status: 401, code: "missing_token", message: "an Authorization: Bearer token is required", wwwAuthenticate: "Bearer")
        guard let authorization else { return .failure(missing) }
        let bytes = authorization.utf8
        guard bytes.count > 7 else { return .failure(missing) }
        var i = bytes.startIndex
        for expected in "bearer ".utf8 {
            let b = bytes[i]
            guard (b >= 0x41 && b <= 0x5A ? b | 0x20 : b) == expected else { return .failure(missing) }
            i = bytes.index(after: i)
        }
        var start = i, end = bytes.endIndex
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start = bytes.index(after: start) }
        while end > start, bytes[bytes.index(before: end)] == 0x20 || bytes[bytes.index(before: end)] == 0x09 { end = bytes.index(before: end) }
        guard start < end else { return .failure(missing) }
        return .success(String(authorization[start..<end]))
    }

    /// The claim checks, against the injected clock: expiry, not-before, issuer, audience, scopes.
    private func check(_ claims: Claims, path: String) -> Result<VerifiedToken, AuthFailure> {
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

/// Tokens whose signature verified, so a token sent again skips the signature check (the costly
/// part); its claims are checked at every use. Bounded: when full it starts over. Only signatures
/// checked against the loaded keys get in, so nothing unverified is ever trusted from here.
final class VerifiedTokens: @unchecked Sendable {
    /// Boxed: a lookup hands out one reference instead of copying the claims' many fields.
    private final class Entry {
        let claims: JWTAuthenticator.Claims
        init(_ claims: JWTAuthenticator.Claims) { self.claims = claims }
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func claims(for token: String) -> JWTAuthenticator.Claims? {
        lock.lock()
        let entry = entries[token]
        lock.unlock()
        return entry?.claims
    }

    func store(_ token: String, _ value: JWTAuthenticator.Claims) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
        entries[token] = Entry(value)
    }
}
