@testable import HTTPSidecar
import MeshCore
import Testing

/// The egress request's lifecycle engine: deadline, attempt timeouts, retries, tokens, stale timers,
/// the app leaving, and the answer each ending gets.
@Suite struct EgressExchangeTests {
    let a = MeshAddress(host: "10.0.0.1", port: 80)
    let b = MeshAddress(host: "10.0.0.2", port: 80)
    var random = SeededRandom(seed: 7)

    func pool(_ addresses: [MeshAddress]? = nil, maxAttempts: Int = 3) -> UpstreamPool {
        var config = UpstreamPool.Config()
        config.retry.maxAttempts = maxAttempts
        config.retry.budgetMinPerSecond = 100
        return UpstreamPool(config, endpoints: addresses ?? [a, b])
    }

    func exchange(method: String = "GET", attemptTimeout: Duration? = .milliseconds(100), usesToken: Bool = false) -> EgressExchange {
        var r = random
        return EgressExchange(method: method, settings: .init(service: "pets", deadline: .milliseconds(500), attemptTimeout: attemptTimeout, usesToken: usesToken),
                              traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: nil, now: .zero, random: &r)
    }

    static func arms(_ actions: [EgressExchange.Action]) -> [(EgressExchange.Timer, MeshInstant, UInt64)] {
        actions.compactMap { if case .arm(let t, let at, let g) = $0 { (t, at, g) } else { nil } }
    }

    static func refusal(_ actions: [EgressExchange.Action]) -> EgressExchange.Refusal? {
        actions.lazy.compactMap { if case .refuse(let r) = $0 { r } else { nil } }.first
    }

    @Test mutating func theTraceContinuesWithANewSpan() {
        let ex = exchange()
        let parts = ex.upstreamTraceparent.split(separator: "-")
        #expect(parts[1] == "0af7651916cd43dd8448eb211c80319c" && parts[2] != "b7ad6b7169203331")
    }

    @Test mutating func aSuccessfulAttemptIsRelayedAndLaterTimersAreIgnored() {
        var p = pool()
        var ex = exchange()
        let first = ex.start(pool: &p, now: .zero, random: &random)
        #expect(Self.arms(first).map(\.0) == [.deadline, .attempt])
        #expect(first.contains { if case .send = $0 { true } else { false } })
        let answer = ex.handle(.attemptHead(status: 200), pool: &p, now: .zero + .milliseconds(10), random: &random)
        #expect(answer == [.relay(status: 200, gaveUp: nil)])
        #expect(ex.isOver)
        for (timer, _, generation) in Self.arms(first) {
            #expect(ex.handle(.timerFired(timer, generation: generation), pool: &p, now: .zero + .seconds(1), random: &random).isEmpty)
        }
        #expect(p.endpoints.allSatisfy { $0.inFlight == 0 })
    }

    @Test mutating func anAttemptThatTimesOutIsAbandonedAndRetriedElsewhere() {
        var p = pool()
        var ex = exchange()
        let first = ex.start(pool: &p, now: .zero, random: &random)
        let attemptTimer = Self.arms(first).first { $0.0 == .attempt }!
        let after = ex.handle(.timerFired(.attempt, generation: attemptTimer.2), pool: &p, now: attemptTimer.1, random: &random)
        #expect(after.first == .abandonAttempt(.attemptTimedOut))
        #expect(after.contains { if case .retrying = $0 { true } else { false } })
        let wait = Self.arms(after).first { $0.0 == .wait }!
        let second = ex.handle(.timerFired(.wait, generation: wait.2), pool: &p, now: wait.1, random: &random)
        let picks = second.compactMap { if case .send(let pick, _) = $0 { pick.address } else { nil } }
        #expect(picks.count == 1)
        // A late answer of the abandoned first attempt would be reported to no one; the new one counts.
        #expect(ex.handle(.attemptHead(status: 200), pool: &p, now: wait.1, random: &random) == [.relay(status: 200, gaveUp: nil)])
    }

    @Test mutating func theDeadlineEndsTheRequestWith504AndRecordsTheAttempt() {
        var p = pool([a])
        var ex = exchange(attemptTimeout: nil)
        let first = ex.start(pool: &p, now: .zero, random: &random)
        let deadline = Self.arms(first).first { $0.0 == .deadline }!
        #expect(deadline.1 == .zero + .milliseconds(500))
        #expect(p.endpoints[0].inFlight == 1)
        let end = ex.handle(.timerFired(.deadline, generation: deadline.2), pool: &p, now: deadline.1, random: &random)
        #expect(end.contains(.abandonAttempt(.deadlinePassed)))
        #expect(Self.refusal(end).map { [$0.status, $0.code] as [AnyHashable] } == [504, "request_timeout"])
        #expect(p.endpoints[0].inFlight == 0)
        // The late head of the abandoned attempt changes nothing.
        #expect(ex.handle(.attemptHead(status: 200), pool: &p, now: deadline.1, random: &random).isEmpty)
    }

    @Test mutating func theAppLeavingReleasesTheAttemptWithoutAVerdict() {
        var p = pool([a])
        var ex = exchange()
        _ = ex.start(pool: &p, now: .zero, random: &random)
        #expect(ex.handle(.appLeft, pool: &p, now: .zero + .milliseconds(5), random: &random) == [.abandonAttempt(.appLeft)])
        #expect(p.endpoints[0].inFlight == 0)
        #expect(ex.isOver)
    }

    @Test mutating func aPostIsNotRetriedAfterItWasSentAndTheAppGets502() {
        var p = pool()
        var ex = exchange(method: "POST")
        _ = ex.start(pool: &p, now: .zero, random: &random)
        let end = ex.handle(.attemptFailed(.reset, requestSent: true), pool: &p, now: .zero + .milliseconds(5), random: &random)
        let refusal = Self.refusal(end)
        #expect(refusal?.status == 502 && refusal?.code == "upstream_unavailable" && refusal?.reason == .notSafe, "\(end)")
    }

    @Test mutating func aTokenIsFetchedBeforeEachAttemptAndItsFailureIs503() {
        var p = pool()
        var ex = exchange(usesToken: true)
        #expect(ex.start(pool: &p, now: .zero, random: &random).contains(.fetchToken))
        let sent = ex.handle(.tokenReady("t1"), pool: &p, now: .zero, random: &random)
        #expect(sent.contains { if case .send(_, let token) = $0 { token == "t1" } else { false } })
        // 401: the token is retired and the retry asks for a token again.
        let refused = ex.handle(.attemptHead(status: 401), pool: &p, now: .zero + .milliseconds(1), random: &random)
        #expect(refused.contains(.tokenRejected("t1")))
        var other = exchange(usesToken: true)
        _ = other.start(pool: &p, now: .zero, random: &random)
        let failed = other.handle(.tokenFailed("down"), pool: &p, now: .zero, random: &random)
        #expect(Self.refusal(failed)?.code == "token_unavailable")
    }

    @Test mutating func withNoEndpointTheAppGets503() {
        var p = pool([])
        var ex = exchange()
        let actions = ex.start(pool: &p, now: .zero, random: &random)
        #expect(Self.refusal(actions)?.code == "no_healthy_endpoint")
        #expect(ex.isOver)
    }
}
