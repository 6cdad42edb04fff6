import HTTPSidecar
import MeshCore
import Testing

/// The sans-IO checks behind the ingress and egress hardening: one normalized path for policy and
/// upstream, framing that matches the bytes, values safe to put in a header.
@Suite struct RequestTargetTests {
    private func path(_ target: String, _ escaped: RequestTarget.EscapedSeparators = .reject) -> String? {
        try? RequestTarget.normalize(target, escaped: escaped).get().path
    }

    /// Issue 22: path parameters are stripped before policy (servlet stacks read `/admin;x/users`
    /// as `/admin/users`), encoded controls refused, and prefixes match without case.
    @Test func pathParametersControlsAndCase() {
        #expect(path("/admin;x/users") == "/admin/users")
        #expect(path("/admin;jsessionid=1") == "/admin")
        #expect(path("/;x/admin") == "/admin")
        #expect((try? RequestTarget.normalize("/admin;x/users", parameters: .reject).get()) == nil)
        #expect((try? RequestTarget.normalize("/admin;x/users", parameters: .keep).get())?.path == "/admin;x/users")
        #expect(path("/..;x/admin") == nil)
        #expect(path("/a%00b") == nil && path("/a%0ab") == nil && path("/a%7Fb") == nil)
        #expect(path("/%41DMIN") == "/ADMIN")
        #expect(RequestTarget.path("/ADMIN/users", isUnder: "/admin"))
        #expect(RequestTarget.path("/V1/orders", isUnder: "/v1/"))
        #expect(!RequestTarget.path("/ADMIN/users", isUnder: "/admin", exactCase: true))
        #expect(!RequestTarget.path("/adminx", isUnder: "/admin"))
        #expect(!RequestTarget.path("/adm", isUnder: "/admin"))
    }

    @Test func spellingsOfOnePathNormalizeAlike() {
        for spelling in ["/admin", "//admin", "/./admin", "/x/../admin", "/%61dmin", "/public/../admin", "http://a/admin",
                         "HTTPS://a:8443/admin", "/admin/.", "///admin/x/..", "/../admin", "/%7e/../admin"] {
            let p = path(spelling)
            #expect(p == "/admin" || p == "/admin/", "\(spelling) → \(p ?? "refused")")
        }
        #expect(path("/a/b/") == "/a/b/")
        #expect(path("") == nil, "an empty target is not a request-target")
        #expect(path("/a%2fb") == nil, "encoded slash refused by default")
        #expect(path("/a%2Fb", .decode) == "/a/b")
        #expect(path("/a%2fb", .keep) == "/a%2Fb")
        #expect(path("/%2e%2e/admin") == nil)
        #expect(path("/%2e%2e/admin", .decode) == "/admin")
        #expect(path("/a%5cb") == nil)
        #expect(path("/a%zz") == nil && path("/a%4") == nil, "malformed escapes refused")
        #expect(path("/a\\b") == nil, "a raw backslash is refused")
        #expect(path("/a#frag") == nil)
        #expect(path("/caf\u{e9}") == nil, "raw non-ASCII refused")
        #expect(path("/a%c3%a9") == "/a%C3%A9", "other escapes kept, hex upper-cased")
        #expect(path("*") == "*")
        #expect(path("example.com:443") == nil, "authority form refused")
        #expect(path("http://user@evil/admin") == nil)
    }

    @Test func theQueryIsKeptAndTheAuthorityOfAnAbsoluteFormIsReported() throws {
        let t = try RequestTarget.normalize("http://svc:81/a/./b?x=1&y=/../z").get()
        #expect(t.path == "/a/b" && t.query == "x=1&y=/../z" && t.authority == "svc:81")
        #expect(t.originForm == "/a/b?x=1&y=/../z")
    }

    @Test func prefixesMatchOnSegmentBoundaries() {
        #expect(RequestTarget.path("/public", isUnder: "/public"))
        #expect(RequestTarget.path("/public/x", isUnder: "/public"))
        #expect(!RequestTarget.path("/publicX", isUnder: "/public"))
        #expect(RequestTarget.path("/public/x", isUnder: "/public/"))
        #expect(!RequestTarget.path("/public", isUnder: "/public/"))
        #expect(RequestTarget.path("/anything", isUnder: "/"))
    }
}

@Suite struct RequestFramingTests {
    private func framing(_ method: String = "POST", cl: [String] = [], te: [String] = []) -> Result<RequestFraming, RequestFraming.Problem> {
        RequestFraming.of(method: method, contentLength: cl, transferEncoding: te)
    }

