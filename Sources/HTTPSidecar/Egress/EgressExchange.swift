import MeshCore

/// The whole life of one egress request, sans-IO: its trace hop, its whole-request deadline, a token
/// before each attempt, each attempt's timeout, the waits (backoff, an endpoint coming back), what
/// each attempt's end means (through ``EgressRequest`` and the service's ``UpstreamPool``), and the
/// answer the app gets, with its status and error code. The NIO egress handler and the simulator's
/// egress client both run it; a driver only carries out the actions (write an attempt, fetch a token,
/// arm a timer, relay or refuse) and reports what happened back as events.
///
/// Timers carry a generation: a timer fired for a generation that is no longer armed is ignored, so
/// a driver never has to cancel one. Every event after the exchange ended is ignored too.
///
/// States (``phase``):
/// - `.waitingForToken`: a token was asked for. → attempting (token), ended (token failed, deadline)
/// - `.attempting`: an attempt is out. → waiting (retry), ended (answer, give up, deadline, app left)
/// - `.waiting`: a backoff or the wait for an endpoint. → attempting, waitingForToken, ended
/// - `.ended`: answered or refused; nothing more happens.
public struct EgressExchange: Sendable {
    /// What the exchange needs to know about its service.
    public struct Settings: Sendable, Hashable {
        /// The service's name, for error messages.
        public var service: String
        /// The whole request's time, from arrival to the answer's head.
        public var deadline: Duration
        /// How long an attempt may wait for its answer's head (nil: the driver's transport enforces it).
        public var attemptTimeout: Duration?
        /// Whether each attempt carries a bearer token from the service's token source.
        public var usesToken: Bool

        public init(service: String, deadline: Duration, attemptTimeout: Duration? = nil, usesToken: Bool = false) {
            self.service = service
            self.deadline = deadline
            self.attemptTimeout = attemptTimeout
            self.usesToken = usesToken
        }
    }

    /// The exchange's timers.
    public enum Timer: Hashable, Sendable {
        /// The whole-request deadline.
        case deadline
        /// The current attempt's wait for its answer.
        case attempt
        /// A retry's backoff, or the wait for an endpoint to become available.
        case wait
    }

    /// What the driver reports.
    public enum Event: Sendable {
        case tokenReady(String)
        case tokenFailed(String)
        case timerFired(Timer, generation: UInt64)
        /// The current attempt's answer head arrived.
        case attemptHead(status: Int)
        /// The current attempt failed before an answer head; `requestSent` tells whether any of the
        /// request may have reached the upstream.
        case attemptFailed(TransportError.Kind?, requestSent: Bool)
        /// The app went away (closed its connection, broke the protocol) or the sidecar stops.
        case appLeft
    }

    /// An answer the sidecar gives itself, without an upstream's.
    public struct Refusal: Hashable, Sendable {
        public var status: Int
        public var code: String
        public var message: String
        /// Why no further attempt was made, when attempts ran out.
        public var reason: RetryDecision.Reason?
    }

    /// Why an attempt is given up: the driver closes its connection either way; what the attempt
    /// meant for its endpoint was already recorded in the pool (a timeout counts against it, an
    /// answer that is retried was judged at its head, an app that left releases it without a verdict).
    public enum AbandonReason: Hashable, Sendable {
        /// The attempt timeout passed before an answer's head.
        case attemptTimedOut
        /// The whole request's deadline passed while it was under way (a half-open probe cut off
        /// before its attempt timeout was released without a verdict).
        case deadlinePassed
        /// Its answer's head came and is retried (a retriable status): the rest is not read.
        case retryingAfterAnswer
        /// The app went away (or broke the protocol) while it was under way.
        case appLeft
    }

    /// What the driver does.
    public enum Action: Hashable, Sendable {
        /// Get a token from the service's token source, then report ``Event/tokenReady(_:)`` or ``Event/tokenFailed(_:)``.
        case fetchToken
        /// Send an attempt to `pick` (with the token as a bearer token), then report its head or failure.
        case send(UpstreamPool.Pick, token: String?)
        /// Arm `timer` to fire at `at`, reporting `generation`.
        case arm(Timer, at: MeshInstant, generation: UInt64)
        /// Drop the current attempt's connection: its answer, if it comes, is not used.
        case abandonAttempt(AbandonReason)
        /// The current attempt's answer is the app's: stream it. `gaveUp` says why a 5xx was not retried.
        case relay(status: Int, gaveUp: RetryDecision.Reason?)
        /// Answer the app with this error.
        case refuse(Refusal)
        /// A retry was decided (the backoff timer is armed by an ``arm(_:at:generation:)`` beside it).
        case retrying(after: Duration, requestNeverSent: Bool)
        /// What an attempt's end changed in the pool (for logs, metrics and coverage).
        case poolEvents([UpstreamPool.Event])
        /// The upstream refused this token (401): the token source should forget it.
        case tokenRejected(String)
    }

