/// A cancellable handle to a scheduled timer.
public struct TimerToken: Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// Seam: the source of time and timers for all product code.
///
/// Contract, honoured by ``SystemClock`` and by the simulator's host clock:
/// - `now` is monotonic: two reads on the same clock never go backwards.
/// - `schedule(after:_:)` runs `body` exactly once, no earlier than `now + delay`, unless the token is
///   cancelled first. A non-positive delay means "as soon as possible", never synchronously inside
///   `schedule`.
/// - `cancel(_:)` is idempotent; cancelling a timer that already fired is a no-op.
/// - Timers of one clock that are due at the same instant fire in the order they were scheduled.
/// - In the simulator a host's timers die with the host: after a crash, nothing scheduled before it fires.
///
/// Product code never reads `Date()`, `DispatchTime` or `ContinuousClock` directly; it reads this seam,
/// so the same decision code runs against virtual time in the simulator.
public protocol MeshClock: AnyObject, Sendable {
    /// The current instant.
    var now: MeshInstant { get }

    /// Runs `body` after `delay`; returns a token that cancels it.
    @discardableResult
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> TimerToken

    /// Cancels a scheduled timer; a no-op if it already fired or was cancelled.
    func cancel(_ token: TimerToken)
}
