import HTTPSidecar
import MeshCore
@testable import MeshScenarios
import MeshSimulator
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

    @Test func rightResponseFiresOnAnotherRequestsAnswer() {
        #expect(HTTPEgressChecks.rightResponse(sent: "app-0/0-1", answered: "app-0/0-1") == nil)
        #expect(HTTPEgressChecks.rightResponse(sent: "app-0/0-1", answered: "smuggled") != nil)
    }

    @Test func exactRequestFiresOnARoutingOrHopByHopFieldOrTwoHosts() {
        let none: (String) -> String? = { _ in nil }
        #expect(HTTPEgressChecks.exactRequest(field: none, hostCount: 1) == nil)
        #expect(HTTPEgressChecks.exactRequest(field: { $0 == "service_id" ? "upstream" : nil }, hostCount: 1) != nil, "the routing field")
        #expect(HTTPEgressChecks.exactRequest(field: { $0 == "x-app-hop" ? "1" : nil }, hostCount: 1) != nil, "a field Connection named")
        #expect(HTTPEgressChecks.exactRequest(field: { $0 == "connection" ? "keep-alive" : nil }, hostCount: 1) != nil)
        #expect(HTTPEgressChecks.exactRequest(field: none, hostCount: 2) != nil, "two Host fields")
    }

    @Test func traceSurvivesFiresOnALostTraceOrAReusedSpan() {
        let app = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        #expect(HTTPEgressChecks.traceSurvives(sent: app, seen: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01") == nil)
        #expect(HTTPEgressChecks.traceSurvives(sent: app, seen: "00-11111111111111111111111111111111-00f067aa0ba902b7-01") != nil, "a new trace")
        #expect(HTTPEgressChecks.traceSurvives(sent: app, seen: app) != nil, "the app's own span: no hop")
        #expect(HTTPEgressChecks.traceSurvives(sent: app, seen: "") != nil, "no traceparent")
    }

    @Test func tokenValidFiresOnMissingUnknownAndExpiredTokens() {
        let issued = ["t1": at(100)]
        #expect(HTTPEgressChecks.tokenValid("t1", issued: issued, now: at(99)) == nil)
        #expect(HTTPEgressChecks.tokenValid("t1", issued: issued, now: at(100)) != nil, "expired at that instant")
        #expect(HTTPEgressChecks.tokenValid("forged", issued: issued, now: at(0)) != nil)
        #expect(HTTPEgressChecks.tokenValid("", issued: issued, now: at(0)) != nil)
    }

    @Test func noDuplicateUnsafeFiresOnASecondArrival() {
        #expect(HTTPEgressChecks.noDuplicateUnsafe(method: "POST", key: "k", arrivals: 1) == nil)
        #expect(HTTPEgressChecks.noDuplicateUnsafe(method: "POST", key: "k", arrivals: 2) != nil)
    }

    @Test func noTrafficToRemovedFiresOnAnUnlistedEndpoint() {
        let a = MeshAddress(host: "10.0.0.1", port: 80), b = MeshAddress(host: "10.0.0.2", port: 80)
        #expect(HTTPEgressChecks.noTrafficToRemoved(a, listed: [a, b]) == nil)
        #expect(HTTPEgressChecks.noTrafficToRemoved(a, listed: [b]) != nil)
    }

    @Test func poolQuiescentFiresOnAnAttemptNeverEnded() {
        let a = MeshAddress(host: "10.0.0.1", port: 80)
        var pool = UpstreamPool(UpstreamPool.Config(), endpoints: [a])
        #expect(HTTPEgressChecks.poolQuiescent(pool.endpoints) == nil)
        var random = SeededRandom(seed: 1)
        let pick = pool.pick(now: .zero, exclude: [], random: &random)
        #expect(pick != nil)
        #expect(HTTPEgressChecks.poolQuiescent(pool.endpoints) != nil, "an attempt counted in flight, never recorded")
        pool.release(pick!)
        #expect(HTTPEgressChecks.poolQuiescent(pool.endpoints) == nil)
    }

    @Test func httpDeadlineFiresOnAnAnswerAfterTheDeadline() {
        let sim = Simulation(seed: 1)
        sim.enabledInvariants = ["http.deadline", "http.complete"]
        let onTime = sim.history.invoke(process: "app-0", "http", "GET a", at: at(0), deadline: at(200))
        sim.history.complete(onTime, .failed("504 request_timeout"), at: at(200))
        ScenarioRunner.checkHistory(sim)
        #expect(sim.violations.isEmpty, "answered at the deadline: \(sim.violations)")
        let late = sim.history.invoke(process: "app-0", "http", "GET b", at: at(10), deadline: at(210))
        sim.history.complete(late, .failed("504 upstream_timeout"), at: at(211))
        ScenarioRunner.checkHistory(sim)
        #expect(sim.violations.map(\.invariant) == ["http.deadline"])
    }

    @Test func completeFiresOnARequestThatNeverEnded() {
        let sim = Simulation(seed: 1)
        sim.enabledInvariants = ["http.complete", "echo.complete"]
        let done = sim.history.invoke(process: "app-0", "http", "GET a", at: at(0), deadline: at(200))
        sim.history.complete(done, .ok("200"), at: at(5))
        ScenarioRunner.checkHistory(sim)
        #expect(sim.violations.isEmpty)
        _ = sim.history.invoke(process: "client-0", "echo", "e1", at: at(10))
        ScenarioRunner.checkHistory(sim)
        #expect(sim.violations.map(\.invariant) == ["echo.complete"])
    }

    @Test func livenessFiresOnAFailureAfterTheHealButNotOnAnAppThatLeft() {
        let sim = Simulation(seed: 1)
        sim.enabledInvariants = ["http.liveness", "echo.liveness"]
        let before = sim.history.invoke(process: "app-0", "http", "GET a", at: at(10))
        sim.history.complete(before, .failed("503 no_healthy_endpoint"), at: at(20))
        let left = sim.history.invoke(process: "app-0", "http", "GET b", at: at(110))
        sim.history.complete(left, .failed("499 app left"), at: at(120))
        ScenarioRunner.checkLiveness(sim, from: at(100))
        #expect(sim.violations.isEmpty, "a failure before the heal settled, and an app that left, are not the system's")
        let after = sim.history.invoke(process: "app-0", "http", "GET c", at: at(130))
        sim.history.complete(after, .failed("502 upstream_unavailable"), at: at(140))
        ScenarioRunner.checkLiveness(sim, from: at(100))
        #expect(sim.violations.map(\.invariant) == ["http.liveness"])
        let echoes = Simulation(seed: 1)
        echoes.enabledInvariants = ["echo.liveness"]
        let echo = echoes.history.invoke(process: "client-0", "echo", "e1", at: at(150))
        echoes.history.complete(echo, .failed("deadline"), at: at(160))
        ScenarioRunner.checkLiveness(echoes, from: at(100))
        #expect(echoes.violations.map(\.invariant) == ["echo.liveness"])
    }

    @Test func echoRightResponseFiresOnAnotherKeysAnswer() {
        let sim = Simulation(seed: 1)
        sim.enabledInvariants = ["echo.right-response"]
        let right = sim.history.invoke(process: "client-0", "echo", "e1", at: at(0))
        sim.history.complete(right, .ok("e1"), at: at(5))
        ScenarioRunner.checkHistory(sim)
        #expect(sim.violations.isEmpty)
        let wrong = sim.history.invoke(process: "client-0", "echo", "e2", at: at(10))
        sim.history.complete(wrong, .ok("e1"), at: at(15))
        ScenarioRunner.checkHistory(sim)
        #expect(sim.violations.map(\.invariant) == ["echo.right-response"])
    }

    @Test func retryBudgetBoundFiresOnRetriesBeyondTheShareAndTheFloor() {
        // 20 % of 50 requests plus 5/s over a 1 s window: 15 retries at most.
        let originals = (0..<50).map { at(Double($0) * 10) }
        let fifteen = (0..<15).map { at(500 + Double($0)) }
        #expect(RetryBudgetBound.violation(retries: fifteen, originals: originals, now: at(520), ratio: 0.2, minPerSecond: 5, window: .seconds(1)) == nil)
        #expect(RetryBudgetBound.violation(retries: fifteen + [at(516)], originals: originals, now: at(520), ratio: 0.2, minPerSecond: 5,
                                           window: .seconds(1)) != nil, "a sixteenth retry")
        #expect(RetryBudgetBound.violation(retries: fifteen + [at(1600)], originals: originals, now: at(1600), ratio: 0.2, minPerSecond: 5,
                                           window: .seconds(1)) == nil, "old retries are forgotten")
    }
}

