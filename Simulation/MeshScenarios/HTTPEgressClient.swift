import HTTPSidecar
import MeshCore
import MeshSimulator

/// An app and its sidecar's egress path on one simulated pod: requests go to upstream pods chosen by
/// the product's ``UpstreamPool`` (load balancing, breakers, ejection, retry budget and safety); this
/// driver only moves bytes and timers, as the NIO driver does in production.
final class HTTPEgressClient: SimProcess {
    private struct Request {
        var historyId: Int
        var key: String
        var method: String
        var deadline: MeshInstant
        var slot: Int
        /// The product's attempt loop for this request (token, endpoint, retry, answer).
        var attempts: EgressRequest
        /// The app's trace context for this request; every attempt continues it with a new span.
        var traceparent: String = ""
        /// The bearer token the sidecar injects (empty without OAuth).
        var token = ""
        var current: Attempt?
        var timers: [TimerToken] = []
    }
    private struct Attempt {
        var wire: UInt64
        var endpoint: MeshAddress
        var sentAt: MeshInstant
        var written = false
        /// Whether the reference model counted this attempt as a half-open probe.
        var modelProbe = false
    }
    private enum Purpose { case think(Int), attempt(Int, UInt64), backoff(Int), deadline(Int), connect(HostID, StreamID), discovery, tokenTimeout(UInt64), appLeaves(Int) }
    private struct Connection {
        var stream: StreamID
        var open = false
        var queued: [(request: Int, wire: UInt64, bytes: [UInt8])] = []
    }

    private let config: HTTPEgressConfig
    private let upstreams: [(host: HostID, address: MeshAddress)]
    private let stopAt: MeshInstant
    /// Faults stop here; so does discovery churn (endpoints still come back).
    private let calmAt: MeshInstant
    private var pool: UpstreamPool
    private var requests: [Int: Request] = [:]
    private var byWire: [UInt64: Int] = [:]
    private var timers: [UInt64: Purpose] = [:]
    private var connections: [HostID: Connection] = [:]
    private var hostOfStream: [StreamID: HostID] = [:]
    private var nextWire: UInt64 = 0
    private var issued = 0
    private(set) var originals = 0
    private(set) var retries = 0
    /// When this app's requests started and when its retries went, over the last budget window
    /// (the retry-budget check's own record).
    private var originalTimes: [MeshInstant] = []
    private var retryTimes: [MeshInstant] = []
    private var startedAt: MeshInstant = .zero
    /// The endpoints discovery lists now (all of them unless churn removed one).
    private var listed: [MeshAddress]
    /// The product's token cache, and the one fetch it asked for (its wire id and stream).
    private var tokens: TokenBroker<Int>?
    private var tokenFetch: (wire: UInt64, stream: StreamID, sent: Bool)?
    private let tokenServer: HostID?
    /// The endpoint-health promise as an independent model, fed with what this app saw.
    private var model: EndpointHealthModel

    init(config: HTTPEgressConfig, upstreams: [(host: HostID, address: MeshAddress)], poolConfig: UpstreamPool.Config, stopAt: MeshInstant,
         calmAt: MeshInstant, tokenServer: HostID? = nil) {
        self.config = config
        self.upstreams = upstreams
        self.stopAt = stopAt
        self.calmAt = calmAt
        self.pool = UpstreamPool(poolConfig, endpoints: upstreams.map(\.address))
        self.listed = upstreams.map(\.address)
        self.tokens = config.oauth.map { TokenBroker($0) }
        self.tokenServer = tokenServer
        self.model = EndpointHealthModel(.init(poolConfig), listed: upstreams.map(\.address))
    }

    var retryBudget: RetryPolicy { pool.config.retry }

    func start(on host: SimHost) {
        nextWire = (host.random.next() & 0xffff_ffff) << 32
        startedAt = host.now
        for slot in 0..<config.concurrency { think(slot, host) }
        scheduleDiscovery(host)
    }

    // MARK: Discovery churn

    private func scheduleDiscovery(_ host: SimHost) {
        guard let range = config.discoveryChurn else { return }
        let span = Double((range.upperBound - range.lowerBound).nanoseconds)
        let delay = range.lowerBound + .nanoseconds(Int64(span * host.random.nextUnit()))
        timers[host.setTimer(after: delay).rawValue] = .discovery
    }

