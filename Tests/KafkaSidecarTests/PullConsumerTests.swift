import MeshCore
import Testing
@testable import KafkaSidecar

/// A driver stand-in for one pull consumer instance: feeds events at a virtual time, numbers the
/// app's calls and keeps what the engine asked for.
final class PullHarness {
    let engine: PullConsumer
    var now = MeshInstant.zero
    var actions: [PullConsumer.Action] = []
    private var nextCall: UInt64 = 1
    private var polls: [UInt64] = []

    init(_ configure: (inout PullConsumerSettings, inout PullConsumerLimits) -> Void = { _, _ in }) {
        var settings = PullConsumerSettings()
        var limits = PullConsumerLimits()
        configure(&settings, &limits)
        engine = PullConsumer(group: "g", name: "c1", settings: settings, limits: limits, now: now)
        send(.started)
    }

    static let tp0 = TopicPartition("t", 0)
    static let tp1 = TopicPartition("t", 1)

    @discardableResult
    func send(_ event: PullConsumer.Event) -> [PullConsumer.Action] {
        let out = engine.handle(event, now: now)
        actions += out
        for a in out { if case .poll(let id, _, _) = a { polls.append(id) } }
        return out
    }

    func advance(_ d: Duration) { now = now + d }

    /// An app call: returns its answer, if the engine gave one now.
    @discardableResult
    func call(_ make: (UInt64) -> PullConsumer.Event) -> (call: UInt64, answer: PullAnswer?, actions: [PullConsumer.Action]) {
        let id = nextCall
        nextCall += 1
        let out = send(make(id))
        return (id, Self.answer(id, in: out), out)
    }

    static func answer(_ call: UInt64, in actions: [PullConsumer.Action]) -> PullAnswer? {
        for a in actions { if case .answer(let c, let answer) = a, c == call { return answer } }
        return nil
    }

    /// The poll under way (the engine keeps one going), answered with `events`.
    @discardableResult
    func poll(_ events: [ConsumerEvent]) -> [PullConsumer.Action] {
        let id = polls.removeFirst()
        return send(.polled(id: id, events))
    }

    var pollsOutstanding: Int { polls.count }

    static func records(_ offsets: ClosedRange<Int64>, tp: TopicPartition = tp0, size: Int = 10) -> [ConsumerRecord] {
        offsets.map { ConsumerRecord(topicPartition: tp, offset: $0, key: nil, value: Array(repeating: 0x61, count: size), headers: [], timestamp: 1_000 + $0) }
    }

    static func commits(_ actions: [PullConsumer.Action]) -> [(UInt64, [PartitionOffset])] {
        actions.compactMap { if case .commit(let t, let o) = $0 { (t, o) } else { nil } }
    }

    /// Subscribes to `t` and assigns the given partitions in a poll.
    func subscribed(_ tps: [TopicPartition] = [tp0]) {
        call { .subscribe(call: $0, topics: ["t"]) }
        poll([.assigned(tps)])
    }
}

@Suite struct PullConsumerTests {
    @Test func aFetchAnswersAtOnceWhenRecordsAreBufferedAndWaitsOtherwise() throws {
        let h = PullHarness { s, _ in s.autoCommit = false }
        h.subscribed()
        let waiting = h.call { .fetch(call: $0, timeout: .milliseconds(500), maxBytes: nil) }
        #expect(waiting.answer == nil)
        #expect(waiting.actions.contains(.armTimer(.fetchDeadline(call: waiting.call), after: .milliseconds(500))))
        // Records arrive while it waits: answered early, not at the timeout.
        let out = h.poll([.records(PullHarness.records(0...2))])
        #expect(PullHarness.answer(waiting.call, in: out) == .records(PullHarness.records(0...2)))
        // Nothing buffered now: the next fetch waits, and its deadline answers it empty.
        let empty = h.call { .fetch(call: $0, timeout: .milliseconds(100), maxBytes: nil) }
        #expect(empty.answer == nil)
        h.advance(.milliseconds(100))
        #expect(PullHarness.answer(empty.call, in: h.send(.timerFired(.fetchDeadline(call: empty.call)))) == .records([]))
    }

    @Test func waitingFetchesAreBounded() throws {
        let h = PullHarness { _, l in l.maxWaitingFetches = 2 }
        h.subscribed()
        #expect(h.call({ .fetch(call: $0, timeout: .seconds(30), maxBytes: nil) }).answer == nil)
        #expect(h.call({ .fetch(call: $0, timeout: .seconds(30), maxBytes: nil) }).answer == nil)
        guard case .refused(let e)? = h.call({ .fetch(call: $0, timeout: .seconds(30), maxBytes: nil) }).answer else { Issue.record("not refused"); return }
        #expect(e.status == 429)
    }