    public enum Phase: Hashable, Sendable {
        case waitingForToken, attempting, waiting, ended
    }

    public let settings: Settings
    public private(set) var phase = Phase.waiting
    /// The attempt loop (endpoint choice, retry decisions).
    public private(set) var request: EgressRequest
    /// The `traceparent` and `tracestate` every attempt carries: the app's trace, a span of the sidecar's own.
    public let upstreamTraceparent: String
    public let upstreamTracestate: String?
    /// When the request arrived.
    public let started: MeshInstant
    /// The token the current attempt carries.
    private var attemptToken: String?
    /// Fault points (``InertFaults`` outside the simulator).
    private let faults: any FaultInjector
    /// Buggify: an attempt's timeout is a tenth of the configured one, so answers race their
    /// timeouts (a slower network makes the same happen).
    public static let shortAttemptTimeout = FaultSite("http.exchange.short-attempt-timeout")
    private var nextGeneration: UInt64 = 0
    /// The generation armed for each timer.
    private var armed = PerTimer<UInt64?>(nil)

    /// A new exchange for a request with `method`, continuing the app's trace headers.
    public init(method: String, settings: Settings, traceparent: String?, tracestate: String?, now: MeshInstant, random: inout some RandomSource,
                faults: any FaultInjector = InertFaults.shared) {
        self.settings = settings
        self.faults = faults
        self.started = now
        request = EgressRequest(method: method, deadline: now + settings.deadline, usesToken: settings.usesToken)
        // ci/mutants: trace-not-continued (the next line)
        let (hop, _) = TracePropagation.nextHop(traceparent: traceparent, tracestate: tracestate, random: &random)
        upstreamTraceparent = hop.traceparent
        upstreamTracestate = hop.traceStateHeaderValue
    }

    /// Whether the exchange ended (answered, refused or abandoned).
    public var isOver: Bool { phase == .ended }

    /// The request arrived: arm its deadline and take the first step.
    public mutating func start(pool: inout UpstreamPool, now: MeshInstant, random: inout some RandomSource) -> [Action] {
        request.begin(pool: &pool, now: now)
        var actions: [Action] = []
        actions.reserveCapacity(4)
        // ci/mutants: deadline-not-armed (the next line)
        actions.append(arm(.deadline, at: request.deadline))
        advance(&actions, pool: &pool, now: now, random: &random)
        return actions
    }

    /// Takes what happened; returns what to do.
    public mutating func handle(_ event: Event, pool: inout UpstreamPool, now: MeshInstant, random: inout some RandomSource) -> [Action] {
        guard phase != .ended else { return [] }
        var actions: [Action] = []
        actions.reserveCapacity(4)  // one allocation, not a regrowth per appended action
        switch event {
        case .tokenReady(let token):
            guard phase == .waitingForToken else { return [] }
            request.tokenReady(token)
            advance(&actions, pool: &pool, now: now, random: &random)
        case .tokenFailed(let why):
            guard phase == .waitingForToken else { return [] }
            end(&actions, refusal: Refusal(status: 503, code: "token_unavailable", message: "no access token for \(settings.service): \(why)"))
        case .timerFired(let timer, let generation):
            guard armed[timer] == generation else { return [] }
            armed[timer] = nil
            switch timer {
            case .deadline:
                deadlinePassed(&actions, pool: &pool, now: now)
            case .attempt:
                guard phase == .attempting else { return [] }
                actions.append(.abandonAttempt(.attemptTimedOut))
                attemptFailed(.responseTimeout, requestSent: true, &actions, pool: &pool, now: now, random: &random)
            case .wait:
                guard phase == .waiting else { return [] }
                advance(&actions, pool: &pool, now: now, random: &random)
            }
        case .attemptHead(let status):
            guard phase == .attempting else { return [] }
            armed[.attempt] = nil
            let conclusion = request.responseHead(status: status, sentToken: attemptToken, pool: &pool, now: now, random: &random)
            record(conclusion, &actions)
            switch conclusion.next {
            case .retry(let delay, let neverSent):
                actions.append(.abandonAttempt(.retryingAfterAnswer))
                retry(after: delay, requestNeverSent: neverSent, &actions, now: now)
            case .giveUp(let reason, _):
                relay(status: status, gaveUp: reason, &actions)
            default:
                relay(status: status, gaveUp: nil, &actions)
            }
        case .attemptFailed(let kind, let requestSent):
            guard phase == .attempting else { return [] }
            armed[.attempt] = nil
            attemptFailed(kind, requestSent: requestSent, &actions, pool: &pool, now: now, random: &random)
        case .appLeft:
            // ci/mutants: app-left-not-released (the next line)
            request.cancel(pool: &pool, now: now)
            if phase == .attempting { actions.append(.abandonAttempt(.appLeft)) }
            phase = .ended
            armed = PerTimer(nil)
        }
        return actions
    }

