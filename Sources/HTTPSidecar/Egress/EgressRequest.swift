import MeshCore

/// The attempts of one egress request, sans-IO: a token before each attempt (when the service injects
/// one), which endpoint next, and when an attempt ends (at its response head, or by failing) whether
/// to retry, to answer with it, or to give up. The NIO egress handler and the simulated egress client
/// both drive it; the decisions inside are ``UpstreamPool``'s.
///
/// Driving it: call ``begin(pool:now:)`` once, then ``nextAttempt(pool:now:random:)``, and follow the
/// ``Next`` it returns: `.needToken` → get one, then ``tokenReady(_:)`` and `nextAttempt` again;
/// `.waitForEndpoint` → wait until then, and `nextAttempt` again; `.send` → send the attempt, then report its head (``responseHead(status:pool:now:random:)``) or
/// its failure (``attemptFailed(_:requestSent:pool:now:random:)``); `.retry` → wait, then
/// `nextAttempt`. `.answer`, `.noEndpoint` and `.giveUp` end the request.
///
/// Every attempt ends in the pool exactly once, whatever happens around it: by its response head,
/// by its failure, by ``deadlinePassed(pool:now:attemptTimeout:)`` (the whole request ran out of time:
/// recorded as a timeout, answered 504 `request_timeout`; a half-open probe cut off before it had its
/// attempt timeout is released instead) or by ``cancel(pool:now:)`` (the app went away or the
/// sidecar stopped: the attempt is released without a verdict, so a half-open probe slot is freed
/// instead of staying taken for good). Once ended, the request starts no more attempts.
public struct EgressRequest: Sendable {
    public enum Next: Equatable, Sendable {
        /// Get a token for the next attempt, then call ``tokenReady(_:)``.
        case needToken
        /// Send the attempt to `pick`, with `token` as the bearer token when the service injects one.
        case send(UpstreamPool.Pick, token: String?)
        /// No endpoint is available now, but one may be at `until`, before the deadline (an ejection
        /// or an open breaker ends, a probe comes back): wait, then call ``nextAttempt(pool:now:random:)``.
        /// Nothing was sent, so this is no retry and spends no budget.
        case waitForEndpoint(until: MeshInstant)
        /// No endpoint is available, nor will be before the deadline: answer 503.
        case noEndpoint
        /// Wait, then call ``nextAttempt(pool:now:random:)``.
        case retry(after: Duration, requestNeverSent: Bool)
        /// The current attempt's response is the answer: relay it.
        case answer
        /// No more attempts; the last one ended with `outcome`. For a `.serverError` the upstream's
        /// response is still there to relay; for a `.gatewayError` the answer is 502 or 504.
        case giveUp(RetryDecision.Reason, UpstreamOutcome)
    }

    /// An attempt ended: what to do next, and what changed in the pool (for logs, metrics, coverage).
    public struct Conclusion: Equatable, Sendable {
        public var next: Next
        public var events: [UpstreamPool.Event]
        /// The token the upstream refused (401): the caller's token cache should drop it.
        public var rejectedToken: String?
    }

    public let method: String
    public let deadline: MeshInstant
    public let usesToken: Bool
    public private(set) var attempts = 0
    public private(set) var tried: [MeshAddress] = []
    /// The attempt under way: where it went and when.
    public private(set) var current: (pick: UpstreamPool.Pick, sentAt: MeshInstant)?
    /// The token for the next attempt (asked for afresh before each one).
    private var token: String?
    /// The request is over (answered, given up, timed out or cancelled): no more attempts.
    public private(set) var isOver = false

    public init(method: String, deadline: MeshInstant, usesToken: Bool) {
        self.method = method
        self.deadline = deadline
        self.usesToken = usesToken
    }

    /// The request arrived (it funds the retry budget).
    public func begin(pool: inout UpstreamPool, now: MeshInstant) {
        pool.requestArrived(now: now)
    }

    /// The next attempt: a token first when needed, then an endpoint not tried yet.
    public mutating func nextAttempt(pool: inout UpstreamPool, now: MeshInstant, random: inout some RandomSource) -> Next {
        guard !isOver else { return .giveUp(.noTimeLeft, .gatewayError(nil)) }
        if now >= deadline {
            isOver = true
            return .giveUp(.noTimeLeft, .gatewayError(.responseTimeout))
        }
        // ci/mutants: egress-always-503 (the next line)
        if usesToken && token == nil { return .needToken }
        guard let pick = pool.pick(now: now, exclude: tried, random: &random) else {
            // Like a balancer that is not ready (linkerd queues until one is): wait within the
            // deadline rather than fail a request that a moment later could succeed.
            if let chance = pool.nextChance(now: now), chance < deadline {
                token = nil  // asked for again after the wait: it may expire meanwhile
                return .waitForEndpoint(until: chance)
            }
            return .noEndpoint
        }
        attempts += 1
        tried.append(pick.address)
        current = (pick, now)
        let sent = token
        token = nil  // a retry asks again: a late retry must not carry a token that expired meanwhile
        return .send(pick, token: sent)
    }

