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
///
/// A reload replaces the key set (a key removed from the JWKS stops verifying at once), and drops
/// the cached verifications when any key is gone, also when another key took its `kid` (a rotation
/// under the same id must not leave tokens of the old key verified).
///
/// Nothing from a token is ever reflected into `WWW-Authenticate`: its descriptions are fixed
/// texts, so a crafted `kid` or claim cannot add header lines to the answer.
public final class JWTAuthenticator: Sendable {
    private let keySet = KeySet()
    private let policy: JWTPolicy
    private let loadJWKS: @Sendable () async throws -> String
    private let wallClock: @Sendable () -> Date
    private let reloads = ReloadGate()
    /// Tokens whose signature verified, with their claims (bounded; claims are re-checked at each use).
    private let verified = VerifiedTokens(limit: 10_000)
    /// The `kid`s of the loaded JWKS: a token naming another one triggers a reload (key rotation).
    private let knownKids = LockedKids()
    /// Each loaded key as canonical JSON: a reload that drops one (or replaces it under its `kid`)
    /// forgets the cached verifications.
    private let knownKeys = LockedKids()
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
        try await load()
    }

    /// Loads the JWKS into a new key collection and swaps it in whole.
    private func load() async throws {
        let json = try await loadJWKS()
        let fresh = JWTKeyCollection()
        try await fresh.add(jwksJSON: json)
        _ = knownKids.replace(Self.kids(inJWKS: json))
        let keys = Self.keys(inJWKS: json)
        let previous = knownKeys.replace(keys)
        keySet.replace(fresh)
        // A key that left the set, or was replaced under its kid: what it verified is no longer trusted.
        if !previous.isSubset(of: keys) { verified.removeAll() }
    }

    /// Reads the JWKS again now (a configuration reload, or an operator revoking a key).
    public func reloadKeys() async throws { try await load() }

    static func kids(inJWKS json: String) -> Set<String> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let keys = object["keys"] as? [[String: Any]] else { return [] }
        return Set(keys.compactMap { $0["kid"] as? String })
    }

    /// Each key of a JWKS as canonical JSON (its members sorted), so the same key compares equal
    /// however the document spells it, and another key under the same `kid` does not.
    static func keys(inJWKS json: String) -> Set<String> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let keys = object["keys"] as? [[String: Any]] else { return [] }
        return Set(keys.compactMap { key in
            (try? JSONSerialization.data(withJSONObject: key, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
        })
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
        let generation = keySet.generation
        do {
            claims = try await verify(token)
        } catch is UnknownKeyId {
            return .failure(invalid("the token's key id is not in the key set"))
        } catch {
            return .failure(invalid("the token's signature or format is not valid"))
        }
        // Verified against a key set a reload replaced meanwhile: used once, not remembered.
        if keySet.generation == generation { verified.store(token, claims) }
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
        if let rule = policy.requiredScopes.filter({ Self.path(path, isUnder: $0.prefix) }).max(by: { $0.prefix.count < $1.prefix.count }) {
            let missing = rule.scopes.filter { !scopes.contains($0) }
            // ci/mutants: jwt-scope-unchecked (the next line)
            if !missing.isEmpty {
                return .failure(AuthFailure(status: 403, code: "insufficient_scope", message: "missing scope(s): \(missing.joined(separator: " "))",
                                            wwwAuthenticate: "Bearer error=\"insufficient_scope\", scope=\"\(Self.quotable(rule.scopes.joined(separator: " ")))\""))
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
        return try await keySet.current.verify(token, as: Claims.self)
    }

    /// `message` must be one of this file's fixed texts: it goes into a header.
    private func invalid(_ message: String) -> AuthFailure {
        AuthFailure(status: 401, code: "invalid_token", message: message,
                    wwwAuthenticate: "Bearer error=\"invalid_token\", error_description=\"\(Self.quotable(message))\"")
    }

    /// Visible ASCII and spaces only, without quotes or backslashes (the inside of a quoted-string).
    static func quotable(_ text: String) -> String {
        String(decoding: text.utf8.filter { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }, as: UTF8.self)
    }

    /// Whether a normalized `path` is under `prefix` on a segment boundary (`/a` covers `/a/b`, not
    /// `/ab`), letters compared without case: a scope rule on `/admin` must cover `/ADMIN` for apps
    /// that route case-insensitively.
    static func path(_ path: String, isUnder prefix: String) -> Bool {
        let p = Array(path.utf8), q = Array(prefix.utf8)
        func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
        guard p.count >= q.count, zip(p, q).allSatisfy({ lower($0) == lower($1) }) else { return false }
        if prefix.hasSuffix("/") || p.count == q.count { return true }
        return p[q.count] == UInt8(ascii: "/")
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
    /// Sets the ids of a new key set; returns the previous ones.
    func replace(_ next: Set<String>) -> Set<String> { lock.lock(); defer { lock.unlock() }; let old = kids; kids = next; return old }
    func contains(_ kid: String) -> Bool { lock.lock(); defer { lock.unlock() }; return kids.contains(kid) }
}

/// The key collection in use, swapped whole by a reload.
final class KeySet: @unchecked Sendable {
    private let lock = NSLock()
    private var keys = JWTKeyCollection()
    private var replaced = 0
    var current: JWTKeyCollection { lock.lock(); defer { lock.unlock() }; return keys }
    /// How many times the set was replaced.
    var generation: Int { lock.lock(); defer { lock.unlock() }; return replaced }
    func replace(_ next: JWTKeyCollection) { lock.lock(); keys = next; replaced += 1; lock.unlock() }
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

    func removeAll() {
        lock.lock()
        entries.removeAll()
        lock.unlock()
    }

    func store(_ token: String, _ value: JWTAuthenticator.Claims) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
        entries[token] = Entry(value)
    }
}