    // MARK: Steps

    /// The next step as ``EgressRequest`` decides it: a token, an attempt, a wait, or the end.
    private mutating func advance(_ actions: inout [Action], pool: inout UpstreamPool, now: MeshInstant, random: inout some RandomSource) {
        switch request.nextAttempt(pool: &pool, now: now, random: &random) {
        case .needToken:
            phase = .waitingForToken
            actions.append(.fetchToken)
        case .send(let pick, let token):
            phase = .attempting
            attemptToken = token
            actions.append(.send(pick, token: token))
            if let timeout = settings.attemptTimeout {
                actions.append(arm(.attempt, at: now + (faults.fires(Self.shortAttemptTimeout) ? timeout / 10 : timeout)))
            }
        case .waitForEndpoint(let until):
            phase = .waiting
            actions.append(arm(.wait, at: until))
        case .noEndpoint:
            end(&actions, refusal: Refusal(status: 503, code: "no_healthy_endpoint", message: "every endpoint of \(settings.service) is ejected, open or gone"))
        case .giveUp:
            deadlinePassed(&actions, pool: &pool, now: now)
        case .retry, .answer:
            break  // only an attempt's end leads there
        }
    }

    private mutating func attemptFailed(_ kind: TransportError.Kind?, requestSent: Bool, _ actions: inout [Action], pool: inout UpstreamPool,
                                        now: MeshInstant, random: inout some RandomSource) {
        let conclusion = request.attemptFailed(kind, requestSent: requestSent, pool: &pool, now: now, random: &random)
        record(conclusion, &actions)
        switch conclusion.next {
        case .retry(let delay, let neverSent):
            retry(after: delay, requestNeverSent: neverSent, &actions, now: now)
        case .giveUp(let reason, _):
            let timedOut = kind == .responseTimeout || kind == nil
            let what = kind.map { TransportError($0).description } ?? "no answer"
            end(&actions, refusal: Refusal(
                status: timedOut ? 504 : 502, code: timedOut ? "upstream_timeout" : "upstream_unavailable",
                message: "\(settings.service) failed after \(request.attempts) attempt(s): \(what)", reason: reason))
        default:
            break
        }
    }

    /// The whole request ran out of time: the attempt under way is recorded as a timeout (a probe cut
    /// short is released, see ``EgressRequest/deadlinePassed(pool:now:attemptTimeout:)``) and dropped.
    private mutating func deadlinePassed(_ actions: inout [Action], pool: inout UpstreamPool, now: MeshInstant) {
        let attempting = phase == .attempting
        let conclusion = request.deadlinePassed(pool: &pool, now: now, attemptTimeout: settings.attemptTimeout)
        record(conclusion, &actions)
        if attempting { actions.append(.abandonAttempt(.deadlinePassed)) }
        end(&actions, refusal: Refusal(status: 504, code: "request_timeout", message: "\(settings.service) did not answer within \(settings.deadline)",
                                        reason: .noTimeLeft))
    }

    private mutating func retry(after delay: Duration, requestNeverSent: Bool, _ actions: inout [Action], now: MeshInstant) {
        phase = .waiting
        actions.append(.retrying(after: delay, requestNeverSent: requestNeverSent))
        actions.append(arm(.wait, at: now + delay))
    }

    private mutating func relay(status: Int, gaveUp: RetryDecision.Reason?, _ actions: inout [Action]) {
        actions.append(.relay(status: status, gaveUp: gaveUp))
        phase = .ended
        armed = PerTimer(nil)
    }

    private mutating func end(_ actions: inout [Action], refusal: Refusal) {
        actions.append(.refuse(refusal))
        phase = .ended
        armed = PerTimer(nil)
    }

    private func record(_ conclusion: EgressRequest.Conclusion, _ actions: inout [Action]) {
        if !conclusion.events.isEmpty { actions.append(.poolEvents(conclusion.events)) }
        if let rejected = conclusion.rejectedToken { actions.append(.tokenRejected(rejected)) }
    }

    private mutating func arm(_ timer: Timer, at: MeshInstant) -> Action {
        nextGeneration += 1
        armed[timer] = nextGeneration
        return .arm(timer, at: at, generation: nextGeneration)
    }
}
