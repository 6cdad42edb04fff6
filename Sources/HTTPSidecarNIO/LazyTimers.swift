import HTTPClientNIO
import HTTPSidecarEngines
import HTTPSidecar
import NIOCore

/// The egress exchange's timers on a connection's event loop, re-armed lazily: one NIO task per
/// timer kind, and arming a timer no earlier than its task's time only moves the wanted deadline
/// (the task, when it fires, schedules itself again for that deadline). A keep-alive connection
/// that arms a deadline per request thus schedules about one task per timeout period instead of
/// one per request (each scheduled task cost about five allocations). Loop-confined.
struct LazyTimers<Payload> {
    /// What the driver asked for: fire at `at`, reporting `generation` with `payload`.
    struct Wanted {
        var at: NIODeadline
        var generation: UInt64
        var payload: Payload
    }

    private struct Slot {
        var task: Scheduled<Void>?
        var taskAt = NIODeadline.distantFuture
        var wanted: Wanted?
    }

    private var slots = PerTimer(Slot())

    /// Arms `timer`; returns true when a task must be scheduled for `at` (``scheduled(_:_:at:)``),
    /// false when the task already scheduled fires first and will re-arm.
    mutating func arm(_ timer: EgressExchange.Timer, _ wanted: Wanted) -> Bool {
        slots[timer].wanted = wanted
        if slots[timer].task != nil && slots[timer].taskAt <= wanted.at { return false }
        slots[timer].task?.cancel()
        slots[timer].task = nil
        return true
    }

    /// Records the task scheduled for `timer` at `at`.
    mutating func scheduled(_ timer: EgressExchange.Timer, _ task: Scheduled<Void>, at: NIODeadline) {
        slots[timer].task = task
        slots[timer].taskAt = at
    }

    /// `timer`'s task fired at `now`: what is due (cleared), or nil. When a later deadline is wanted,
    /// `reschedule` is that deadline.
    mutating func fired(_ timer: EgressExchange.Timer, now: NIODeadline) -> (due: Wanted?, reschedule: NIODeadline?) {
        slots[timer].task = nil
        guard let wanted = slots[timer].wanted else { return (nil, nil) }
        if wanted.at > now { return (nil, wanted.at) }
        slots[timer].wanted = nil
        return (wanted, nil)
    }

    /// The request is over: nothing is wanted any more (tasks still scheduled fire and find nothing).
    mutating func disarmAll() {
        slots.updateAll { $0.wanted = nil }
    }

    /// The connection is gone: the tasks are cancelled too (none keeps the handler alive).
    mutating func cancelAll() {
        slots.updateAll { slot in
            slot.task?.cancel()
            slot = Slot()
        }
    }
}
