import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import NIOCore
import NIOEmbedded
import Testing

/// The egress's lazily re-armed timers: a later deadline moves without a new task, an earlier one
/// gets a task of its own, a task that fires early re-arms, and a disarmed timer reports nothing.
@Suite struct LazyTimersTests {
    private let loop = EmbeddedEventLoop()
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    private func task(at deadline: NIODeadline) -> Scheduled<Void> { loop.scheduleTask(deadline: deadline) {} }

    @Test func aLaterDeadlineMovesWithoutANewTaskAndFiresWhenDue() {
        var timers = LazyTimers<String>()
        let mustSchedule1 = timers.arm(.deadline, .init(at: t0 + .seconds(30), generation: 1, payload: "a"))
        #expect(mustSchedule1)
        timers.scheduled(.deadline, task(at: t0 + .seconds(30)), at: t0 + .seconds(30))
        // The next request's deadline is later: the task scheduled already fires first.
        let mustSchedule2 = timers.arm(.deadline, .init(at: t0 + .seconds(31), generation: 2, payload: "b"))
        #expect(!mustSchedule2)
        // It fires at 30 s: too early, so it re-arms for 31 s.
        let early = timers.fired(.deadline, now: t0 + .seconds(30))
        #expect(early.due == nil && early.reschedule == t0 + .seconds(31))
        timers.scheduled(.deadline, task(at: t0 + .seconds(31)), at: t0 + .seconds(31))
        let due = timers.fired(.deadline, now: t0 + .seconds(31))
        #expect(due.due?.generation == 2 && due.due?.payload == "b" && due.reschedule == nil)
        // Reported once.
        let late1 = timers.fired(.deadline, now: t0 + .seconds(32))
        #expect(late1.due == nil)
    }

    @Test func anEarlierDeadlineGetsItsOwnTask() {
        var timers = LazyTimers<String>()
        let mustSchedule3 = timers.arm(.attempt, .init(at: t0 + .seconds(30), generation: 1, payload: "a"))
        #expect(mustSchedule3)
        timers.scheduled(.attempt, task(at: t0 + .seconds(30)), at: t0 + .seconds(30))
        let mustSchedule4 = timers.arm(.attempt, .init(at: t0 + .seconds(5), generation: 2, payload: "b"))
        #expect(mustSchedule4)
    }

    @Test func aDisarmedTimerReportsNothingAndTimersAreIndependent() {
        var timers = LazyTimers<String>()
        let mustSchedule5 = timers.arm(.deadline, .init(at: t0, generation: 1, payload: "a"))
        #expect(mustSchedule5)
        timers.scheduled(.deadline, task(at: t0), at: t0)
        let mustSchedule6 = timers.arm(.wait, .init(at: t0, generation: 2, payload: "w"))
        #expect(mustSchedule6)
        timers.scheduled(.wait, task(at: t0), at: t0)
        timers.disarmAll()
        let late2 = timers.fired(.deadline, now: t0 + .seconds(1))
        #expect(late2.due == nil)
        let late3 = timers.fired(.wait, now: t0 + .seconds(1))
        #expect(late3.due == nil)
        // A new request arms again from nothing.
        let mustSchedule7 = timers.arm(.deadline, .init(at: t0 + .seconds(2), generation: 1, payload: "c"))
        #expect(mustSchedule7)
    }
}
