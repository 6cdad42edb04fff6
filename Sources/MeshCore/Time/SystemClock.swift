import Dispatch
import Synchronization

/// Production ``MeshClock`` on the monotonic system clock, with timers on a Dispatch queue.
public final class SystemClock: MeshClock {
    private let origin = ContinuousClock.now
    private let queue: DispatchQueue
    private let state = Mutex<(next: UInt64, live: Set<UInt64>)>((1, []))

    /// Creates a clock whose timers run on `queue` (a private serial queue by default).
    public init(queue: DispatchQueue = DispatchQueue(label: "light-mesh.clock")) {
        self.queue = queue
    }

    public var now: MeshInstant {
        MeshInstant(nanoseconds: (ContinuousClock.now - origin).nanoseconds)
    }

    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> TimerToken {
        let token = state.withLock { s -> UInt64 in
            defer { s.next += 1 }
            s.live.insert(s.next)
            return s.next
        }
        let nanos = max(0, delay.nanoseconds)
        queue.asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: nanos))) { [weak self] in
            guard let self, self.state.withLock({ $0.live.remove(token) != nil }) else { return }
            body()
        }
        return TimerToken(rawValue: token)
    }

    public func cancel(_ token: TimerToken) {
        _ = state.withLock { $0.live.remove(token.rawValue) }
    }
}
