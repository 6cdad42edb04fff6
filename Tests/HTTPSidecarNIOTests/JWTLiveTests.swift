import Foundation
import HTTPSidecar
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import JWTKit
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SidecarAuth
import Testing

/// JWT verification in the ingress chain, with the test keys in fixtures/jwt.
@Suite(.serialized) struct JWTLiveTests {
    /// One group per suite, shared by its tests (a group per test instance leaked two threads each).
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    var group: MultiThreadedEventLoopGroup { Self.loops }
    static let fixtures: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/fixtures/jwt/"
    }()

    struct Payload: JWTPayload {
        var exp: ExpirationClaim
        var nbf: NotBeforeClaim?
        var iss: IssuerClaim?
        var aud: AudienceClaim?
        var sub: SubjectClaim?
        var scope: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    private func signer() async throws -> JWTKeyCollection {
        let keys = JWTKeyCollection()
        let rsa = try Insecure.RSA.PrivateKey(pem: String(contentsOfFile: Self.fixtures + "test-rsa-private.pem", encoding: .utf8))
        let ec = try ES256PrivateKey(pem: String(contentsOfFile: Self.fixtures + "test-ec-private.pem", encoding: .utf8))
        await keys.add(rsa: rsa, digestAlgorithm: .sha256, kid: "test-rsa")
        await keys.add(ecdsa: ec, kid: "test-ec")
        return keys
    }

    private func payload(expiresIn: TimeInterval = 300, aud: String = "light-mesh", scope: String = "pets:read") -> Payload {
        Payload(exp: ExpirationClaim(value: Date().addingTimeInterval(expiresIn)), nbf: nil, iss: IssuerClaim(value: "https://issuer.test"),
                aud: AudienceClaim(value: [aud]), sub: SubjectClaim(value: "alice"), scope: scope)
    }

    private func b64(_ s: String) -> String {
        Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    @Test func acceptsValidTokensAndRejectsForgedExpiredAndUnderScoped() async throws {
        let backend = try await TestBackend(group: group)
        var policy = JWTPolicy()
        policy.issuer = "https://issuer.test"
        policy.audience = "light-mesh"
        policy.clockSkew = .seconds(5)
        policy.requiredScopes = [("/admin", ["pets:admin"])]
        var config = IngressConfig()
        config.listen = MeshAddress(host: "127.0.0.1", port: 0)
        config.app = MeshAddress(host: "127.0.0.1", port: backend.port)
        let services = IngressServices(jwt: try await JWTAuthenticator(policy: policy, jwksFile: Self.fixtures + "jwks.json"))
        let ingress = try IngressServer(config: config, services: services, group: group)
        let port = try await ingress.start().port
        func call(_ path: String = "/pets", token: String?) async throws -> String {
            let auth = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
            return try await rawExchange(port: port, "GET \(path) HTTP/1.1\r\nHost: x\r\n\(auth)Connection: close\r\n\r\n", group: group)
        }
        let keys = try await signer()

        #expect(try await call(token: try await keys.sign(payload(), kid: "test-rsa")).hasPrefix("HTTP/1.1 200"), "RS256")
        #expect(try await call(token: try await keys.sign(payload(), kid: "test-ec")).hasPrefix("HTTP/1.1 200"), "ES256")

        let missing = try await call(token: nil)
        #expect(missing.hasPrefix("HTTP/1.1 401") && missing.lowercased().contains("www-authenticate: bearer"))
        let expired = try await call(token: try await keys.sign(payload(expiresIn: -60), kid: "test-rsa"))
        #expect(expired.hasPrefix("HTTP/1.1 401") && expired.contains("\"code\":\"invalid_token\"") && expired.lowercased().contains("error=\"invalid_token\""))
        #expect(try await call(token: try await keys.sign(payload(aud: "someone-else"), kid: "test-rsa")).hasPrefix("HTTP/1.1 401"), "wrong audience")

        let none = b64("{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"test-rsa\"}") + "." + b64("{\"exp\":\(Int(Date().timeIntervalSince1970) + 300),\"aud\":\"light-mesh\",\"iss\":\"https://issuer.test\"}") + "."
        #expect(try await call(token: none).hasPrefix("HTTP/1.1 401"), "alg none accepted")

        let confused = JWTKeyCollection()
        let publicPEM = try String(contentsOfFile: Self.fixtures + "test-rsa-public.pem", encoding: .utf8)
        await confused.add(hmac: HMACKey(from: publicPEM), digestAlgorithm: .sha256, kid: "test-rsa")
        #expect(try await call(token: try await confused.sign(payload(), kid: "test-rsa")).hasPrefix("HTTP/1.1 401"), "HS256 signed with the public key accepted")

        let underScoped = try await call("/admin/users", token: try await keys.sign(payload(), kid: "test-rsa"))
        #expect(underScoped.hasPrefix("HTTP/1.1 403") && underScoped.contains("insufficient_scope"))
        #expect(try await call("/admin/users", token: try await keys.sign(payload(scope: "pets:read pets:admin"), kid: "test-rsa")).hasPrefix("HTTP/1.1 200"))

        #expect(backend.requests.count == 3, "rejected requests reached the app: \(backend.requests.count)")
        try await ingress.stop()
        try await backend.stop()
    }

    @Test func keysCanComeFromAJWKSURL() async throws {
        let jwks = try String(contentsOfFile: Self.fixtures + "jwks.json", encoding: .utf8)
        let served = NIOLockedValueBox(0)
        let issuer = try await TestBackend(group: group) { head, _ in
            guard head.uri == "/.well-known/jwks.json" else { return (.notFound, "", []) }
            served.withLockedValue { $0 += 1 }
            return (.ok, jwks, [("content-type", "application/json")])
        }
        let loader = try DocumentLoader(url: "http://127.0.0.1:\(issuer.port)/.well-known/jwks.json", group: group)
        var policy = JWTPolicy()
        policy.issuer = "https://issuer.test"
        let authenticator = try await JWTAuthenticator(policy: policy) { try await loader.load() }
        let keys = try await signer()
        let token = try await keys.sign(payload(), kid: "test-ec")
        #expect(try await authenticator.authenticate(authorization: "Bearer \(token)", path: "/").get().subject == "alice")
        #expect(served.withLockedValue { $0 } == 1)
        // An unknown kid refetches the document (once per interval) before refusing.
        let strangers = JWTKeyCollection()
        await strangers.add(ecdsa: ES256PrivateKey(), kid: "unknown-kid")
        let stranger = try await strangers.sign(payload(), kid: "unknown-kid")
        let strangerResult = await authenticator.authenticate(authorization: "Bearer \(stranger)", path: "/")
        if case .success = strangerResult { Issue.record("unknown kid accepted") }
        #expect(served.withLockedValue { $0 } == 2)
        // A URL that does not serve a JWKS is refused at start, naming it.
        let missing = try DocumentLoader(url: "http://127.0.0.1:\(issuer.port)/nope", group: group)
        do {
            _ = try await JWTAuthenticator(policy: policy) { try await missing.load() }
            Issue.record("started without keys")
        } catch {
            #expect("\(error)".contains("/nope") && "\(error)".contains("404"), "\(error)")
        }
        try await issuer.stop()
    }

    /// Issue 22: the key behind a `kid` replaced in the JWKS, and the keys reloaded: a token the old
    /// key signed (verified and cached before) no longer verifies.
    @Test func aKeyRotatedUnderItsKidForgetsWhatTheOldKeyVerified() async throws {
        let original = try String(contentsOfFile: Self.fixtures + "jwks.json", encoding: .utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(original.utf8)) as? [String: Any])
        let keys = try #require(object["keys"] as? [[String: Any]])
        // The EC key now also published under the RSA key's id; the RSA key is gone, the ids are the same.
        let ec = try #require(keys.first { $0["kid"] as? String == "test-ec" })
        var replacement = ec
        replacement["kid"] = "test-rsa"
        let rotated = String(decoding: try JSONSerialization.data(withJSONObject: ["keys": [replacement, ec]]), as: UTF8.self)
        let document = NIOLockedValueBox(original)
        let authenticator = try await JWTAuthenticator(policy: JWTPolicy()) { document.withLockedValue { $0 } }
        let token = try await signer().sign(payload(), kid: "test-rsa")
        #expect(try await authenticator.authenticate(authorization: "Bearer \(token)", path: "/").get().subject == "alice")
        document.withLockedValue { $0 = rotated }
        try await authenticator.reloadKeys()
        #expect(authenticator.authenticateWithoutWaiting(authorization: "Bearer \(token)", path: "/") == nil, "still cached after the rotation")
        if case .success = await authenticator.authenticate(authorization: "Bearer \(token)", path: "/") {
            Issue.record("a token of the rotated-out key still verifies")
        }
    }

    @Test func aTokenSeenBeforeSkipsTheSignatureButNotTheClaimChecks() async throws {
        let now = NIOLockedValueBox(Date())
        var policy = JWTPolicy()
        policy.clockSkew = .seconds(0)
        policy.requiredScopes = [("/admin", ["pets:admin"])]
        let authenticator = try await JWTAuthenticator(policy: policy, wallClock: { now.withLockedValue { $0 } }) {
            try String(contentsOfFile: Self.fixtures + "jwks.json", encoding: .utf8)
        }
        let token = try await signer().sign(payload(expiresIn: 60), kid: "test-rsa")
        #expect(authenticator.authenticateWithoutWaiting(authorization: "Bearer \(token)", path: "/") == nil, "not verified yet: must wait")
        #expect(try await authenticator.authenticate(authorization: "Bearer \(token)", path: "/").get().subject == "alice")
        #expect(try authenticator.authenticateWithoutWaiting(authorization: "Bearer \(token)", path: "/")?.get().subject == "alice")
        if case .failure(let f)? = authenticator.authenticateWithoutWaiting(authorization: "Bearer \(token)", path: "/admin/x") {
            #expect(f.status == 403)
        } else { Issue.record("scopes not checked for a cached token") }
        now.withLockedValue { $0 = $0.addingTimeInterval(120) }
        if case .failure(let f)? = authenticator.authenticateWithoutWaiting(authorization: "Bearer \(token)", path: "/") {
            #expect(f.code == "invalid_token" && f.message.contains("expired"))
        } else { Issue.record("an expired token was accepted from the cache") }
        // A forged token that only shares the payload is not in the cache (the signature differs).
        let parts = token.split(separator: ".")
        let forged = parts[0] + "." + parts[1] + ".AAAA"
        #expect(authenticator.authenticateWithoutWaiting(authorization: "Bearer \(forged)", path: "/") == nil)
    }

    @Test func routesChooseAndOrderTheirMiddleware() async throws {
        let backend = try await TestBackend(group: group)
        var config = IngressConfig()
        config.listen = MeshAddress(host: "127.0.0.1", port: 0)
        config.app = MeshAddress(host: "127.0.0.1", port: backend.port)
        let services = IngressServices(jwt: try await JWTAuthenticator(policy: JWTPolicy(), jwksFile: Self.fixtures + "jwks.json"))
        config.routes = [
            IngressRoute(prefix: "/public", middleware: []),
            IngressRoute(prefix: "/api", middleware: [.jwt, .rateLimit], rateLimit: RateLimiter.Config(rate: 0.01, burst: 1),
                         headers: HeaderRewrite(request: HeaderRules(add: ["x-route": "api"]))),
        ]
        let ingress = try IngressServer(config: config, services: services, group: group)
        let port = try await ingress.start().port
        func call(_ path: String, token: String? = nil) async throws -> String {
            let auth = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
            return try await rawExchange(port: port, "GET \(path) HTTP/1.1\r\nHost: x\r\n\(auth)Connection: close\r\n\r\n", group: group)
        }
        let token = try await signer().sign(payload(), kid: "test-rsa")
        #expect(try await call("/public/page").hasPrefix("HTTP/1.1 200"), "a route without jwt asked for a token")
        #expect(try await call("/other").hasPrefix("HTTP/1.1 401"), "the default chain lost jwt")
        #expect(try await call("/api/pets").hasPrefix("HTTP/1.1 401"))
        #expect(try await call("/api/pets", token: token).hasPrefix("HTTP/1.1 200"))
        #expect(try await call("/api/pets", token: token).hasPrefix("HTTP/1.1 429"), "the route's own limit (burst 1) did not apply")
        #expect(try await call("/public/again").hasPrefix("HTTP/1.1 200"), "the route limit leaked onto another route")
        #expect(backend.requests.filter { $0.hasPrefix("GET /api") }.allSatisfy { $0.contains("x-route: api\n") })
        #expect(!(backend.requests.first { $0.hasPrefix("GET /public") } ?? "").contains("x-route"))
        try await ingress.stop()

        var wrongOrder = config
        wrongOrder.cors = CORSPolicy(allowedOrigins: ["*"])
        wrongOrder.routes = [IngressRoute(prefix: "/x", middleware: [.jwt, .cors])]
        #expect(throws: ConfigError.self) { try IngressServer(config: wrongOrder, services: services, group: group) }
        do {
            _ = try IngressServer(config: config, services: IngressServices(), group: group)
            Issue.record("a route listing jwt started without JWT settings")
        } catch {
            #expect("\(error)".contains("ingress.routes[1].middleware"), "\(error)")
        }
        try await backend.stop()
    }
}
