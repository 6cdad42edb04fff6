import MeshCore
@testable import MeshScenarios
import Testing

/// Each checker fires on a hand-made history that breaks its promise, and stays quiet on one that keeps it.
@Suite struct CheckerTests {
    private func at(_ ms: Double) -> MeshInstant { .zero + .nanoseconds(Int64(ms * 1_000_000)) }

    @Test func rateLimitBoundFiresOnOneRequestTooMany() {
        // rate 100/s (one per 10 ms), burst 3: three at once, then one every 10 ms, is the most allowed.
        let allowed = [at(0), at(0), at(0), at(10), at(20), at(30)]
        #expect(RateLimitBound.violation(allowed, rate: 100, burst: 3) == nil)
        #expect(RateLimitBound.violation([at(0), at(0), at(0), at(0)], rate: 100, burst: 3) != nil, "a burst of four")
        #expect(RateLimitBound.violation(allowed + [at(35)], rate: 100, burst: 3) != nil, "one early in the steady state")
        #expect(RateLimitBound.violation([at(0), at(0), at(0), at(30), at(30), at(30)], rate: 100, burst: 3) == nil, "refilled after 30 ms")
    }
}
