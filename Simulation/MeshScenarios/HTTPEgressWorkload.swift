import HTTPSidecar
import HTTPSidecarEngines
import MeshCore
import MeshSimulator

/// Settings of the egress workload: apps that call upstream services through the sidecar's egress
/// decision code (``UpstreamPool``) over simulated connections.
public struct HTTPEgressConfig: Hashable, Sendable {
    public var concurrency = 4
    public var thinkTime: Duration = .milliseconds(5)
    public var attemptTimeout: Duration = .milliseconds(60)
    /// The sidecar's connect timeout (production's default unless the scenario sets `connect_timeout`).
    public var connectTimeout: Duration = EgressConfig().connectTimeout
    public var deadline: Duration = .milliseconds(600)
    /// Share of requests that are POSTs (never retried once they may have been sent).
    public var unsafeShare = 0.3
    public var policy: LoadBalancingPolicy = .peakEWMA
    public var serviceMin: Duration = .microseconds(300)
    public var serviceTailMean: Duration = .milliseconds(2)
    /// Discovery updates at random intervals in this range: an endpoint leaves the service (a pod
    /// scaled down or rolled) or every endpoint is listed again.
    public var discoveryChurn: ClosedRange<Duration>?
    /// Each upstream pod's ingress rate limit, keyed by the calling pod (the product's ``RateLimiter``).
    public var rateLimit: RateLimiter.Config?
    /// Client-credentials tokens from an `http-token-server` host (the product's ``TokenCache``).
    public var oauth: TokenCache.Config?
    /// Lifetime of the tokens the token server issues.
    public var tokenLifetime: Duration = .seconds(2)
    /// Share of requests whose app gives up and closes its connection at a random moment before the
    /// deadline (the sidecar must release the attempt under way: ``EgressRequest/cancel(pool:now:)``).
    public var appDisconnect = 0.0
    /// The sidecar's connections to upstreams are TLS: a close before the answer ends is reported
    /// as a TLS failure, as NIOSSL reports an unclean shutdown.
    public var upstreamTLS = false
    public init() {}
}

/// The egress workload's invariant names.
/// The HTTP checks made inline as the simulated app, sidecar and pods see traffic, as pure functions
/// of what was seen (each returns why the promise broke, or nil), so that each has a unit test with a
/// hand-made history that breaks it (`CheckerTests`).
enum HTTPEgressChecks {
    /// `http.right-response`: the answer names the request it answers.
    static func rightResponse(sent key: String, answered: String) -> String? {
        answered == key ? nil : "\(key) got the response for \(answered)"
    }

    /// `http.trace-survives`: the upstream saw the app's trace id with a span id of the sidecar's own.
    static func traceSurvives(sent: String, seen: String) -> String? {
        let s = sent.split(separator: "-"), t = seen.split(separator: "-")
        guard s.count == 4, t.count == 4, t[1] == s[1], t[2] != s[2] else { return "the app sent trace \(sent), the upstream saw \(seen)" }
        return nil
    }

    /// `http.token-valid`: a request arrived with a token the token server issued that has not expired.
    static func tokenValid(_ token: String, issued: [String: MeshInstant], now: MeshInstant) -> String? {
        guard let expires = issued[token] else { return token.isEmpty ? "no token" : "token \(token), which was never issued" }
        return now < expires ? nil : "token \(token), which is expired since \(expires)"
    }

    /// `http.no-duplicate-unsafe`: an unsafe request reached upstreams at most once (`arrivals` counts them).
    static func noDuplicateUnsafe(method: String, key: String, arrivals: Int) -> String? {
        arrivals <= 1 ? nil : "\(method) \(key) reached an upstream \(arrivals) times"
    }

    /// `http.no-traffic-to-removed`: an attempt went only to an endpoint discovery lists.
    static func noTrafficToRemoved(_ address: MeshAddress, listed: [MeshAddress]) -> String? {
        listed.contains(address) ? nil : "sent to \(address), which discovery no longer lists"
    }

    /// `http.pool-quiescent`: with no request running, no endpoint counts an attempt in flight or a
    /// taken half-open probe (read straight off the endpoint states).
    static func poolQuiescent(_ endpoints: [UpstreamPool.Endpoint]) -> String? {
        for e in endpoints {
            var stuck = e.inFlight != 0
            if case .halfOpen(let probes) = e.breaker.state, probes > 0 { stuck = true }
            if stuck { return "no request is running, yet \(e.address) has \(e.inFlight) in flight, breaker \(e.breaker.state)" }
        }
        return nil
    }

