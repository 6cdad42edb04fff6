@testable import MeshScenarios
import Testing

/// Each ingress invariant fires on a hand-made history that breaks it, and stays quiet on one that keeps it.
@Suite struct IngressCheckerTests {
    private let admitted = IngressLedger.Sent(client: "192.0.2.1", method: "GET", body: "", expected: .app(target: "/public/a"))
    private let refused = IngressLedger.Sent(client: "192.0.2.1", method: "GET", body: "", expected: .refused(status: 403))

    @Test func theModelRefusesAdminFromOutsideAndBadSpellingsEverywhere() {
        #expect(IngressSpellings.expectation("/admin/a", client: "192.0.2.1") == .refused(status: 403))
        #expect(IngressSpellings.expectation("/admin/a", client: "10.0.0.1") == .app(target: "/admin/a"))
        #expect(IngressSpellings.expectation("/adminx", client: "192.0.2.1") == .app(target: "/adminx"))
        #expect(IngressSpellings.expectation("/admin?x", client: "192.0.2.1") == .refused(status: 403))
        #expect(IngressSpellings.expectation(nil, client: "10.0.0.1") == .refused(status: 400))
        #expect(IngressSpellings.expectation("/limited/x?y", client: "192.0.2.1") == .limited(target: "/limited/x?y"))
    }

    @Test func aRateLimitedRouteMayAnswer429ButNothingElseOfItsOwn() throws {
        #expect(try IngressChecks.answer(status: 429, id: "c.1", for: "c.1", expected: .limited(target: "/limited/x")).get() == true)
        #expect((try? IngressChecks.answer(status: 403, id: "c.1", for: "c.1", expected: .limited(target: "/limited/x")).get()) == nil)
        #expect((try? IngressChecks.answer(status: 429, id: "c.1", for: "c.1", expected: .app(target: "/public/a")).get()) == nil)
    }

    @Test func quietOnAnAdmittedRequestArrivingOnceAsMeant() {
        #expect(IngressChecks.arrival(id: "c.1", method: "GET", target: "/public/a", body: "", sent: admitted, timesBefore: 0) == nil)
    }

    @Test func policyFiresOnARefusedRequestReachingTheApp() {
        let v = IngressChecks.arrival(id: "c.1", method: "GET", target: "/admin/a", body: "", sent: refused, timesBefore: 0)
        #expect(v?.invariant == "ingress.policy")
    }

