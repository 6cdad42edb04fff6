import MeshCore

/// How an upstream request ended, as the resilience machines see it.
public enum UpstreamOutcome: Hashable, Sendable {
    /// A response below 500 (or a 5xx the route does not count).
    case success
    /// A 500-599 response from the upstream itself.
    case serverError(status: Int)
    /// The upstream could not be reached or did not answer: connect failure, reset, timeout, 502/503/504
    /// produced by the transport.
    case gatewayError(TransportError.Kind?)

    public var isFailure: Bool { self != .success }

    /// How an upstream's answer counts: 500-599 from the upstream itself is a server error.
    public init(responseStatus: Int) {
        self = responseStatus >= 500 ? .serverError(status: responseStatus) : .success
    }
}

/// Outlier ejection for one endpoint (Envoy-style consecutive errors), sans-IO.
///
/// `consecutiveServerErrors` 5xx or `consecutiveGatewayErrors` gateway failures in a row eject the
/// endpoint for `baseEjectionTime × n`, where n counts its ejections (so a flapping endpoint stays out
/// longer). The pool decides whether an ejection may happen (`maxEjectedPercent`).
public struct OutlierDetector: Hashable, Sendable {
    public struct Config: Hashable, Sendable {
        public var consecutiveServerErrors = 5
        public var consecutiveGatewayErrors = 3
        public var baseEjectionTime: Duration = .seconds(10)
        public var maxEjectionTime: Duration = .seconds(300)
        /// At most this share of a pool is ejected at once (at least one endpoint always stays).
        public var maxEjectedPercent = 50
        public init() {}
    }

    public let config: Config
    public private(set) var serverErrors = 0
    public private(set) var gatewayErrors = 0
    public private(set) var ejectedUntil: MeshInstant?
    public private(set) var ejections = 0

    public init(_ config: Config = Config()) { self.config = config }

    public func isEjected(now: MeshInstant) -> Bool { ejectedUntil.map { now < $0 } ?? false }

    /// Records an outcome; returns `true` when the endpoint should now be ejected (the pool applies
    /// the percentage limit and calls ``eject(now:)``).
    public mutating func record(_ outcome: UpstreamOutcome) -> Bool {
        switch outcome {
        case .success:
            serverErrors = 0
            gatewayErrors = 0
            return false
        case .serverError:
            serverErrors += 1
            return serverErrors >= config.consecutiveServerErrors
        case .gatewayError:
            gatewayErrors += 1
            return gatewayErrors >= config.consecutiveGatewayErrors
        }
    }

    /// Ejects the endpoint; returns until when.
    @discardableResult
    public mutating func eject(now: MeshInstant) -> MeshInstant {
        ejections += 1
        let base = config.baseEjectionTime.nanoseconds
        // ci/mutants: ejection-no-backoff (the next line)
        let time = min(config.maxEjectionTime.nanoseconds, base &* Int64(ejections))
        let until = now + .nanoseconds(time)
        ejectedUntil = until
        serverErrors = 0
        gatewayErrors = 0
        return until
    }
}
