import HTTPSidecar
import MeshCore
import Testing

@Suite struct EgressRequestTests {
    let a = MeshAddress(host: "10.0.0.1", port: 80), b = MeshAddress(host: "10.0.0.2", port: 80)
    let t0 = MeshInstant.zero

    private func pool() -> UpstreamPool {
        var config = UpstreamPool.Config()
        config.policy = .roundRobin
        config.retry.backoff = ExponentialBackoff(initial: .milliseconds(1), maximum: .milliseconds(2))
        return UpstreamPool(config, endpoints: [a, b], now: t0)
    }

    @Test func aTokenIsAskedForBeforeEveryAttempt() {
        var pool = pool(), random = SeededRandom(seed: 1)
        var request = EgressRequest(method: "GET", deadline: t0 + .seconds(10), usesToken: true)
        request.begin(pool: &pool, now: t0)
        #expect(request.nextAttempt(pool: &pool, now: t0, random: &random) == .needToken)
        request.tokenReady("t1")
        guard case .send(_, let token) = request.nextAttempt(pool: &pool, now: t0, random: &random) else { Issue.record("no send"); return }
        #expect(token == "t1")
        let failed = request.attemptFailed(.reset, requestSent: true, pool: &pool, now: t0 + .milliseconds(5), random: &random)
        guard case .retry = failed.next else { Issue.record("a GET after a reset is retried: \(failed.next)"); return }
        #expect(request.nextAttempt(pool: &pool, now: t0 + .milliseconds(10), random: &random) == .needToken, "the retry reused the first token")
    }

    @Test func anUnsafeRequestIsRetriedOnlyWhenItNeverLeft() {
        var pool = pool(), random = SeededRandom(seed: 2)
        var post = EgressRequest(method: "POST", deadline: t0 + .seconds(10), usesToken: false)
        post.begin(pool: &pool, now: t0)
        _ = post.nextAttempt(pool: &pool, now: t0, random: &random)
        let refused = post.attemptFailed(.connectRefused, requestSent: false, pool: &pool, now: t0, random: &random)
        guard case .retry(_, let neverSent) = refused.next, neverSent else { Issue.record("\(refused.next)"); return }
        _ = post.nextAttempt(pool: &pool, now: t0, random: &random)
        let reset = post.attemptFailed(.reset, requestSent: true, pool: &pool, now: t0, random: &random)
        #expect(reset.next == .giveUp(.notSafe, .gatewayError(.reset)))
        #expect(post.attempts == 2)
    }

    /// Issue 22: a TLS upstream that read the POST and closed without close_notify fails with a
    /// TLS error; that is no proof the request went unread, so it is not tried again (it was
    /// delivered three times). Only `requestSent` decides, whatever the kind.
    @Test func aTLSErrorAfterTheRequestLeftIsNotRetriedForAPost() {
        var pool = pool(), random = SeededRandom(seed: 4)
        var post = EgressRequest(method: "POST", deadline: t0 + .seconds(10), usesToken: false)
        post.begin(pool: &pool, now: t0)
        _ = post.nextAttempt(pool: &pool, now: t0, random: &random)
        let unclean = post.attemptFailed(.tls, requestSent: true, pool: &pool, now: t0, random: &random)
        #expect(unclean.next == .giveUp(.notSafe, .gatewayError(.tls)))
        var again = EgressRequest(method: "POST", deadline: t0 + .seconds(10), usesToken: false)
        again.begin(pool: &pool, now: t0)
        _ = again.nextAttempt(pool: &pool, now: t0, random: &random)
        // A failed handshake: nothing left, so another endpoint may have it.
        guard case .retry(_, true) = again.attemptFailed(.tls, requestSent: false, pool: &pool, now: t0, random: &random).next else {
            Issue.record("a handshake failure is retried"); return
        }
    }

    @Test func headsDecideRetryAnswerAndRefusedTokens() {
        var pool = pool(), random = SeededRandom(seed: 3)
        var request = EgressRequest(method: "GET", deadline: t0 + .seconds(10), usesToken: false)
        request.begin(pool: &pool, now: t0)
        guard case .send(let first, _) = request.nextAttempt(pool: &pool, now: t0, random: &random) else { Issue.record("no send"); return }
        guard case .retry = request.responseHead(status: 503, sentToken: nil, pool: &pool, now: t0, random: &random).next else {
            Issue.record("503 not retried"); return
        }
        guard case .send(let second, _) = request.nextAttempt(pool: &pool, now: t0, random: &random) else { Issue.record("no send"); return }
        #expect(first.address != second.address, "the retry went back to the endpoint that failed")
        #expect(request.responseHead(status: 200, sentToken: nil, pool: &pool, now: t0, random: &random).next == .answer)

        var authed = EgressRequest(method: "GET", deadline: t0 + .seconds(10), usesToken: true)
        authed.tokenReady("old")
        _ = authed.nextAttempt(pool: &pool, now: t0, random: &random)
        let refused = authed.responseHead(status: 401, sentToken: "old", pool: &pool, now: t0, random: &random)
        #expect(refused.rejectedToken == "old" && refused.next == .answer)
    }
}
