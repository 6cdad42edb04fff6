import HTTPSidecar
import MeshCore
import Testing

@Suite struct RateLimiterTests {
    @Test func admitsTheBurstThenTheRateAndSaysWhenToRetry() {
        var limiter = RateLimiter(.init(rate: 10, burst: 5))
        let t = MeshInstant.zero + .seconds(100)
        let first = (0..<5).map { _ in limiter.admit("k", now: t) }
        #expect(first.allSatisfy { $0.allowed })
        #expect(first.map(\.remaining) == [4, 3, 2, 1, 0])
        let refused = limiter.admit("k", now: t)
        #expect(!refused.allowed)
        #expect(refused.retryAfter == .milliseconds(100))
        #expect(limiter.admit("k", now: t + .milliseconds(100)).allowed)
        #expect(limiter.admit("other", now: t).allowed, "keys are independent")
    }

    /// Over any window of length W a key is admitted at most rate × W + burst times, whatever the arrivals.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func neverAdmitsMoreThanRateTimesWindowPlusBurst(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let rate = 50.0, burst = 10
        var limiter = RateLimiter(.init(rate: rate, burst: burst))
        var now: Int64 = 1_000_000_000
        var admitted: [Int64] = []
        for _ in 0..<20_000 {
            now += Int64(random.nextUnit() * random.nextUnit() * 20_000_000)  // bursty arrivals
            if limiter.admit("client", now: MeshInstant(nanoseconds: now)).allowed { admitted.append(now) }
        }
        #expect(admitted.count > 1000)
        for window in [Int64(10_000_000), 100_000_000, 1_000_000_000] {
            var lo = 0
            for hi in admitted.indices {
                while admitted[hi] - admitted[lo] >= window { lo += 1 }
                let bound = rate * Double(window) / 1e9 + Double(burst)
                if Double(hi - lo + 1) > bound {
                    Issue.record("\(hi - lo + 1) admitted within \(window)ns, bound \(bound)")
                    return
                }
            }
        }
    }

    @Test func theKeyTableStaysBoundedWhateverTheKeys() {
        var config = RateLimiter.Config(rate: 1, burst: 1)
        config.maxKeys = 10
        var limiter = RateLimiter(config)
        // A flood of distinct, long keys: the table never grows past its bound.
        let long = String(repeating: "x", count: 4096)
        for i in 0..<1000 { _ = limiter.admit(long + "\(i)", now: .zero) }
        #expect(limiter.trackedKeys == 10)
        #expect(limiter.evictedWhileLimited == 990)
        // The oldest went first: the newest ten are still limited.
        #expect(!limiter.admit(long + "999", now: .zero).allowed)
        #expect(limiter.admit(long + "0", now: .zero).allowed)
    }
}

@Suite struct IPFilterTests {
    @Test func parsesCIDRsOfBothFamilies() {
        #expect(CIDR("10.0.0.0/8")?.description == "10.0.0.0/8")
        #expect(CIDR("2001:db8::/32") != nil)
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("10.0.0") == nil)
        #expect(CIDR("1:2:3:4:5:6:7:8:9") == nil)
        #expect(CIDR.parse("::ffff:10.1.2.3") == [10, 1, 2, 3])
    }

    @Test func denyWinsAndAllowListsRestrict() {
        let filter = IPFilter(allow: [CIDR("10.0.0.0/8")!, CIDR("2001:db8::/32")!], deny: [CIDR("10.9.0.0/16")!])
        #expect(filter.permits("10.1.2.3"))
        #expect(!filter.permits("10.9.1.1"))
        #expect(!filter.permits("192.168.1.1"))
        #expect(filter.permits("2001:db8::1"))
        #expect(!filter.permits("2001:db9::1"))
        #expect(filter.permits("::ffff:10.1.2.3"))
        #expect(!filter.permits("not-an-address"))
        #expect(IPFilter().permits("8.8.8.8"))
    }
}

@Suite struct CORSPolicyTests {
    @Test func preflightFromAnAllowedOriginGetsItsHeaders() {
        let policy = CORSPolicy(allowedOrigins: ["https://app.example.com"])
        guard case .preflight(let h) = policy.decide(method: "OPTIONS", origin: "https://app.example.com", requestMethod: "PUT", requestHeaders: "Content-Type, X-Correlation-Id") else {
            Issue.record("not a preflight")
            return
        }
        #expect(h.value("access-control-allow-origin") == "https://app.example.com")
        #expect(h.value("access-control-allow-headers") == "content-type, x-correlation-id")
        #expect(h.value("vary") == "Origin")
    }

    @Test func unknownOriginsMethodsAndHeadersAreRejected() {
        let policy = CORSPolicy(allowedOrigins: ["https://app.example.com"])
        #expect(policy.decide(method: "GET", origin: nil, requestMethod: nil, requestHeaders: nil) == .notCORS)
        if case .rejected = policy.decide(method: "GET", origin: "https://evil.example", requestMethod: nil, requestHeaders: nil) {} else { Issue.record("evil origin allowed") }
        if case .rejected = policy.decide(method: "OPTIONS", origin: "https://app.example.com", requestMethod: "CONNECT", requestHeaders: nil) {} else { Issue.record("CONNECT allowed") }
        if case .rejected = policy.decide(method: "OPTIONS", origin: "https://app.example.com", requestMethod: "GET", requestHeaders: "x-secret") {} else { Issue.record("x-secret allowed") }
    }

    @Test func credentialsNeverGoWithAWildcard() {
        var policy = CORSPolicy(allowedOrigins: ["*"])
        policy.allowCredentials = true
        guard case .actual(let h) = policy.decide(method: "GET", origin: "https://a.example", requestMethod: nil, requestHeaders: nil) else {
            Issue.record("not allowed")
            return
        }
        #expect(h.value("access-control-allow-origin") == "https://a.example")
        #expect(h.value("access-control-allow-credentials") == "true")
    }
}

@Suite struct TracePropagationTests {
    @Test func continuesAValidTraceWithANewSpanAndStartsOneOtherwise() {
        var random = SeededRandom(seed: 9)
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let (next, continued) = TracePropagation.nextHop(traceparent: incoming, tracestate: "vendor=1", random: &random)
        #expect(continued)
        #expect(next.traceParentHeaderValue.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"))
        #expect(!next.traceParentHeaderValue.contains("00f067aa0ba902b7"))
        #expect(next.traceStateHeaderValue == "vendor=1")
        for bad in [nil, "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"] {
            let (fresh, cont) = TracePropagation.nextHop(traceparent: bad, tracestate: "vendor=1", random: &random)
            #expect(!cont)
            #expect(fresh.traceStateHeaderValue == nil)
            #expect(fresh.traceParentHeaderValue.hasSuffix("-01"))
        }
    }
}