@Suite struct KafkaCheckerTests {
    private let acked = [KafkaChecker.Acknowledged(value: "a", at: "0@0"), KafkaChecker.Acknowledged(value: "b", at: "0@1")]

    @Test func quietWhenEveryAcknowledgedRecordIsStoredOnceAndConsumed() {
        #expect(KafkaChecker.violation(acknowledged: acked, stored: ["a", "b", "unacked"], consumed: ["a", "b"], idempotent: true) == nil)
    }

    @Test func anAcknowledgedRecordMissingFromTheLogIsALostAck() {
        let v = KafkaChecker.violation(acknowledged: acked, stored: ["a"], consumed: ["a", "b"], idempotent: true)
        #expect(v?.0 == "kafka.no-lost-ack")
    }

    @Test func aRecordStoredTwiceIsADuplicateOnlyForIdempotentProducers() {
        let stored = ["a", "a", "b"]
        #expect(KafkaChecker.violation(acknowledged: acked, stored: stored, consumed: ["a", "b"], idempotent: true)?.0 == "kafka.no-duplicate")
        #expect(KafkaChecker.violation(acknowledged: acked, stored: stored, consumed: ["a", "b"], idempotent: false) == nil)
    }

    @Test func aStoredRecordNoConsumerSawIsNotAllConsumed() {
        let v = KafkaChecker.violation(acknowledged: acked, stored: ["a", "b"], consumed: ["a"], idempotent: true)
        #expect(v?.0 == "kafka.all-consumed")
    }
}