    /// A discovery update: one endpoint leaves (a pod scaled down), or every endpoint is back.
    private func discoveryChanged(_ host: SimHost) {
        let all = upstreams.map(\.address)
        if host.now < calmAt && listed.count > 1 && (listed.count == all.count || host.random.chance(0.5)) {
            listed.remove(at: Int(host.random.next() % UInt64(listed.count)))
            host.simulation.coverage.hit("http.endpoint-removed")
        } else if listed.count < all.count {
            listed = all
            host.simulation.coverage.hit("http.endpoint-restored")
        }
        pool.setEndpoints(listed, now: host.now)
        model.listed(listed)
        scheduleDiscovery(host)
    }

    // MARK: Tokens

    /// The next step of request `id`, as the product's ``EgressRequest`` decides it.
    private func attempt(_ id: Int, _ host: SimHost) {
        guard var r = requests[id] else { return }
        let next = r.attempts.nextAttempt(pool: &pool, now: host.now, random: &host.random)
        requests[id] = r
        switch next {
        case .needToken:
            token(for: id, host)
        case .send(let pick, let token):
            send(id, pick, token: token ?? "", host)
        case .waitForEndpoint(let until):
            host.simulation.coverage.hit("http.wait-for-endpoint")
            let t = host.setTimer(after: until - host.now)
            timers[t.rawValue] = .backoff(id)
            requests[id]!.timers.append(t)
        case .noEndpoint:
            host.simulation.coverage.hit("http.no-endpoint")
            finish(id, .failed("503 no healthy endpoint"), host)
        case .retry, .answer, .giveUp:
            break  // only an attempt's end leads there
        }
    }

    /// Asks the product's token cache (before each attempt: a retry late in a long deadline must not
    /// carry a token that expired meanwhile); the attempt proceeds, waits for the one fetch, or fails.
    private func token(for id: Int, _ host: SimHost) {
        guard var broker = tokens else { return }
        let decision = broker.request(now: host.now, waiter: id)
        tokens = broker
        switch decision {
        case .use(let token):
            requests[id]?.attempts.tokenReady(token)
            attempt(id, host)
        case .useAndRefresh(let token):
            host.simulation.coverage.hit("http.token-refresh-background")
            requests[id]?.attempts.tokenReady(token)
            fetchToken(host)
            attempt(id, host)
        case .fetchAndWait:
            fetchToken(host)
        case .wait:
            host.simulation.coverage.hit("http.token-waiters")
        case .fail:
            host.simulation.coverage.hit("http.token-fail-fast")
            finish(id, .failed("503 token_unavailable"), host)
        }
    }

    private func fetchToken(_ host: SimHost) {
        guard let server = tokenServer else { return }
        host.simulation.expect(tokenFetch == nil, "http.single-token-fetch", "\(host.name) started a token fetch while one was running", host: host.id)
        nextWire += 1
        let s = host.connect(to: server, port: HTTPTokenServer.port)
        tokenFetch = (nextWire, s, false)
        timers[host.setTimer(after: config.attemptTimeout * 4).rawValue] = .tokenTimeout(nextWire)
    }

    /// The fetch ended: the cache learns the result, and every waiting request goes on or fails.
    private func tokenFetched(_ token: String?, lifetime: Duration?, _ host: SimHost) {
        guard let fetch = tokenFetch, var broker = tokens else { return }
        tokenFetch = nil
        host.close(fetch.stream)
        let waiting: [Int]
        if let token {
            host.simulation.coverage.hit("http.token-fetched")
            waiting = broker.fetched(token, expiresIn: lifetime, now: host.now)
        } else {
            host.simulation.coverage.hit("http.token-fetch-failed")
            waiting = broker.fetchFailed("token endpoint failed", now: host.now)
        }
        tokens = broker
        for id in waiting where requests[id] != nil {
            if let token {
                requests[id]?.attempts.tokenReady(token)
                attempt(id, host)
            } else {
                finish(id, .failed("503 token_unavailable"), host)
            }
        }
    }

    private func tokenStream(_ event: NetEvent, _ host: SimHost) -> Bool {
        guard let fetch = tokenFetch else { return false }
        switch event {
        case .connected(let s) where s == fetch.stream:
            host.write(s, EgressMessage.tokenRequest(id: fetch.wire).encode())
            tokenFetch?.sent = true
        case .connectFailed(let s, _) where s == fetch.stream, .reset(let s) where s == fetch.stream, .closed(let s) where s == fetch.stream:
            tokenFetched(nil, lifetime: nil, host)
        case .data(let s, let bytes) where s == fetch.stream:
            guard case .tokenResponse(let wire, let status, let token, let lifetime)? = EgressMessage.decode(bytes), wire == fetch.wire else { return true }
            tokenFetched(status == 200 ? token : nil, lifetime: .nanoseconds(lifetime), host)
        default:
            return false
        }
        return true
    }