    public mutating func tokenReady(_ value: String) { token = value }

    /// The current attempt's response head arrived with `status`.
    public mutating func responseHead(status: Int, sentToken: String?, pool: inout UpstreamPool, now: MeshInstant,
                                      random: inout some RandomSource) -> Conclusion {
        var conclusion = conclude(UpstreamOutcome(responseStatus: status), requestNeverSent: false, pool: &pool, now: now, random: &random)
        if status == 401 { conclusion.rejectedToken = sentToken }
        return conclusion
    }

    /// The current attempt failed before a response head; `requestSent` tells whether any of the
    /// request may have reached the upstream. Only that decides whether an unsafe request may be
    /// tried again, never the failure's kind: a TLS error or a reset can come after the upstream
    /// read the whole request.
    public mutating func attemptFailed(_ kind: TransportError.Kind?, requestSent: Bool, pool: inout UpstreamPool, now: MeshInstant,
                                       random: inout some RandomSource) -> Conclusion {
        // ci/mutants: tls-close-as-unsent (the next line)
        conclude(.gatewayError(kind), requestNeverSent: !requestSent, pool: &pool, now: now, random: &random)
    }

    /// The whole request ran out of time: the attempt under way (if any) is recorded as a timeout
    /// on its endpoint, and the request ends (answer 504 `request_timeout`).
    ///
    /// A half-open probe is judged only if it had its full `attemptTimeout` (nil: the transport
    /// keeps it, so never). Cut off sooner, it is released without a verdict. The waiting request
    /// that takes a probe is often the oldest, with only a few milliseconds left. Judging its
    /// deadline would reopen the breaker of an endpoint that had recovered, every cycle, for good.
    public mutating func deadlinePassed(pool: inout UpstreamPool, now: MeshInstant, attemptTimeout: Duration?) -> Conclusion {
        guard !isOver else { return Conclusion(next: .giveUp(.noTimeLeft, .gatewayError(.responseTimeout)), events: []) }
        isOver = true
        var events: [UpstreamPool.Event] = []
        if let c = current {
            current = nil
            let ran = now - c.sentAt
            // ci/mutants: probe-cut-judged (the next line)
            if c.pick.isProbe && !(attemptTimeout.map { ran >= $0 } ?? false) {
                pool.release(c.pick)
            } else {
                events = pool.record(c.pick.address, .gatewayError(.responseTimeout), latency: ran, now: now)
            }
        }
        return Conclusion(next: .giveUp(.noTimeLeft, .gatewayError(.responseTimeout)), events: events)
    }

    /// The request is abandoned (the app closed its connection, a protocol error, shutdown): the
    /// attempt under way is released in the pool without counting for or against its endpoint (a
    /// probe's slot is freed for the next request). Safe to call more than once.
    public mutating func cancel(pool: inout UpstreamPool, now: MeshInstant) {
        isOver = true
        guard let c = current else { return }
        current = nil
        // ci/mutants: cancel-not-recorded (the next line)
        pool.release(c.pick)
    }

    private mutating func conclude(_ outcome: UpstreamOutcome, requestNeverSent: Bool, pool: inout UpstreamPool, now: MeshInstant,
                                   random: inout some RandomSource) -> Conclusion {
        guard let c = current else { return Conclusion(next: .giveUp(.notRetriable, outcome), events: []) }
        current = nil
        let events = pool.record(c.pick.address, outcome, latency: now - c.sentAt, now: now)
        guard outcome != .success else {
            isOver = true
            return Conclusion(next: .answer, events: events)
        }
        switch pool.retryDecision(method: method, attempt: attempts, failure: outcome, requestNeverSent: requestNeverSent,
                                  now: now, timeLeft: deadline - now, random: &random) {
        case .retry(let delay):
            return Conclusion(next: .retry(after: delay, requestNeverSent: requestNeverSent), events: events)
        case .giveUp(let reason):
            isOver = true
            return Conclusion(next: .giveUp(reason, outcome), events: events)
        }
    }
}