    static let invariants = [
        "http.no-duplicate-unsafe", "http.no-traffic-to-unavailable", "http.retry-budget",
        "http.right-response", "http.complete", "http.liveness", "http.trace-survives",
        "http.no-traffic-to-removed", "http.rate-limit-bound", "http.token-valid", "http.single-token-fetch",
        "http.pool-quiescent", "http.deadline", "http.exact-request",
    ]

    /// `http.exact-request`: what reaches an upstream carries none of the app's routing fields
    /// (`service_id`) or hop-by-hop fields (`Connection` and what it names), and `Host` once.
    static func exactRequest(field: (String) -> String?, hostCount: Int) -> String? {
        for name in ["service_id", "connection", "x-app-hop"] {
            if let value = field(name) { return "the app's \(name): \(value) reached the upstream" }
        }
        return hostCount == 1 ? nil : "\(hostCount) Host fields reached the upstream"
    }
}

/// Kernel-level record the upstreams, the token server and the checker share (it survives crashes).
final class HTTPLedger {
    var receivedUnsafe: [String: Int] = [:]
    /// Every token issued, with the virtual instant it expires.
    var issuedTokens: [String: MeshInstant] = [:]
}

/// The wire format between the simulated sidecar and the token server (requests to upstream pods are
/// HTTP/1.1: ``SimHTTP1``).
enum EgressMessage {
    /// A client-credentials token request, and its answer (status 200 with a token, or an error).
    case tokenRequest(id: UInt64)
    case tokenResponse(id: UInt64, status: Int, token: String, lifetimeNanos: Int64)

    func encode() -> [UInt8] {
        switch self {
        case .tokenRequest(let id): Array("T|\(id)".utf8)
        case .tokenResponse(let id, let status, let token, let lifetime): Array("K|\(id)|\(status)|\(token)|\(lifetime)".utf8)
        }
    }

    static func decode(_ bytes: [UInt8]) -> EgressMessage? {
        let f = String(decoding: bytes, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        if f.count == 2, f[0] == "T", let id = UInt64(f[1]) { return .tokenRequest(id: id) }
        if f.count == 5, f[0] == "K", let id = UInt64(f[1]), let status = Int(f[2]), let lifetime = Int64(f[4]) {
            return .tokenResponse(id: id, status: status, token: f[3], lifetimeNanos: lifetime)
        }
        return nil
    }
}

/// An upstream service pod speaking HTTP/1.1: it reads each request with the product's framing
/// scanner and answers after a service time, one request at a time per connection; buggify makes it
/// slow, return bursts of 503, or send a malformed answer (which the sidecar must refuse, not relay).
final class HTTPUpstream: SimProcess {
    static let slow = FaultSite("http.upstream.slow")
    static let errorBurst = FaultSite("http.upstream.error-burst")
    static let malformed = FaultSite("http.upstream.malformed")
    /// The pod reads and processes the request, then the connection drops without an answer: on TLS
    /// a close without close_notify (NIOSSL's unclean shutdown), which says nothing about whether
    /// the request was read.
    static let uncleanClose = FaultSite("http.upstream.unclean-close")
    /// The pod sends its answer but the last byte, then goes quiet with the connection open: only
    /// the sidecar's response timeout (which bounds every pause in an answer) ends the exchange.
    static let stall = FaultSite("http.upstream.stall")
    static let port = 8080

    private let config: HTTPEgressConfig
    private let ledger: HTTPLedger
    private let faults: any FaultInjector
    /// Per open connection: its requests, read with the product's scanner.
    private var open: [StreamID: SimHTTP1.RequestReader] = [:]
    private var pending: [UInt64: (StreamID, [UInt8])] = [:]
    private var burstLeft = 0
    /// This pod's ingress rate limiter (a restarted pod starts with a fresh one, as a real one does).
    private var limiter: RateLimiter?
    /// Admission times per calling pod since this pod started, for the rate-limit bound.
    private var admitted: [String: [MeshInstant]] = [:]

    init(config: HTTPEgressConfig, ledger: HTTPLedger, faults: any FaultInjector) {
        self.config = config
        self.ledger = ledger
        self.faults = faults
    }