    private func think(_ slot: Int, _ host: SimHost, afterFailure: Bool = false) {
        // An app that just got an error waits a little longer, as real clients do.
        var pause = Int64(Double(config.thinkTime.nanoseconds) * host.random.nextUnit())
        if afterFailure { pause += 20_000_000 }
        timers[host.setTimer(after: .nanoseconds(pause)).rawValue] = .think(slot)
    }

    private func issue(_ slot: Int, _ host: SimHost) {
        guard host.now < stopAt else { return }
        let method = host.random.chance(config.unsafeShare) ? "POST" : "GET"
        let key = "\(host.name)/\(host.incarnation)-\(issued)"  // unique across restarts
        issued += 1
        originals += 1
        originalTimes.append(host.now)
        let deadline = host.now + config.deadline
        let id = host.simulation.history.invoke(process: host.name, "http", "\(method) \(key)", at: host.now, deadline: deadline)
        var r = Request(historyId: id, key: key, method: method, deadline: deadline, slot: slot,
                        attempts: EgressRequest(method: method, deadline: deadline, usesToken: tokens != nil))
        r.traceparent = TracePropagation.nextHop(traceparent: nil, tracestate: nil, random: &host.random).context.traceParentHeaderValue
        let t = host.setTimer(after: config.deadline)
        timers[t.rawValue] = .deadline(id)
        r.timers.append(t)
        if host.random.chance(config.appDisconnect) {
            let leave = host.setTimer(after: .nanoseconds(Int64(Double(config.deadline.nanoseconds) * host.random.nextUnit())))
            timers[leave.rawValue] = .appLeaves(id)
            r.timers.append(leave)
        }
        r.attempts.begin(pool: &pool, now: host.now)
        requests[id] = r
        attempt(id, host)
    }

    private func send(_ id: Int, _ pick: UpstreamPool.Pick, token: String, _ host: SimHost) {
        guard var r = requests[id] else { return }
        let sim = host.simulation
        r.token = token
        // The product's decision goes into the log and its hash: which endpoint, probe or not.
        host.log("attempt", Int64(pool.index(of: pick.address) ?? -1), pick.isProbe ? 1 : 0)
        let (violation, probe) = model.sent(to: pick.address, now: host.now)
        sim.expect(violation == nil, "http.no-traffic-to-unavailable", "\(r.key) sent to \(pick.address): \(violation ?? "")", host: host.id)
        sim.expect(listed.contains(pick.address), "http.no-traffic-to-removed",
                   "\(r.key) sent to \(pick.address), which discovery no longer lists", host: host.id)
        sim.coverage.sometimes(pick.isProbe, "http.breaker-probe")
        nextWire += 1
        let wire = nextWire
        r.current = Attempt(wire: wire, endpoint: pick.address, sentAt: host.now, modelProbe: probe)
        byWire[wire] = id
        let t = host.setTimer(after: config.attemptTimeout)
        timers[t.rawValue] = .attempt(id, wire)
        r.timers.append(t)
        requests[id] = r
        let upstream = upstreams.first { $0.address == pick.address }!.host
        // The sidecar hop: same trace, new span (the product's propagation code).
        let hop = TracePropagation.nextHop(traceparent: r.traceparent, tracestate: nil, random: &host.random).context.traceParentHeaderValue
        let bytes = EgressMessage.request(id: wire, method: r.method, key: r.key, probe: pick.isProbe, traceparent: hop, token: r.token).encode()
        if var c = connections[upstream] {
            if c.open {
                host.write(c.stream, bytes)
                requests[id]!.current!.written = true
            } else {
                c.queued.append((id, wire, bytes))
            }
            connections[upstream] = c
        } else {
            let s = host.connect(to: upstream, port: HTTPUpstream.port)
            connections[upstream] = Connection(stream: s, queued: [(id, wire, bytes)])
            hostOfStream[s] = upstream
            timers[host.setTimer(after: config.attemptTimeout).rawValue] = .connect(upstream, s)
        }
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        if tokenStream(event, host) { return }
        switch event {
        case .connected(let s):
            guard let u = hostOfStream[s], var c = connections[u], c.stream == s else { return }
            c.open = true
            for q in c.queued where requests[q.request]?.current?.wire == q.wire {
                host.write(s, q.bytes)
                requests[q.request]!.current!.written = true
            }
            c.queued.removeAll()
            connections[u] = c
        case .connectFailed(let s, let kind):
            lost(s, .gatewayError(kind), host)
        case .reset(let s):
            lost(s, .gatewayError(.reset), host)
        case .closed(let s):
            lost(s, .gatewayError(.closed), host)
            host.close(s)
        case .data(_, let bytes):
            guard case .response(let wire, let status, let key, let trace)? = EgressMessage.decode(bytes) else { return }
            guard let id = byWire.removeValue(forKey: wire), let r = requests[id], let a = r.current, a.wire == wire else {
                host.simulation.coverage.hit("http.late-response")
                return
            }
            host.simulation.expect(key == r.key, "http.right-response", "\(r.key) got the response for \(key)", host: host.id)
            // traceparent = 00-<trace id>-<span id>-<flags>: the trace id must survive the hop, the span must be new.
            let sent = r.traceparent.split(separator: "-"), seen = trace.split(separator: "-")
            host.simulation.expect(seen.count == 4 && seen[1] == sent[1] && seen[2] != sent[2], "http.trace-survives",
                                   "\(r.key) sent trace \(r.traceparent), the upstream saw \(trace)", host: host.id)
            if !listed.contains(a.endpoint) { host.simulation.coverage.hit("http.response-from-removed") }
            ended(id, .head(status), host)
        case .datagram, .accepted:
            break
        }
    }