    @Test func aFetchBeforeAnySubscriptionIsRefused() throws {
        let h = PullHarness()
        guard case .refused(let e)? = h.call({ .fetch(call: $0, timeout: nil, maxBytes: nil) }).answer else { Issue.record("not refused"); return }
        #expect(e.status == 409 && e.code == 40903)
        #expect(h.pollsOutstanding == 0)  // nothing to read: no polling either
    }

    @Test func maxBytesTruncatesTheAnswerButNeverStarvesABigRecord() throws {
        let h = PullHarness()
        h.subscribed()
        h.poll([.records(PullHarness.records(0...9, size: 100))])
        #expect(h.call({ .fetch(call: $0, timeout: nil, maxBytes: 250) }).answer == .records(PullHarness.records(0...1, size: 100)))
        // One record bigger than the limit still goes, alone.
        #expect(h.call({ .fetch(call: $0, timeout: nil, maxBytes: 50) }).answer == .records(PullHarness.records(2...2, size: 100)))
        #expect(h.call({ .fetch(call: $0, timeout: nil, maxBytes: nil) }).answer == .records(PullHarness.records(3...9, size: 100)))
    }

    @Test func fetchMinBytesHoldsTheAnswerUntilEnoughIsBuffered() throws {
        let h = PullHarness { s, _ in s.fetchMinBytes = 50 }
        h.subscribed()
        let f = h.call { .fetch(call: $0, timeout: .seconds(1), maxBytes: nil) }
        #expect(PullHarness.answer(f.call, in: h.poll([.records(PullHarness.records(0...2))])) == nil)  // 30 bytes
        #expect(PullHarness.answer(f.call, in: h.poll([.records(PullHarness.records(3...4))])) == .records(PullHarness.records(0...4)))
    }

    @Test func confluentCommitsStoreTheNextOffsetAndStrimziStoresItAsGiven() throws {
        for flavour in APIFlavour.allCases {
            let h = PullHarness { s, _ in s.autoCommit = false; s.flavour = flavour }
            h.subscribed()
            h.poll([.records(PullHarness.records(0...4))])
            _ = h.call { .fetch(call: $0, timeout: nil, maxBytes: nil) }
            let c = h.call { .commit(call: $0, offsets: [PartitionOffset(PullHarness.tp0, 3)]) }
            let stored: Int64 = flavour == .confluent ? 4 : 3
            #expect(PullHarness.commits(c.actions).map(\.1) == [[PartitionOffset(PullHarness.tp0, stored)]])
            #expect(c.answer == nil)  // answered when the commit is done
            let ticket = PullHarness.commits(c.actions)[0].0
            #expect(PullHarness.answer(c.call, in: h.send(.commitDone(ticket: ticket, .success(())))) == .done)
        }
    }

    @Test func aCommitNeverPassesARecordTheAppWasNotGiven() throws {
        let h = PullHarness { s, _ in s.autoCommit = false }
        h.subscribed()
        h.poll([.records(PullHarness.records(0...9, size: 100))])
        _ = h.call { .fetch(call: $0, timeout: nil, maxBytes: 250) }  // offsets 0 and 1 handed out
        // Offset 2 was fetched by the sidecar but never returned: committing it (stored 3) is refused.
        let past = h.call { .commit(call: $0, offsets: [PartitionOffset(PullHarness.tp0, 2)]) }
        guard case .refused(let e)? = past.answer else { Issue.record("not refused"); return }
        #expect(e.status == 409 && PullHarness.commits(past.actions).isEmpty)
        // An empty commit commits exactly what was handed out.
        let all = h.call { .commit(call: $0, offsets: nil) }
        #expect(PullHarness.commits(all.actions).map(\.1) == [[PartitionOffset(PullHarness.tp0, 2)]])
        // A partition not assigned: 409 (Confluent's IllegalState), nothing committed.
        let other = h.call { .commit(call: $0, offsets: [PartitionOffset(PullHarness.tp1, 0)]) }
        guard case .refused(let e2)? = other.answer else { Issue.record("not refused"); return }
        #expect(e2.code == 40903 && PullHarness.commits(other.actions).isEmpty)
    }