    func start(on host: SimHost) {
        host.listen(port: Self.port)
        limiter = config.rateLimit.map { RateLimiter($0) }
    }

    /// Runs the product's rate limiter for `caller`; checks what it admitted against the bound (see
    /// ``RateLimitBound``), from the admission times alone.
    private func admit(_ caller: String, _ host: SimHost) -> Bool {
        guard var limiter, let limit = config.rateLimit else { return true }
        let allowed = limiter.admit(caller, now: host.now).allowed
        self.limiter = limiter
        guard allowed else {
            host.simulation.coverage.hit("http.rate-limited")
            return false
        }
        var times = admitted[caller, default: []]
        times.append(host.now)
        times.removeAll { host.now - $0 > .seconds(1) + .seconds(Double(limit.burst) / limit.rate) }
        admitted[caller] = times
        if let excess = RateLimitBound.violation(times, rate: limit.rate, burst: limit.burst) {
            host.simulation.expect(false, "http.rate-limit-bound", "\(host.name) admitted \(excess) from \(caller)", host: host.id)
        }
        return true
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .accepted(let s, _, _): open[s] = SimHTTP1.RequestReader()
        case .closed(let s), .reset(let s):
            open[s] = nil
            host.close(s)
        case .data(let s, let bytes):
            let (requests, invalid) = SimHTTP1.serve(bytes, on: s, &open)
            for reader in requests {
                let hosts = reader.head.fields.filter { String(decoding: reader.headBytes[$0.name], as: UTF8.self).lowercased() == "host" }.count
                let why = HTTPEgressChecks.exactRequest(field: reader.field, hostCount: hosts)
                host.simulation.expect(why == nil, "http.exact-request", "\(reader.field("x-request-key") ?? "?"): \(why ?? "")", host: host.id)
                let token = reader.field("authorization").map { String($0.dropFirst("Bearer ".count)) } ?? ""
                answer(s, method: "\(reader.head.method.name)", key: reader.field("x-request-key") ?? "", trace: reader.field("traceparent") ?? "",
                       token: token, host)
            }
            if invalid != nil { host.close(s) }
        default:
            break
        }
    }

    private func answer(_ s: StreamID, method: String, key: String, trace: String, token: String, _ host: SimHost) {
        let echo = [("x-request-key", key), ("traceparent", trace)]
        if config.oauth != nil {
            let why = HTTPEgressChecks.tokenValid(token, issued: ledger.issuedTokens, now: host.now)
            host.simulation.expect(why == nil, "http.token-valid", "\(key) arrived with \(why ?? "")", host: host.id)
            if why != nil { return host.write(s, SimHTTP1.response(status: 401, fields: echo)) }
        }
        let caller = String(key.split(separator: "/").first ?? "")
        if !admit(caller, host) { return host.write(s, SimHTTP1.response(status: 429, fields: echo)) }
        if !RetryPolicy.idempotentMethods.contains(method) {
            ledger.receivedUnsafe[key, default: 0] += 1
            let why = HTTPEgressChecks.noDuplicateUnsafe(method: method, key: key, arrivals: ledger.receivedUnsafe[key]!)
            host.simulation.expect(why == nil, "http.no-duplicate-unsafe", why ?? "", host: host.id)
        }
        if faults.fires(Self.uncleanClose) {
            open[s] = nil
            return host.close(s)
        }
        // A burst is a fault: it ends with the heal like every other.
        if (faults as? SimFaultInjector)?.enableProbability == nil { burstLeft = 0 }
        if burstLeft == 0 && faults.fires(Self.errorBurst) { burstLeft = 20 }
        let status: Int
        if burstLeft > 0 { burstLeft -= 1; status = 503 } else { status = 200 }
        var service = Double(config.serviceMin.nanoseconds) + host.random.nextExponential(mean: Double(config.serviceTailMean.nanoseconds))
        if faults.fires(Self.slow) { service *= 40 }
        let t = host.setTimer(after: .nanoseconds(Int64(service)))
        guard faults.fires(Self.malformed) else {
            let answer = SimHTTP1.response(status: status, fields: echo, body: "ok")
            pending[t.rawValue] = (s, faults.fires(Self.stall) ? Array(answer.dropLast()) : answer)
            return
        }
        // Two framings at once, the chunked one ending early, and (a moment later) an answer hidden in
        // the length-framed body: a relay that took the chunked framing would read it as the answer to
        // its next request on this connection (http.right-response). The scanner refuses the whole.
        let hidden = "HTTP/1.1 200 OK\r\nx-request-key: smuggled\r\ntraceparent: \(trace)\r\ncontent-length: 0\r\n\r\n"
        let head = "HTTP/1.1 200 OK\r\nx-request-key: \(key)\r\ntraceparent: \(trace)\r\ncontent-length: \(5 + hidden.utf8.count)\r\n"
            + "transfer-encoding: chunked\r\n\r\n0\r\n\r\n"
        pending[t.rawValue] = (s, Array(head.utf8))
        let later = host.setTimer(after: .nanoseconds(Int64(service)) + .milliseconds(1))
        pending[later.rawValue] = (s, Array(hidden.utf8))
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let (s, bytes) = pending.removeValue(forKey: token.rawValue), open[s] != nil else { return }
        host.write(s, bytes)
    }
}


