import MeshCore

/// A per-endpoint circuit breaker (sans-IO: the caller passes `now`).
///
/// ```
///  closed --(consecutiveFailures in a row)--> open --(openDuration passed)--> halfOpen
///     ^                                                                         |
///     +---------------------(probe succeeded)-----------------------------------+
///                                   open <--(probe failed)--+
/// ```
/// While open the endpoint gets no traffic; half-open lets exactly `halfOpenProbes` requests through.
public struct CircuitBreaker: Hashable, Sendable {
    public struct Config: Hashable, Sendable {
        public var consecutiveFailures = 5
        public var openDuration: Duration = .seconds(5)
        public var halfOpenProbes = 1
        public init() {}
    }

    public enum State: Hashable, Sendable {
        case closed(failures: Int)
        case open(until: MeshInstant)
        case halfOpen(probesInFlight: Int)

        public var name: String {
            switch self {
            case .closed: "closed"
            case .open: "open"
            case .halfOpen: "half-open"
            }
        }
    }

    public let config: Config
    public private(set) var state: State = .closed(failures: 0)

    public init(_ config: Config = Config()) { self.config = config }

    /// What the breaker lets through now.
    public enum Admission: Hashable, Sendable { case normal, probe, rejected }

    /// Moves open → half-open when its time is up, and says whether a request may go now.
    /// A `.probe` admission must be followed by `record` for that request.
    public mutating func admit(now: MeshInstant) -> Admission {
        switch state {
        case .closed:
            return .normal
        case .open(let until):
            guard now >= until else { return .rejected }
            state = .halfOpen(probesInFlight: 1)
            return .probe
        case .halfOpen(let n):
            guard n < config.halfOpenProbes else { return .rejected }
            state = .halfOpen(probesInFlight: n + 1)
            return .probe
        }
    }

    /// Whether `admit` would let a request through now, without changing state.
    public func wouldAdmit(now: MeshInstant) -> Bool {
        switch state {
        case .closed: true
        case .open(let until): now >= until
        case .halfOpen(let n): n < config.halfOpenProbes
        }
    }

    /// A probe ended without a verdict (its request was cancelled): its slot is free again.
    public mutating func releaseProbe() {
        if case .halfOpen(let n) = state { state = .halfOpen(probesInFlight: max(0, n - 1)) }
    }

    /// Records a finished request. Returns the new state when it changed.
    @discardableResult
    public mutating func record(success: Bool, now: MeshInstant) -> State? {
        let before = state
        switch state {
        case .closed(let failures):
            if success {
                state = .closed(failures: 0)
            // ci/mutants: breaker-opens-late (the next line)
            } else if failures + 1 >= config.consecutiveFailures {
                state = .open(until: now + config.openDuration)
            } else {
                state = .closed(failures: failures + 1)
            }
        case .halfOpen:
            // ci/mutants: failed-probe-closes, probe-success-reopens (the next line)
            state = success ? .closed(failures: 0) : .open(until: now + config.openDuration)
        case .open:
            break  // a request admitted before the breaker opened; it does not change the verdict
        }
        return state.name != before.name ? state : nil
    }
}
