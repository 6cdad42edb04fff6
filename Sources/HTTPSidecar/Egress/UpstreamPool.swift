import MeshCore

/// Everything the egress router decides about one upstream service, as a value type (sans-IO):
/// which endpoint gets a request, what each outcome does to breakers and ejection, and whether a
/// failed attempt may be retried. Drivers (the NIO data path, the simulator) perform the actions.
public struct UpstreamPool: Sendable {
    public struct Config: Hashable, Sendable {
        public var policy: LoadBalancingPolicy = .peakEWMA
        public var breaker = CircuitBreaker.Config()
        public var outlier = OutlierDetector.Config()
        public var retry = RetryPolicy()
        public init() {}
    }

    /// One endpoint's state; `/endpoints` on the admin port shows these.
    public struct Endpoint: Sendable {
        public let address: MeshAddress
        public var inFlight = 0
        public var latency: PeakEWMA
        public var breaker: CircuitBreaker
        public var outlier: OutlierDetector

        public func available(now: MeshInstant) -> Bool {
            // ci/mutants: ejection-ignored (the next line)
            !outlier.isEjected(now: now) && breaker.wouldAdmit(now: now)
        }
    }

    /// The pool's choice for one attempt.
    public struct Pick: Hashable, Sendable {
        public var address: MeshAddress
        /// The endpoint's breaker is half-open and this request is its probe.
        public var isProbe: Bool
    }

    /// Something worth logging and counting that a `record` call caused.
    public enum Event: Hashable, Sendable {
        case ejected(MeshAddress, until: MeshInstant)
        case breakerOpened(MeshAddress)
        case breakerClosed(MeshAddress)
        case ejectionSkipped(MeshAddress)
    }

    public let config: Config
    public private(set) var endpoints: [Endpoint] = []
    public private(set) var budget: RetryBudget
    private var cursor = 0

    public init(_ config: Config = Config(), endpoints: [MeshAddress] = [], now: MeshInstant = .zero) {
        self.config = config
        self.budget = RetryBudget(ratio: config.retry.budgetRatio, minRetriesPerSecond: config.retry.budgetMinPerSecond, window: config.retry.budgetWindow)
        setEndpoints(endpoints, now: now)
    }

    /// Applies a discovery update; endpoints that stay keep their state, new ones start fresh.
    public mutating func setEndpoints(_ addresses: [MeshAddress], now: MeshInstant) {
        var next: [Endpoint] = []
        for a in addresses where !next.contains(where: { $0.address == a }) {
            next.append(endpoints.first { $0.address == a } ?? Endpoint(
                address: a, latency: PeakEWMA(now: now), breaker: CircuitBreaker(config.breaker), outlier: OutlierDetector(config.outlier)))
        }
        endpoints = next
        cursor = 0
    }

    public func index(of address: MeshAddress) -> Int? { endpoints.firstIndex { $0.address == address } }

    /// Records an original request (it funds the retry budget).
    public mutating func requestArrived(now: MeshInstant) { budget.recordRequest(now: now) }

    /// Chooses an endpoint for an attempt, avoiding `exclude` (endpoints this request already
    /// failed on) when there is another choice. `nil`: nothing is available (answer 503).
    public mutating func pick(now: MeshInstant, exclude: [MeshAddress] = [], random: inout some RandomSource) -> Pick? {
        var candidates = endpoints.indices.filter { endpoints[$0].available(now: now) }
        let fresh = candidates.filter { !exclude.contains(endpoints[$0].address) }
        if !fresh.isEmpty { candidates = fresh }
        guard !candidates.isEmpty else { return nil }
        let chosen: Int
        switch config.policy {
        case .roundRobin:
            chosen = candidates[cursor % candidates.count]
            cursor &+= 1
        case .leastRequest, .peakEWMA:
            if candidates.count == 1 {
                chosen = candidates[0]
            } else {
                let a = Int(random.next() % UInt64(candidates.count))
                var b = Int(random.next() % UInt64(candidates.count - 1))
                if b >= a { b += 1 }
                chosen = cost(candidates[a]) <= cost(candidates[b]) ? candidates[a] : candidates[b]
            }
        }
        let admission = endpoints[chosen].breaker.admit(now: now)
        precondition(admission != .rejected, "picked an endpoint its breaker rejects")
        endpoints[chosen].inFlight += 1
        return Pick(address: endpoints[chosen].address, isProbe: admission == .probe)
    }

    private func cost(_ i: Int) -> Double {
        let e = endpoints[i]
        switch config.policy {
        case .leastRequest: return Double(e.inFlight)
        default: return e.latency.nanoseconds * Double(e.inFlight + 1)
        }
    }