    @Test func framingIsDecidedOnceAndStatedExplicitly() {
        #expect(framing(cl: ["5"]) == .success(.length(5)))
        #expect(framing(cl: ["5", "5"]) == .success(.length(5)))
        #expect(framing(cl: ["5, 5"]) == .success(.length(5)))
        #expect(framing(cl: ["5", "6"]) == .failure(.conflictingLengths))
        #expect(framing(cl: ["-1"]) == .failure(.badLength))
        #expect(framing(cl: ["+5"]) == .failure(.badLength))
        #expect(framing(cl: ["99999999999999999999"]) == .failure(.badLength))
        #expect(framing(te: ["chunked"]) == .success(.chunked))
        #expect(framing(te: ["gzip, chunked"]) == .success(.chunked))
        #expect(framing(te: ["chunked, gzip"]) == .failure(.unsupportedTransferCoding))
        #expect(framing(te: ["chunked", "chunked"]) == .failure(.unsupportedTransferCoding))
        #expect(framing(cl: ["5"], te: ["chunked"]) == .failure(.lengthAndChunked))
        #expect(framing("GET") == .success(.none))
        #expect(framing("TRACE", cl: ["3"]) == .failure(.traceWithBody))
        #expect(framing("TRACE", te: ["chunked"]) == .failure(.traceWithBody))
        #expect(framing("TRACE", cl: ["0"]) == .success(.length(0)))
        #expect(RequestFraming.length(7).field(method: "GET")! == ("content-length", "7"))
        #expect(RequestFraming.none.field(method: "POST")! == ("content-length", "0"))
        #expect(RequestFraming.none.field(method: "GET") == nil)
    }

    @Test func headerValuesBuiltFromRequestDataAreChecked() {
        #expect(HeaderValue.isSafe("Bearer abc\tdef"))
        #expect(!HeaderValue.isSafe("x\r\nSet-Cookie: a=b"))
        #expect(!HeaderValue.isSafe("x\u{0}"))
        #expect(HeaderValue.quotable("a\"b\\c\r\nd") == "abcd")
        #expect(HeaderValue.isPlainId("abc-123_x.y:z"))
        #expect(!HeaderValue.isPlainId("a b") && !HeaderValue.isPlainId("") && !HeaderValue.isPlainId(String(repeating: "a", count: 129)))
    }
}

@Suite struct EgressLifecycleTests {
    private let a = MeshAddress(host: "10.0.0.1", port: 80)

    private func openBreaker(_ pool: inout UpstreamPool, _ random: inout SeededRandom) {
        for _ in 0..<pool.config.breaker.consecutiveFailures {
            var r = EgressRequest(method: "POST", deadline: .zero + .seconds(100), usesToken: false)
            guard case .send = r.nextAttempt(pool: &pool, now: .zero, random: &random) else { return }
            _ = r.attemptFailed(.reset, requestSent: true, pool: &pool, now: .zero, random: &random)
        }
    }

    @Test func aCancelledProbeFreesItsSlot() {
        var pool = UpstreamPool(UpstreamPool.Config(), endpoints: [a])
        var random = SeededRandom(seed: 1)
        openBreaker(&pool, &random)
        let later = MeshInstant.zero + .seconds(60)
        var probe = EgressRequest(method: "GET", deadline: later + .seconds(10), usesToken: false)
        guard case .send(let pick, _) = probe.nextAttempt(pool: &pool, now: later, random: &random) else { Issue.record("no probe"); return }
        #expect(pick.isProbe)
        // The app leaves mid-probe: the endpoint must not stay half-open with its slot taken.
        probe.cancel(pool: &pool, now: later)
        probe.cancel(pool: &pool, now: later)  // twice is harmless
        #expect(pool.isQuiescent)
        var next = EgressRequest(method: "GET", deadline: later + .seconds(10), usesToken: false)
        guard case .send(let again, _) = next.nextAttempt(pool: &pool, now: later, random: &random) else {
            Issue.record("the endpoint was blackholed after a cancelled probe"); return
        }
        #expect(again.isProbe)
        #expect(probe.nextAttempt(pool: &pool, now: later, random: &random) != .send(again, token: nil), "a cancelled request starts no attempt")
    }

