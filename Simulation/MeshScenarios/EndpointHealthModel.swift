import HTTPSidecar
import MeshCore

/// What egress promises about endpoint health, as a reference model written from the specification
/// and fed only with what the simulated app saw (where each attempt went, how it ended, what
/// discovery listed). It shares no code with the product's `CircuitBreaker`, `OutlierDetector` or
/// `UpstreamPool`, so a bug in those makes the product send where the model says it must not.
///
/// The promise (`http.no-traffic-to-unavailable`): no attempt goes to an endpoint whose breaker is
/// open, beyond the half-open probes, or that is ejected.
/// - Breaker: `failuresToOpen` failures in a row open it for `openFor`; then up to `probes` attempts
///   go through (half-open); an answer while half-open closes it (success) or opens it again
///   (failure); answers while open change nothing; a cancelled probe frees its slot.
/// - Ejection: `serverErrors` 5xx or `gatewayErrors` gateway failures in a row (each kind counted on
///   its own, both reset by a success) eject the endpoint for `baseEjection × n` (n-th ejection,
///   capped at `maxEjection`), unless that would eject more than `maxEjectedPercent` of the listed
///   endpoints (never all); an ejection resets both counts.
/// - Discovery: endpoints that stay keep their state; one listed again starts afresh.
struct EndpointHealthModel {
    struct Config {
        var failuresToOpen: Int
        var openFor: Duration
        var probes: Int
        var serverErrors: Int
        var gatewayErrors: Int
        var baseEjection: Duration
        var maxEjection: Duration
        var maxEjectedPercent: Int

        init(_ pool: UpstreamPool.Config) {
            failuresToOpen = pool.breaker.consecutiveFailures
            openFor = pool.breaker.openDuration
            probes = pool.breaker.halfOpenProbes
            serverErrors = pool.outlier.consecutiveServerErrors
            gatewayErrors = pool.outlier.consecutiveGatewayErrors
            baseEjection = pool.outlier.baseEjectionTime
            maxEjection = pool.outlier.maxEjectionTime
            maxEjectedPercent = pool.outlier.maxEjectedPercent
        }
    }

    /// How an attempt ended, as the app saw it.
    enum Outcome { case success, serverError, gatewayError }

    private enum Breaker {
        case closed(failures: Int)
        case open(until: MeshInstant)
        case halfOpen(probes: Int)
    }

    private struct Endpoint {
        var address: MeshAddress
        var breaker = Breaker.closed(failures: 0)
        var serverErrors = 0
        var gatewayErrors = 0
        var ejectedUntil: MeshInstant?
        var ejections = 0
    }

    let config: Config
    private var endpoints: [Endpoint]

    init(_ config: Config, listed: [MeshAddress]) {
        self.config = config
        self.endpoints = listed.map { Endpoint(address: $0) }
    }

    /// Discovery now lists `addresses`.
    mutating func listed(_ addresses: [MeshAddress]) {
        endpoints = addresses.map { a in endpoints.first { $0.address == a } ?? Endpoint(address: a) }
    }

    /// An attempt left for `address` at `now`: why it must not have (nil if it may), and whether it
    /// is a half-open probe.
    mutating func sent(to address: MeshAddress, now: MeshInstant) -> (violation: String?, probe: Bool) {
        guard let i = endpoints.firstIndex(where: { $0.address == address }) else { return (nil, false) }
        if let until = endpoints[i].ejectedUntil, now < until { return ("\(address) is ejected until \(until)", false) }
        switch endpoints[i].breaker {
        case .closed:
            return (nil, false)
        case .open(let until):
            guard now >= until else { return ("\(address)'s breaker is open until \(until)", false) }
            endpoints[i].breaker = .halfOpen(probes: 1)
            return (nil, true)
        case .halfOpen(let n):
            guard n < config.probes else { return ("\(address) is half-open with \(n) probe(s) already out", false) }
            endpoints[i].breaker = .halfOpen(probes: n + 1)
            return (nil, true)
        }
    }

    /// An attempt on `address` ended with `outcome` (its answer's head, a failure, or the deadline).
    mutating func ended(_ address: MeshAddress, _ outcome: Outcome, now: MeshInstant) {
        guard let i = endpoints.firstIndex(where: { $0.address == address }) else { return }
        let failed = outcome != .success
        switch endpoints[i].breaker {
        case .closed(let failures):
            if !failed {
                endpoints[i].breaker = .closed(failures: 0)
            } else if failures + 1 >= config.failuresToOpen {
                endpoints[i].breaker = .open(until: now + config.openFor)
            } else {
                endpoints[i].breaker = .closed(failures: failures + 1)
            }
        case .halfOpen:
            endpoints[i].breaker = failed ? .open(until: now + config.openFor) : .closed(failures: 0)
        case .open:
            break
        }
        let trips: Bool
        switch outcome {
        case .success:
            endpoints[i].serverErrors = 0
            endpoints[i].gatewayErrors = 0
            trips = false
        case .serverError:
            endpoints[i].serverErrors += 1
            trips = endpoints[i].serverErrors >= config.serverErrors
        case .gatewayError:
            endpoints[i].gatewayErrors += 1
            trips = endpoints[i].gatewayErrors >= config.gatewayErrors
        }
        guard trips else { return }
        let ejectedNow = endpoints.filter { $0.ejectedUntil.map { now < $0 } ?? false }.count
        let allowed = max(0, min(endpoints.count - 1, endpoints.count * config.maxEjectedPercent / 100))
        guard ejectedNow < allowed else { return }
        endpoints[i].ejections += 1
        let length = min(config.maxEjection.nanoseconds, config.baseEjection.nanoseconds &* Int64(endpoints[i].ejections))
        endpoints[i].ejectedUntil = now + .nanoseconds(length)
        endpoints[i].serverErrors = 0
        endpoints[i].gatewayErrors = 0
    }

    /// An attempt on `address` was cancelled (its app left, or a probe was cut off by its request's
    /// deadline before its attempt timeout): a probe's slot is free again.
    mutating func released(_ address: MeshAddress, probe: Bool) {
        guard probe, let i = endpoints.firstIndex(where: { $0.address == address }),
              case .halfOpen(let n) = endpoints[i].breaker else { return }
        endpoints[i].breaker = .halfOpen(probes: max(0, n - 1))
    }
}