@Suite struct EndpointHealthModelTests {
    private let a = MeshAddress(host: "10.0.0.1", port: 80), b = MeshAddress(host: "10.0.0.2", port: 80)
    private func at(_ ms: Int64) -> MeshInstant { .zero + .milliseconds(ms) }

    private func model() -> EndpointHealthModel {
        var pool = UpstreamPool.Config()
        pool.breaker.consecutiveFailures = 2
        pool.breaker.openDuration = .milliseconds(100)
        pool.outlier.consecutiveGatewayErrors = 10
        pool.outlier.consecutiveServerErrors = 3
        pool.outlier.baseEjectionTime = .milliseconds(500)
        return EndpointHealthModel(.init(pool), listed: [a, b])
    }

    @Test func trafficToAnOpenBreakerOrASecondProbeIsAViolation() {
        var m = model()
        for t in [0, 1] as [Int64] {
            #expect(m.sent(to: a, now: at(t)).violation == nil)
            m.ended(a, .gatewayError, now: at(t))
        }
        #expect(m.sent(to: a, now: at(50)).violation != nil, "open for 100 ms")
        let probe = m.sent(to: a, now: at(101))
        #expect(probe.violation == nil && probe.probe)
        #expect(m.sent(to: a, now: at(102)).violation != nil, "one probe at a time")
        m.released(a, probe: true)
        #expect(m.sent(to: a, now: at(103)).probe, "a cancelled probe frees its slot")
        m.ended(a, .success, now: at(104))
        #expect(m.sent(to: a, now: at(105)).violation == nil, "closed again")
        #expect(m.sent(to: b, now: at(50)).violation == nil, "another endpoint is unaffected")
    }

    @Test func trafficToAnEjectedEndpointIsAViolationAndEjectionGrows() {
        var m = model()
        for t in 0..<3 as Range<Int64> {
            _ = m.sent(to: a, now: at(t))
            m.ended(a, .serverError, now: at(t))
        }
        #expect(m.sent(to: a, now: at(499)).violation != nil, "ejected for 500 ms (its breaker is open too until 101)")
        #expect(m.sent(to: a, now: at(503)).violation == nil)
        m.ended(a, .success, now: at(503))
        for t in 600..<603 as Range<Int64> {
            _ = m.sent(to: a, now: at(t))
            m.ended(a, .serverError, now: at(t))
        }
        #expect(m.sent(to: a, now: at(602 + 999)).violation != nil, "the second ejection lasts 1 s")
        // Never more than the allowed share: with a ejected, b's errors do not eject it.
        for t in 700..<703 as Range<Int64> { m.ended(b, .serverError, now: at(t)) }
        #expect(m.sent(to: b, now: at(704)).violation == nil || m.sent(to: b, now: at(704)).violation!.contains("breaker"))
    }
}
