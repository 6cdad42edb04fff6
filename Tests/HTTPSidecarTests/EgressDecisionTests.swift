import HTTPSidecar
import MeshCore
import Testing

@Suite struct CircuitBreakerTests {
    @Test func opensAfterConsecutiveFailuresProbesOnceThenCloses() {
        var config = CircuitBreaker.Config()
        config.consecutiveFailures = 3
        config.openDuration = .seconds(1)
        var b = CircuitBreaker(config)
        let t0 = MeshInstant.zero
        for _ in 0..<2 { b.record(success: false, now: t0) }
        #expect(b.admit(now: t0) == .normal)
        #expect(b.record(success: false, now: t0)?.name == "open")
        #expect(b.admit(now: t0 + .milliseconds(999)) == .rejected)
        #expect(b.admit(now: t0 + .seconds(1)) == .probe)
        #expect(b.admit(now: t0 + .seconds(1)) == .rejected, "a second request during the probe")
        #expect(b.record(success: true, now: t0 + .seconds(1))?.name == "closed")
        #expect(b.admit(now: t0 + .seconds(1)) == .normal)
    }

    @Test func aFailedProbeReopens() {
        var b = CircuitBreaker()
        for _ in 0..<5 { b.record(success: false, now: .zero) }
        #expect(b.admit(now: .zero + .seconds(5)) == .probe)
        #expect(b.record(success: false, now: .zero + .seconds(5))?.name == "open")
        #expect(!b.wouldAdmit(now: .zero + .seconds(9)))
        #expect(b.wouldAdmit(now: .zero + .seconds(10)))
    }

    @Test func aSuccessResetsTheCount() {
        var b = CircuitBreaker()
        for _ in 0..<4 { b.record(success: false, now: .zero) }
        b.record(success: true, now: .zero)
        for _ in 0..<4 { b.record(success: false, now: .zero) }
        #expect(b.state == .closed(failures: 4))
    }
}

@Suite struct UpstreamPoolTests {
    let a = MeshAddress(host: "a", port: 80), b = MeshAddress(host: "b", port: 80), c = MeshAddress(host: "c", port: 80)

    @Test func ejectionTimeGrowsAndRespectsTheMaximumPercent() {
        var config = UpstreamPool.Config()
        config.outlier.consecutiveGatewayErrors = 2
        config.outlier.baseEjectionTime = .seconds(1)
        config.outlier.maxEjectedPercent = 50
        config.breaker.consecutiveFailures = 100
        var pool = UpstreamPool(config, endpoints: [a, b, c])
        let t = MeshInstant.zero
        for _ in 0..<2 { _ = pool.record(a, .gatewayError(.reset), latency: .zero, now: t) }
        #expect(pool.endpoints[0].outlier.isEjected(now: t))
        for _ in 0..<2 { _ = pool.record(b, .gatewayError(.reset), latency: .zero, now: t) }
        #expect(!pool.endpoints[1].outlier.isEjected(now: t), "ejected more than 50% of the pool")
        // a comes back after 1s; ejected again it stays out 2s.
        #expect(!pool.endpoints[0].outlier.isEjected(now: t + .seconds(1)))
        var events: [UpstreamPool.Event] = []
        for _ in 0..<2 { events += pool.record(a, .gatewayError(.reset), latency: .zero, now: t + .seconds(1)) }
        #expect(events.contains(.ejected(a, until: t + .seconds(3))))
    }

    @Test func picksOnlyAvailableEndpointsAndAvoidsOnesAlreadyTried() {
        var config = UpstreamPool.Config()
        config.policy = .roundRobin
        config.breaker.consecutiveFailures = 1
        var pool = UpstreamPool(config, endpoints: [a, b, c])
        var random = SeededRandom(seed: 1)
        _ = pool.record(b, .serverError(status: 500), latency: .zero, now: .zero)  // opens b's breaker
        for _ in 0..<20 {
            let p = pool.pick(now: .zero, exclude: [a], random: &random)!
            #expect(p.address == c)
            _ = pool.record(p.address, .success, latency: .milliseconds(1), now: .zero)
        }
    }

    @Test func peakEWMAPrefersTheFastEndpoint() {
        var pool = UpstreamPool(UpstreamPool.Config(), endpoints: [a, b])
        var random = SeededRandom(seed: 2)
        _ = pool.pick(now: .zero, random: &random)
        _ = pool.record(a, .success, latency: .milliseconds(200), now: .zero)
        _ = pool.pick(now: .zero, random: &random)
        _ = pool.record(b, .success, latency: .milliseconds(1), now: .zero)
        var picks: [MeshAddress: Int] = [:]
        for _ in 0..<100 {
            let p = pool.pick(now: .zero, random: &random)!
            picks[p.address, default: 0] += 1
            _ = pool.record(p.address, .success, latency: p.address == a ? .milliseconds(200) : .milliseconds(1), now: .zero)
        }
        #expect(picks[b, default: 0] > 90)
    }

    @Test func retriesOnlyWhatIsSafeAndWithinTheBudget() {
        var config = UpstreamPool.Config()
        config.retry.budgetRatio = 0
        config.retry.budgetMinPerSecond = 1
        config.retry.budgetWindow = .seconds(2)
        var pool = UpstreamPool(config, endpoints: [a])
        var r = SeededRandom(seed: 3)
        let now = MeshInstant.zero + .seconds(10)
        #expect(pool.retryDecision(method: "POST", attempt: 1, failure: .gatewayError(.reset), requestNeverSent: false, now: now, timeLeft: .seconds(1), random: &r) == .giveUp(.notSafe))
        if case .retry = pool.retryDecision(method: "POST", attempt: 1, failure: .gatewayError(.connectRefused), requestNeverSent: true, now: now, timeLeft: .seconds(1), random: &r) {} else {
            Issue.record("a request that was never sent must be retried")
        }
        if case .retry = pool.retryDecision(method: "GET", attempt: 1, failure: .serverError(status: 503), requestNeverSent: false, now: now, timeLeft: .seconds(1), random: &r) {} else {
            Issue.record("a GET after a 503 must be retried")
        }
        #expect(pool.retryDecision(method: "GET", attempt: 1, failure: .serverError(status: 503), requestNeverSent: false, now: now, timeLeft: .seconds(1), random: &r) == .giveUp(.budgetExhausted))
        #expect(pool.retryDecision(method: "GET", attempt: 1, failure: .serverError(status: 500), requestNeverSent: false, now: now, timeLeft: .seconds(1), random: &r) == .giveUp(.notRetriable))
        #expect(pool.retryDecision(method: "GET", attempt: 3, failure: .gatewayError(nil), requestNeverSent: false, now: now, timeLeft: .seconds(1), random: &r) == .giveUp(.attemptsExhausted))
        #expect(pool.retryDecision(method: "GET", attempt: 1, failure: .gatewayError(nil), requestNeverSent: false, now: now, timeLeft: .microseconds(1), random: &r) == .giveUp(.noTimeLeft))
    }
}