    @Test func aRebalanceDropsWhatWasNotHandedOutAndCommitsOnlyWhatAutoCommitCounts() throws {
        for autoCommit in [false, true] {
            let h = PullHarness { s, _ in s.autoCommit = autoCommit }
            h.subscribed([PullHarness.tp0, PullHarness.tp1])
            h.poll([.records(PullHarness.records(0...9, size: 100) + PullHarness.records(0...4, tp: PullHarness.tp1))])
            _ = h.call { .fetch(call: $0, timeout: nil, maxBytes: 300) }  // 0...2 of t-0 handed out
            let out = h.send(.revoking(id: 7, PartitionRevocation(partitions: [PullHarness.tp0], lost: false)))
            // Handed-out records count as processed only under auto commit; without it they come back
            // to the next owner, because nothing passes the last commit.
            #expect(out.contains(.release(revocation: 7, autoCommit ? [PartitionOffset(PullHarness.tp0, 3)] : [])))
            h.poll([.revoked([PullHarness.tp0])])
            #expect(h.engine.assignedPartitions == [PullHarness.tp1])
            // What was buffered for t-0 is gone; t-1's records are still there.
            #expect(h.call({ .fetch(call: $0, timeout: nil, maxBytes: nil) }).answer == .records(PullHarness.records(0...4, tp: PullHarness.tp1)))
        }
    }

    @Test func aLostPartitionReleasesNothing() throws {
        let h = PullHarness()
        h.subscribed()
        h.poll([.records(PullHarness.records(0...4))])
        _ = h.call { .fetch(call: $0, timeout: nil, maxBytes: nil) }
        #expect(h.send(.revoking(id: 1, PartitionRevocation(partitions: [PullHarness.tp0], lost: true))).contains(.release(revocation: 1, [])))
    }

    @Test func autoCommitCommitsAtTheNextFetchWhatTheLastOneHandedOut() throws {
        let h = PullHarness()
        h.subscribed()
        h.poll([.records(PullHarness.records(0...4))])
        let first = h.call { .fetch(call: $0, timeout: nil, maxBytes: nil) }
        #expect(PullHarness.commits(first.actions).isEmpty)  // nothing was handed out before it
        h.poll([.records(PullHarness.records(5...6))])
        let second = h.call { .fetch(call: $0, timeout: nil, maxBytes: nil) }
        #expect(PullHarness.commits(second.actions).map(\.1) == [[PartitionOffset(PullHarness.tp0, 5)]])
        #expect(second.answer == .records(PullHarness.records(5...6)))
    }

    @Test func recordsOfAPollThatBeganBeforeASeekAreStale() throws {
        let h = PullHarness()
        h.subscribed()
        // The poll under way began before the seek: what it brings for t-0 is dropped.
        let seek = h.call { .seek(call: $0, [PartitionSeek(PullHarness.tp0, .offset(100))]) }
        #expect(seek.answer == .done && seek.actions.contains(.seek(PullHarness.tp0, .offset(100))))
        h.poll([.records(PullHarness.records(0...4))])
        h.poll([.records(PullHarness.records(100...101))])
        #expect(h.call({ .fetch(call: $0, timeout: nil, maxBytes: nil) }).answer == .records(PullHarness.records(100...101)))
    }

    @Test func aSeekOfAPartitionNotAssignedChangesNothing() throws {
        let h = PullHarness { s, _ in s.flavour = .strimzi }
        h.subscribed()
        let out = h.call { .seek(call: $0, [PartitionSeek(PullHarness.tp0, .beginning), PartitionSeek(PullHarness.tp1, .end)]) }
        guard case .refused(let e)? = out.answer else { Issue.record("not refused"); return }
        #expect(e.status == 404)
        #expect(!out.actions.contains { if case .seek = $0 { true } else { false } })
    }

    @Test func aFullBufferPausesThePartitionsAndPollingSlowsDown() throws {
        let h = PullHarness { _, l in l.maxBufferedRecords = 10 }
        h.subscribed()
        let out = h.poll([.records(PullHarness.records(0...9))])
        #expect(out.contains(.pause([PullHarness.tp0])))
        #expect(out.contains { if case .poll(_, 1, let after) = $0 { after > .zero } else { false } })
        let fetched = h.call { .fetch(call: $0, timeout: nil, maxBytes: nil) }
        #expect(fetched.actions.contains(.resume([PullHarness.tp0])))
    }

    @Test func aBufferFullInBytesPausesToo() throws {
        let h = PullHarness { _, l in l.maxBufferedBytes = 100 }
        h.subscribed()
        let out = h.poll([.records(PullHarness.records(0...9, size: 10))])
        #expect(out.contains(.pause([PullHarness.tp0])))
        #expect(out.contains { if case .poll(_, 1, let after) = $0 { after > .zero } else { false } })
        let fetched = h.call { .fetch(call: $0, timeout: nil, maxBytes: nil) }
        #expect(fetched.actions.contains(.resume([PullHarness.tp0])))
    }