/// The token endpoint: issues client-credentials tokens with a fixed lifetime after a short service
/// time; buggify makes it fail some requests.
final class HTTPTokenServer: SimProcess {
    static let failure = FaultSite("http.token-server.error")
    static let port = 8090

    private let config: HTTPEgressConfig
    private let ledger: HTTPLedger
    private let faults: any FaultInjector
    private var pending: [UInt64: (StreamID, UInt64)] = [:]
    private var issued = 0

    init(config: HTTPEgressConfig, ledger: HTTPLedger, faults: any FaultInjector) {
        self.config = config
        self.ledger = ledger
        self.faults = faults
    }

    func start(on host: SimHost) { host.listen(port: Self.port) }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .closed(let s), .reset(let s):
            host.close(s)
        case .data(let s, let bytes):
            guard case .tokenRequest(let id)? = EgressMessage.decode(bytes) else { return }
            let t = host.setTimer(after: .microseconds(500 + Int64(host.random.nextUnit() * 2000)))
            pending[t.rawValue] = (s, id)
        default:
            break
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let (s, id) = pending.removeValue(forKey: token.rawValue) else { return }
        if faults.fires(Self.failure) {
            return host.write(s, EgressMessage.tokenResponse(id: id, status: 500, token: "", lifetimeNanos: 0).encode())
        }
        issued += 1
        let value = "\(host.name).\(host.random.next() & 0xffff).\(issued)"
        ledger.issuedTokens[value] = host.now + config.tokenLifetime
        host.write(s, EgressMessage.tokenResponse(id: id, status: 200, token: value, lifetimeNanos: config.tokenLifetime.nanoseconds).encode())
    }
}

/// The rate-limit promise, checked from admission times alone: over any span between two admitted
/// requests of one caller, at most `burst + rate × span` requests were admitted (the GCRA bound; a
/// window anchored at an admission is the tightest one).
enum RateLimitBound {
    /// Checks the windows that end at the newest admission (call after each); a description of the
    /// excess, or nil.
    static func violation(_ times: [MeshInstant], rate: Double, burst: Int) -> String? {
        guard let last = times.last else { return nil }
        for (i, first) in times.enumerated() {
            let count = times.count - i
            let span = (last - first).seconds
            let bound = Double(burst) + (rate * span + 1e-9).rounded(.down)
            if Double(count) > bound {
                return "\(count) requests within \(last - first); the bound is \(Int(bound)) (burst \(burst) + \(rate)/s)"
            }
        }
        return nil
    }
}

/// The retry-budget promise, checked from when requests started and retries went: over the last
/// window, retries at most `ratio` of the requests started in it plus `minPerSecond × window`. The
/// budget forgets in slots of a tenth of the window, so the retries counted are those of the window
/// less one slot (what the budget certainly still remembers).
enum RetryBudgetBound {
    static func violation(retries: [MeshInstant], originals: [MeshInstant], now: MeshInstant, ratio: Double, minPerSecond: Double,
                          window: Duration) -> String? {
        let remembered = window - window / 10
        let counted = retries.filter { now - $0 < remembered }.count
        let started = originals.filter { now - $0 <= window }.count
        let bound = ratio * Double(started) + minPerSecond * window.seconds
        guard Double(counted) > bound + 1e-9 else { return nil }
        return "\(counted) retries within \(remembered) for \(started) requests within \(window); the budget allows \(Int(bound))"
    }
}