    private func lost(_ stream: StreamID, _ outcome: UpstreamOutcome, _ host: SimHost) {
        guard let u = hostOfStream.removeValue(forKey: stream), let c = connections[u], c.stream == stream else { return }
        connections[u] = nil
        // Every attempt on this upstream whose current connection this was.
        let affected = requests.keys.sorted().filter { id in
            guard let a = requests[id]?.current else { return false }
            return upstreams.first { $0.address == a.endpoint }?.host == u
        }
        for id in affected {
            let sent = requests[id]!.current!.written
            if case .gatewayError(.connectRefused?) = outcome { host.simulation.coverage.hit("http.connect-refused") }
            if case .gatewayError(let kind) = outcome { ended(id, .failed(kind, sent: sent), host) }
        }
    }

    private enum AttemptEnd {
        case head(Int)
        case failed(TransportError.Kind?, sent: Bool)
    }

    /// The current attempt of request `id` ended; the product's ``EgressRequest`` records it once and
    /// decides: answer, retry, or give up.
    private func ended(_ id: Int, _ end: AttemptEnd, _ host: SimHost) {
        guard var r = requests[id], let a = r.current else { return }
        r.current = nil
        byWire[a.wire] = nil
        let conclusion: EgressRequest.Conclusion
        switch end {
        case .head(let status): model.ended(a.endpoint, status >= 500 ? .serverError : .success, now: host.now)
        case .failed: model.ended(a.endpoint, .gatewayError, now: host.now)
        }
        switch end {
        case .head(let status):
            conclusion = r.attempts.responseHead(status: status, sentToken: r.token, pool: &pool, now: host.now, random: &host.random)
        case .failed(let kind, let sent):
            conclusion = r.attempts.attemptFailed(kind, requestSent: sent, pool: &pool, now: host.now, random: &host.random)
        }
        requests[id] = r
        let sim = host.simulation
        host.log("conclusion", Self.code(conclusion.next), Int64(conclusion.events.count))
        for event in conclusion.events {
            switch event {
            case .ejected: sim.coverage.hit("http.ejected")
            case .ejectionSkipped: sim.coverage.hit("http.ejection-skipped-max-percent")
            case .breakerOpened: sim.coverage.hit("http.breaker-opened")
            case .breakerClosed: sim.coverage.hit("http.breaker-closed")
            }
        }
        if let rejected = conclusion.rejectedToken, var cache = tokens {
            cache.rejected(rejected)
            tokens = cache
        }
        switch conclusion.next {
        case .answer:
            finish(id, .ok("200"), host)
        case .retry(let delay, let neverSent):
            retries += 1
            checkBudget(host)
            sim.coverage.hit("http.retry")
            sim.coverage.sometimes(neverSent, "http.retry-after-connect-failure")
            let t = host.setTimer(after: delay)
            timers[t.rawValue] = .backoff(id)
            requests[id]!.timers.append(t)
        case .giveUp(let reason, let outcome):
            sim.coverage.hit("http.give-up." + reason.rawValue)
            let status: String
            switch outcome {
            case .serverError(let s): status = "\(s)"
            case .gatewayError(nil): status = "504"
            default: status = "502"
            }
            finish(id, .failed("\(status) \(reason.rawValue)"), host)
        case .needToken, .send, .noEndpoint, .waitForEndpoint:
            break  // only nextAttempt leads there
        }
    }