    @Test func subscribeAndAssignExcludeEachOther() throws {
        let h = PullHarness()
        #expect(h.call({ .subscribe(call: $0, topics: ["t"]) }).answer == .done)
        guard case .refused(let e)? = h.call({ .assign(call: $0, [PullHarness.tp0]) }).answer else { Issue.record("not refused"); return }
        #expect(e.code == 40903)
        #expect(h.call({ .subscribe(call: $0, topics: ["t"]) }).answer == .done)  // the same again: nothing changes
        guard case .refused(let other)? = h.call({ .subscribe(call: $0, topics: ["u"]) }).answer else { Issue.record("not refused"); return }
        #expect(other.code == 40901)
        #expect(h.call({ .subscription(call: $0) }).answer == .subscription(topics: ["t"]))
        #expect(h.call({ .unsubscribe(call: $0) }).answer == .done)
        #expect(h.call({ .assign(call: $0, [PullHarness.tp1]) }).answer == .done)
        #expect(h.call({ .assignment(call: $0) }).answer == .assignment([PullHarness.tp1]))
    }

    @Test func deleteCommitsUnderAutoCommitThenClosesAndAnswersWaitingFetches() throws {
        let h = PullHarness()
        h.subscribed()
        h.poll([.records(PullHarness.records(0...4))])
        _ = h.call { .fetch(call: $0, timeout: nil, maxBytes: nil) }  // 0...4 handed out
        let delete = h.call { .delete(call: $0) }
        let commits = PullHarness.commits(delete.actions)
        #expect(commits.map(\.1) == [[PartitionOffset(PullHarness.tp0, 5)]])
        #expect(!delete.actions.contains(.close))  // the commit comes first
        // Calls while it closes find no instance.
        guard case .refused(let e)? = h.call({ .fetch(call: $0, timeout: nil, maxBytes: nil) }).answer else { Issue.record("not refused"); return }
        #expect(e.code == 40403)
        let done = h.send(.commitDone(ticket: commits[0].0, .success(())))
        #expect(done.contains(.close) && PullHarness.answer(delete.call, in: done) == .done)
        #expect(h.engine.phase == .closed)
    }

    @Test func aFetchWaitingWhenTheInstanceClosesIsAnsweredEmpty() throws {
        let h = PullHarness { s, _ in s.autoCommit = false }
        h.subscribed()
        let waiting = h.call { .fetch(call: $0, timeout: .seconds(5), maxBytes: nil) }
        let delete = h.call { .delete(call: $0) }
        #expect(PullHarness.answer(waiting.call, in: delete.actions) == .records([]))
        #expect(delete.actions.contains(.close) && delete.answer == .done)
    }

    @Test func anIdleInstanceClosesAfterTheIdleTimeoutAndAUsedOneDoesNot() throws {
        let h = PullHarness { s, l in s.autoCommit = false; l.idleTimeout = .seconds(60) }
        h.subscribed()
        h.advance(.seconds(40))
        _ = h.call { .fetch(call: $0, timeout: .zero, maxBytes: nil) }
        h.advance(.seconds(20))
        let early = h.send(.timerFired(.idle))
        #expect(!early.contains(.close) && early.contains(.armTimer(.idle, after: .seconds(40))))
        h.advance(.seconds(40))
        #expect(h.send(.timerFired(.idle)).contains(.close))
    }

    @Test func theRegistryRefusesADuplicateNameAndTooManyInstances() throws {
        var limits = PullConsumerLimits()
        limits.maxInstances = 2
        let registry = PullConsumerRegistry(limits: limits, random: SeededRandom(seed: 3))
        let a = try registry.create(group: "g", name: "a", settings: .init(), now: .zero).get()
        guard case .failure(let dup) = registry.create(group: "g", name: "a", settings: .init(), now: .zero) else { Issue.record("duplicate made"); return }
        #expect(dup.status == 409 && dup.code == 40902)
        #expect(throws: Never.self) { _ = try registry.create(group: "h", name: "a", settings: .init(), now: .zero).get() }
        guard case .failure(let many) = registry.create(group: "g", name: nil, settings: .init(), now: .zero) else { Issue.record("over the limit"); return }
        #expect(many.status == 429)
        // A deleted instance's name is free at once, even while its last commit is in flight.
        _ = a.handle(.delete(call: 1), now: .zero)
        #expect(registry.instance(group: "g", name: "a") == nil)
        registry.forget(a)
        #expect(registry.count == 1)
    }
}
