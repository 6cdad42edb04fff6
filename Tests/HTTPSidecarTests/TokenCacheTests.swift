import HTTPSidecar
import MeshCore
import Testing

@Suite struct TokenCacheTests {
    let t0 = MeshInstant.zero

    @Test func oneFetchServesEveryoneWaiting() {
        var cache = TokenCache()
        #expect(cache.request(now: t0) == .fetchAndWait)
        for _ in 0..<100 { #expect(cache.request(now: t0) == .wait) }
        cache.fetched("a", expiresIn: .seconds(100), now: t0)
        #expect(cache.request(now: t0 + .seconds(1)) == .use("a"))
    }

    @Test func refreshStartsOnceInTheBackgroundBeforeExpiry() {
        var cache = TokenCache()
        _ = cache.request(now: t0)
        cache.fetched("a", expiresIn: .seconds(100), now: t0)
        #expect(cache.request(now: t0 + .seconds(75)) == .use("a"))
        #expect(cache.request(now: t0 + .seconds(77)) == .useAndRefresh("a"), "at 80% of the usable life (100 s - 5 s margin)")
        #expect(cache.request(now: t0 + .seconds(82)) == .use("a"), "only one refresh at a time; nobody waits")
        cache.fetched("b", expiresIn: .seconds(100), now: t0 + .seconds(83))
        #expect(cache.request(now: t0 + .seconds(90)) == .use("b"))
    }

    @Test func aTokenIsNotUsedInItsLastSeconds() {
        var cache = TokenCache()
        _ = cache.request(now: t0)
        cache.fetched("a", expiresIn: .seconds(100), now: t0)
        _ = cache.request(now: t0 + .seconds(81))  // refresh started, and it hangs
        #expect(cache.request(now: t0 + .seconds(96)) == .wait, "within the expiry margin the old token is not sent")
    }

    /// The endpoint's clock started somewhere between the fetch's start and its answer: a late
    /// answer must not stretch the token's usable life.
    @Test func aTokensLifeCountsFromItsFetchsStart() {
        var cache = TokenCache()
        #expect(cache.request(now: t0) == .fetchAndWait)
        cache.fetched("a", expiresIn: .seconds(100), now: t0 + .seconds(30))  // the answer was held up
        #expect(cache.request(now: t0 + .seconds(94)) == .useAndRefresh("a"))
        #expect(cache.request(now: t0 + .seconds(96)) == .wait, "usable until 100 s - 5 s after the fetch began")
    }

    @Test func failuresFailFastThenRetry() {
        var cache = TokenCache()
        _ = cache.request(now: t0)
        cache.fetchFailed("down", now: t0)
        #expect(cache.request(now: t0 + .milliseconds(500)) == .fail("down"))
        #expect(cache.request(now: t0 + .milliseconds(1500)) == .fetchAndWait)
    }

    @Test func aFailedRefreshKeepsTheUsableToken() {
        var cache = TokenCache()
        _ = cache.request(now: t0)
        cache.fetched("a", expiresIn: .seconds(100), now: t0)
        #expect(cache.request(now: t0 + .seconds(85)) == .useAndRefresh("a"))
        cache.fetchFailed("down", now: t0 + .seconds(85))
        #expect(cache.request(now: t0 + .seconds(86)) == .useAndRefresh("a"), "refresh is tried again, the token still used")
    }

    @Test func aRejectedTokenIsDropped() {
        var cache = TokenCache()
        _ = cache.request(now: t0)
        cache.fetched("a", expiresIn: .seconds(100), now: t0)
        cache.rejected("other")
        #expect(cache.request(now: t0) == .use("a"))
        cache.rejected("a")
        #expect(cache.request(now: t0) == .fetchAndWait)
    }
}

@Suite struct TokenBrokerTests {
    @Test func waitersAreHandedBackOnceByTheFetchTheyWaitedFor() {
        var broker = TokenBroker<Int>()
        #expect(broker.request(now: .zero, waiter: 1) == .fetchAndWait)
        #expect(broker.request(now: .zero, waiter: 2) == .wait)
        #expect(broker.fetched("t", expiresIn: .seconds(100), now: .zero) == [1, 2])
        #expect(broker.request(now: .zero, waiter: 3) == .use("t"), "a request served at once is not kept as a waiter")
        broker.rejected("t")
        #expect(broker.request(now: .zero, waiter: 4) == .fetchAndWait)
        #expect(broker.fetchFailed("down", now: .zero) == [4], "waiter 3 was kept although it never waited")
    }
}

@Suite struct HeaderRulesTests {
    @Test func removeThenRenameThenAdd() {
        var fields: [(name: String, value: String)] = [("Cookie", "x"), ("X-User", "ann"), ("X-Env", "spoof"), ("Accept", "*/*")]
        HeaderRules(remove: ["cookie"], rename: ["x-user": "X-Forwarded-User"], add: ["x-env": "prod"]).apply(to: &fields)
        #expect(fields.map { "\($0.name)=\($0.value)" } == ["X-Forwarded-User=ann", "Accept=*/*", "x-env=prod"])
    }

    @Test func addReplacesEveryExistingField() {
        var fields: [(name: String, value: String)] = [("x-a", "1"), ("X-A", "2")]
        HeaderRules(add: ["x-a": "3"]).apply(to: &fields)
        #expect(fields.count == 1 && fields[0].value == "3")
    }
}

@Suite struct HeaderRulesValidationTests {
    @Test func injectionAndBadNamesAreFound() {
        #expect(HeaderRules(add: ["x-ok": "fine"]).invalidEntry == nil)
        #expect(HeaderRules(add: ["x-bad": "a\r\nInjected: 1"]).invalidEntry != nil)
        #expect(HeaderRules(remove: ["bad name"]).invalidEntry != nil)
        #expect(HeaderRules(rename: ["x-a": "x:b"]).invalidEntry != nil)
    }
}