    /// A stable number for each kind of decision, for the log's hash.
    private static func code(_ next: EgressRequest.Next) -> Int64 {
        switch next {
        case .needToken: 1
        case .send: 2
        case .waitForEndpoint: 3
        case .noEndpoint: 4
        case .retry: 5
        case .answer: 6
        case .giveUp: 7
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let purpose = timers.removeValue(forKey: token.rawValue) else { return }
        switch purpose {
        case .think(let slot): issue(slot, host)
        case .backoff(let id): attempt(id, host)
        case .attempt(let id, let wire):
            guard let a = requests[id]?.current, a.wire == wire else { return }
            ended(id, .failed(nil, sent: a.written), host)
        case .deadline(let id):
            guard requests[id] != nil else { return }
            if let a = requests[id]!.current { model.ended(a.endpoint, .gatewayError, now: host.now) }
            _ = requests[id]!.attempts.deadlinePassed(pool: &pool, now: host.now)
            host.simulation.coverage.hit("http.deadline")
            finish(id, .failed("504 request_timeout"), host)
        case .appLeaves(let id):
            // The app closed its connection mid-request: the NIO driver calls the same cancel.
            guard let r = requests[id] else { return }
            host.simulation.coverage.hit("http.app-left")
            if let a = r.current {
                host.simulation.coverage.hit("http.app-left-mid-attempt")
                if pool.endpoints.first(where: { $0.address == a.endpoint }).map({ $0.breaker.state.name == "half-open" }) ?? false {
                    host.simulation.coverage.hit("http.app-left-during-probe")
                }
            }
            if let a = r.current { model.released(a.endpoint, probe: a.modelProbe) }
            requests[id]!.attempts.cancel(pool: &pool, now: host.now)
            finish(id, .failed("499 app left"), host)
        case .connect(let u, let s):
            guard let c = connections[u], c.stream == s, !c.open else { return }
            host.close(s)
            lost(s, .gatewayError(.connectTimeout), host)
        case .discovery:
            discoveryChanged(host)
        case .tokenTimeout(let wire):
            guard tokenFetch?.wire == wire else { return }
            tokenFetched(nil, lifetime: nil, host)
        }
    }

    private func finish(_ id: Int, _ outcome: History.Outcome, _ host: SimHost) {
        guard let r = requests.removeValue(forKey: id) else { return }
        if let a = r.current { byWire[a.wire] = nil }
        let sim = host.simulation
        // One answer per request and the deadline hold by construction here (the request leaves the
        // table; its timer ends it): they are not checked, since no bug could make them fail.
        _ = sim.history.complete(r.historyId, outcome, at: host.now)
        for t in r.timers { host.cancelTimer(t); timers[t.rawValue] = nil }
        if case .ok = outcome { think(r.slot, host) } else { think(r.slot, host, afterFailure: true) }
    }

    /// End-of-run check: with no request running, no endpoint may have an attempt counted in flight
    /// or a half-open probe taken; else an attempt was never ended in the pool, and that endpoint
    /// would get no traffic again (a probe slot held for good). Read straight off the endpoint
    /// states, not through the pool's own summary.
    func checkQuiescent(_ host: SimHost) {
        guard requests.isEmpty else { return }
        for e in pool.endpoints {
            var stuck = e.inFlight != 0
            if case .halfOpen(let probes) = e.breaker.state, probes > 0 { stuck = true }
            host.simulation.expect(!stuck, "http.pool-quiescent",
                                   "\(host.name): no request is running, yet \(e.address) has \(e.inFlight) in flight, breaker \(e.breaker.state)", host: host.id)
        }
    }

    /// At each retry: over the last budget window, retries stayed within the budget (a share of the
    /// requests started plus the floor), counted from this app's own record.
    private func checkBudget(_ host: SimHost) {
        let p = pool.config.retry
        retryTimes.append(host.now)
        originalTimes.removeAll { host.now - $0 > p.budgetWindow }
        retryTimes.removeAll { host.now - $0 > p.budgetWindow }
        if let excess = RetryBudgetBound.violation(retries: retryTimes, originals: originalTimes, now: host.now, ratio: p.budgetRatio,
                                                   minPerSecond: p.budgetMinPerSecond, window: p.budgetWindow) {
            host.simulation.expect(false, "http.retry-budget", "\(host.name): \(excess)", host: host.id)
        }
    }
}