    @Test func exactRequestFiresOnAnotherTargetMethodOrBody() {
        #expect(IngressChecks.arrival(id: "c.1", method: "GET", target: "/public/../public/a", body: "", sent: admitted, timesBefore: 0)?.invariant
            == "ingress.exact-request")
        #expect(IngressChecks.arrival(id: "c.1", method: "POST", target: "/public/a", body: "", sent: admitted, timesBefore: 0)?.invariant
            == "ingress.exact-request")
        #expect(IngressChecks.arrival(id: "c.1", method: "GET", target: "/public/a", body: "x", sent: admitted, timesBefore: 0)?.invariant
            == "ingress.exact-request")
    }

    @Test func noSmugglingFiresOnARequestNoClientSentOrOneSentTwice() {
        #expect(IngressChecks.arrival(id: "smuggled.c.1", method: "GET", target: "/admin/a", body: "", sent: nil, timesBefore: 0)?.invariant
            == "ingress.no-smuggling")
        #expect(IngressChecks.arrival(id: nil, method: "GET", target: "/admin/a", body: "", sent: nil, timesBefore: 0)?.invariant
            == "ingress.no-smuggling")
        #expect(IngressChecks.arrival(id: "c.1", method: "GET", target: "/public/a", body: "", sent: admitted, timesBefore: 1)?.invariant
            == "ingress.no-smuggling")
    }

    @Test func rightResponseFiresOnAnotherRequestsAnswerOrTheWrongVerdict() throws {
        #expect(try IngressChecks.answer(status: 200, id: "c.1", for: "c.1", expected: .app(target: "/a")).get() == true)
        #expect(try IngressChecks.answer(status: 504, id: "c.1", for: "c.1", expected: .app(target: "/a")).get() == false, "a failure, not a violation")
        #expect((try? IngressChecks.answer(status: 200, id: "c.2", for: "c.1", expected: .app(target: "/a")).get()) == nil, "another request's answer")
        #expect((try? IngressChecks.answer(status: 403, id: "c.1", for: "c.1", expected: .app(target: "/a")).get()) == nil, "refused though admitted")
        #expect((try? IngressChecks.answer(status: 200, id: "c.1", for: "c.1", expected: .refused(status: 403)).get()) == nil, "admitted though refused")
        #expect((try? IngressChecks.answer(status: 200, id: nil, for: "c.1", expected: .malformed).get()) == nil, "a smuggling attempt answered 200")
        #expect(try IngressChecks.answer(status: 400, id: nil, for: "c.1", expected: .malformed).get() == true)
    }

    @Test func aBodyOverTheLimitIs413AndAStalledOne408AndNothingElseOfTheSidecarsOwn() throws {
        #expect(try IngressChecks.answer(status: 413, id: "c.1", for: "c.1", expected: .tooLarge(declared: true)).get() == true)
        #expect((try? IngressChecks.answer(status: 502, id: "c.1", for: "c.1", expected: .tooLarge(declared: true)).get()) == nil,
                "a declared size is refused at the head, before the app")
        #expect(try IngressChecks.answer(status: 502, id: "c.1", for: "c.1", expected: .tooLarge(declared: false)).get() == false)
        #expect((try? IngressChecks.answer(status: 200, id: "c.1", for: "c.1", expected: .tooLarge(declared: false)).get()) == nil)
        #expect(try IngressChecks.answer(status: 408, id: "c.1", for: "c.1", expected: .stalled).get() == true)
        #expect((try? IngressChecks.answer(status: 504, id: "c.1", for: "c.1", expected: .stalled).get()) == nil,
                "the body deadline is shorter than the app's: a stalled body is never the app's timeout")
        #expect((try? IngressChecks.answer(status: 408, id: "c.1", for: "c.1", expected: .app(target: "/a")).get()) == nil)
        #expect(try IngressChecks.answer(status: 408, id: "c.1", for: "c.1", expected: .app(target: "/a"), writtenInPieces: true).get() == false,
                "the rest of a request written in pieces may be held up past the deadline")
    }

    @Test func rightResponseFiresOnAnotherBodyOrAHopByHopFieldOfTheApp() {
        let none: (String) -> String? = { _ in nil }
        #expect(IngressChecks.relayedAnswer(body: "ok c.1", fields: none, for: "c.1") == nil)
        #expect(IngressChecks.relayedAnswer(body: "ok c.2", fields: none, for: "c.1") != nil, "another request's body")
        #expect(IngressChecks.relayedAnswer(body: "", fields: none, for: "c.1") != nil, "a body lost to framing")
        #expect(IngressChecks.relayedAnswer(body: "ok c.1", fields: { $0 == "x-app-hop" ? "1" : nil }, for: "c.1") != nil, "a field Connection named")
        #expect(IngressChecks.relayedAnswer(body: "ok c.1", fields: { $0 == "keep-alive" ? "timeout=5" : nil }, for: "c.1") != nil)
    }

    @Test func corsFiresOnAnAnswerAllowingAnotherOriginOrAnyAtAll() throws {
        #expect(IngressChecks.cors(expected: "https://app.example", allowed: "https://app.example", for: "c.1") == nil)
        #expect(IngressChecks.cors(expected: nil, allowed: nil, for: "c.1") == nil)
        #expect(IngressChecks.cors(expected: "https://app.example", allowed: "*", for: "c.1") != nil, "a wildcard where policy names one origin")
        #expect(IngressChecks.cors(expected: nil, allowed: "https://evil.example", for: "c.1") != nil, "an origin policy does not allow")
        #expect(try IngressChecks.answer(status: 204, id: "c.1", for: "c.1", expected: .preflight(allowOrigin: "https://app.example")).get() == true)
        #expect((try? IngressChecks.answer(status: 204, id: "c.1", for: "c.1", expected: .preflight(allowOrigin: nil)).get()) == nil,
                "a preflight from another origin answered as allowed")
    }
}