    /// Records how an attempt on `address` ended; returns what changed.
    public mutating func record(_ address: MeshAddress, _ outcome: UpstreamOutcome, latency: Duration, now: MeshInstant) -> [Event] {
        guard let i = index(of: address) else { return [] }  // removed by discovery meanwhile
        var events: [Event] = []
        endpoints[i].inFlight = max(0, endpoints[i].inFlight - 1)
        if outcome == .success { endpoints[i].latency.observe(latency, now: now) }
        switch endpoints[i].breaker.record(success: !outcome.isFailure, now: now) {
        case .open?: events.append(.breakerOpened(address))
        case .closed?: events.append(.breakerClosed(address))
        default: break
        }
        if endpoints[i].outlier.record(outcome) {
            let ejected = endpoints.filter { $0.outlier.isEjected(now: now) }.count
            let allowed = max(0, min(endpoints.count - 1, endpoints.count * config.outlier.maxEjectedPercent / 100))
            if ejected < allowed {
                events.append(.ejected(address, until: endpoints[i].outlier.eject(now: now)))
            } else {
                events.append(.ejectionSkipped(address))
            }
        }
        return events
    }

    /// How soon to look again while a half-open endpoint's probe is out.
    public static let probeRecheck: Duration = .milliseconds(10)

    /// When an endpoint may next be available, when none is now: the earliest end of an ejection
    /// or an open breaker, or ``probeRecheck`` from now while a probe is out. `nil`: no endpoints.
    public func nextChance(now: MeshInstant) -> MeshInstant? {
        endpoints.map { e -> MeshInstant in
            let ejection = e.outlier.ejectedUntil.map { max($0, now) } ?? now
            let breaker: MeshInstant
            switch e.breaker.state {
            case .closed: breaker = now
            case .open(let until): breaker = max(until, now)
            case .halfOpen: breaker = e.breaker.wouldAdmit(now: now) ? now : now + Self.probeRecheck
            }
            return max(ejection, breaker)
        }.min()
    }

    /// An attempt on `pick` ended without a verdict (its request was cancelled): the endpoint's
    /// in-flight count goes down and, for a probe, the half-open slot is freed for another probe.
    public mutating func release(_ pick: Pick) {
        guard let i = index(of: pick.address) else { return }
        endpoints[i].inFlight = max(0, endpoints[i].inFlight - 1)
        // ci/mutants: probe-slot-kept (the next line)
        if pick.isProbe { endpoints[i].breaker.releaseProbe() }
    }

    /// Whether nothing is under way: no endpoint has a request in flight or a probe taken. True
    /// whenever no request is running, if every attempt was ended exactly once.
    public var isQuiescent: Bool {
        endpoints.allSatisfy { e in
            if e.inFlight != 0 { return false }
            if case .halfOpen(let probes) = e.breaker.state, probes > 0 { return false }
            return true
        }
    }

    /// Decides whether a failed attempt is retried.
    public mutating func retryDecision(
        method: String, attempt: Int, failure: UpstreamOutcome, requestNeverSent: Bool,
        now: MeshInstant, timeLeft: Duration, random: inout some RandomSource
    ) -> RetryDecision {
        let policy = config.retry
        guard attempt < policy.maxAttempts else { return .giveUp(.attemptsExhausted) }
        guard requestNeverSent || policy.isSafe(method: method) else { return .giveUp(.notSafe) }
        guard policy.retries(failure) || requestNeverSent else { return .giveUp(.notRetriable) }
        let delay = policy.backoff.delay(forRetry: attempt - 1, using: &random)
        guard delay < timeLeft else { return .giveUp(.noTimeLeft) }
        // ci/mutants: retry-budget-off (the next line)
        guard budget.tryRetry(now: now) else { return .giveUp(.budgetExhausted) }
        return .retry(after: delay)
    }
}

/// When a failed attempt may be tried again.
public struct RetryPolicy: Hashable, Sendable {
    /// Attempts in all, the first included.
    public var maxAttempts = 3
    /// Retry non-idempotent methods too (only for routes that say their upstream deduplicates).
    public var retryNonIdempotent = false
    /// Retry these upstream statuses (for safe requests).
    public var retryStatuses: Set<Int> = [502, 503, 504]
    public var backoff = ExponentialBackoff(initial: .milliseconds(25), maximum: .milliseconds(250))
    public var budgetRatio = 0.2
    public var budgetMinPerSecond = 10.0
    public var budgetWindow: Duration = .seconds(10)
    public init() {}

    /// RFC 9110 idempotent methods.
    public static let idempotentMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]

    // ci/mutants: idempotent-check-off (the next line)
    public func isSafe(method: String) -> Bool { retryNonIdempotent || Self.idempotentMethods.contains(method.uppercased()) }

    public func retries(_ failure: UpstreamOutcome) -> Bool {
        switch failure {
        case .success: false
        case .serverError(let status): retryStatuses.contains(status)
        case .gatewayError: true
        }
    }
}

public enum RetryDecision: Hashable, Sendable {
    case retry(after: Duration)
    case giveUp(Reason)

    public enum Reason: String, Hashable, Sendable {
        case attemptsExhausted = "attempts_exhausted"
        case notSafe = "not_safe_to_retry"
        case notRetriable = "not_retriable"
        case noTimeLeft = "deadline"
        case budgetExhausted = "retry_budget_exhausted"
    }
}