    @Test func aProbeCutOffByItsRequestsDeadlineIsReleasedNotJudged() {
        var pool = UpstreamPool(UpstreamPool.Config(), endpoints: [a])
        var random = SeededRandom(seed: 3)
        openBreaker(&pool, &random)
        let later = MeshInstant.zero + .seconds(60)
        // The oldest waiting request takes the probe with 5 ms left of its deadline.
        var late = EgressRequest(method: "GET", deadline: later + .milliseconds(5), usesToken: false)
        guard case .send(let pick, _) = late.nextAttempt(pool: &pool, now: later, random: &random), pick.isProbe else {
            Issue.record("no probe"); return
        }
        let cut = late.deadlinePassed(pool: &pool, now: later + .milliseconds(5), attemptTimeout: .milliseconds(100))
        #expect(cut.events.isEmpty, "a probe that never had its attempt timeout reopens nothing")
        #expect(pool.isQuiescent)
        // The next request gets the probe, and its answer closes the breaker.
        var next = EgressRequest(method: "GET", deadline: later + .seconds(1), usesToken: false)
        guard case .send(let again, _) = next.nextAttempt(pool: &pool, now: later + .milliseconds(6), random: &random), again.isProbe else {
            Issue.record("the probe slot stayed taken"); return
        }
        let closed = next.responseHead(status: 200, sentToken: nil, pool: &pool, now: later + .milliseconds(7), random: &random)
        #expect(closed.events == [.breakerClosed(a)])
        // A probe that had its whole attempt timeout is judged: the breaker opens again.
        var other = UpstreamPool(UpstreamPool.Config(), endpoints: [a])
        openBreaker(&other, &random)
        var slow = EgressRequest(method: "GET", deadline: later + .milliseconds(100), usesToken: false)
        guard case .send(let p2, _) = slow.nextAttempt(pool: &other, now: later, random: &random), p2.isProbe else {
            Issue.record("no second probe"); return
        }
        let judged = slow.deadlinePassed(pool: &other, now: later + .milliseconds(100), attemptTimeout: .milliseconds(100))
        #expect(judged.events.contains(.breakerOpened(a)))
    }

    @Test func aPassedDeadlineEndsTheAttemptAsATimeout() {
        var pool = UpstreamPool(UpstreamPool.Config(), endpoints: [a])
        var random = SeededRandom(seed: 2)
        var r = EgressRequest(method: "GET", deadline: .zero + .seconds(2), usesToken: false)
        guard case .send = r.nextAttempt(pool: &pool, now: .zero, random: &random) else { Issue.record("no attempt"); return }
        let conclusion = r.deadlinePassed(pool: &pool, now: .zero + .seconds(2), attemptTimeout: .seconds(1))
        #expect(conclusion.next == .giveUp(.noTimeLeft, .gatewayError(.responseTimeout)))
        #expect(pool.isQuiescent)
        #expect(pool.endpoints[0].outlier.gatewayErrors == 1, "the timed-out attempt counts against its endpoint")
        if case .send = r.nextAttempt(pool: &pool, now: .zero + .seconds(2), random: &random) { Issue.record("an attempt after the deadline") }
    }

    @Test func withNoEndpointAvailableARequestWaitsWithinItsDeadline() {
        var pool = UpstreamPool(UpstreamPool.Config(), endpoints: [a])
        var random = SeededRandom(seed: 3)
        openBreaker(&pool, &random)
        // Open for 5 s from t=0: a request with time left waits for the probe moment...
        var patient = EgressRequest(method: "GET", deadline: .zero + .seconds(10), usesToken: false)
        #expect(patient.nextAttempt(pool: &pool, now: .zero + .seconds(1), random: &random) == .waitForEndpoint(until: .zero + .seconds(5)))
        guard case .send(let pick, _) = patient.nextAttempt(pool: &pool, now: .zero + .seconds(5), random: &random) else {
            Issue.record("no attempt once the breaker let a probe through"); return
        }
        #expect(pick.isProbe)
        // ...and while the probe is out, others look again shortly; one whose deadline comes first gets 503.
        var other = EgressRequest(method: "GET", deadline: .zero + .seconds(10), usesToken: false)
        #expect(other.nextAttempt(pool: &pool, now: .zero + .seconds(5), random: &random) == .waitForEndpoint(until: .zero + .seconds(5) + UpstreamPool.probeRecheck))
        var hurried = EgressRequest(method: "GET", deadline: .zero + .seconds(5) + .milliseconds(5), usesToken: false)
        #expect(hurried.nextAttempt(pool: &pool, now: .zero + .seconds(5), random: &random) == .noEndpoint)
    }
}

