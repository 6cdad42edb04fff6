import MeshCore

/// The ``MeshClock`` a simulated host hands to product code: virtual time, timers on the kernel's queue,
/// and timers that die with the host's incarnation.
///
/// It is `Sendable` only to satisfy the seam: every call must come from the simulation's thread, and a
/// call from anywhere else traps (that is how an escape to the global executor is detected).
public final class SimHostClock: MeshClock, @unchecked Sendable {
    private unowned let host: SimHost
    private var live: Set<UInt64> = []
    private var nextToken: UInt64 = 1

    init(host: SimHost) { self.host = host }

    public var now: MeshInstant {
        host.simulation.assertConfined()
        return host.simulation.now
    }

    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> TimerToken {
        host.simulation.assertConfined()
        let token = nextToken
        nextToken &+= 1
        live.insert(token)
        host.scheduleClosure(after: delay) { [self] in
            if live.remove(token) != nil { body() }
        }
        return TimerToken(rawValue: token)
    }

    public func cancel(_ token: TimerToken) {
        host.simulation.assertConfined()
        live.remove(token.rawValue)
    }
}
