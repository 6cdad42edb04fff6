import HTTPSidecar
import HTTPSidecarNIO
import MeshCore
import MeshSimulator
import NIOCore

/// An app and its sidecar's egress path on one simulated pod: requests go to upstream pods chosen by
/// the product's ``UpstreamPool`` (load balancing, breakers, ejection, retry budget and safety); this
/// driver only moves bytes and timers, as the NIO driver does in production.
final class HTTPEgressClient: SimProcess {
    private struct Request {
        var historyId: Int
        var key: String
        var method: String
        var slot: Int
        /// The product's lifecycle of this request (deadline, tokens, attempts and their timeouts,
        /// retries, the answer): the same engine the NIO egress handler runs.
        var exchange: EgressExchange
        /// The app's trace context for this request (the upstream must see its trace with a new span).
        var traceparent: String
        /// The bearer token the sidecar injects (empty without OAuth).
        var token = ""
        var current: Attempt?
        var timers: [TimerToken] = []
    }
    private struct Attempt {
        var wire: UInt64
        var endpoint: MeshAddress
        var sentAt: MeshInstant
        /// The connection carrying it (one exchange at a time, as HTTP/1.1 and the NIO pool do).
        var stream: StreamID
        var written = false
        /// Whether the reference model counted this attempt as a half-open probe.
        var modelProbe = false
    }
    private enum Purpose { case think(Int), exchange(Int, EgressExchange.Timer, UInt64), connect(StreamID), discovery, tokenTimeout(UInt64), appLeaves(Int) }
    /// One HTTP/1.1 connection to an upstream pod: it carries one attempt at a time and goes back to
    /// the idle list after a whole answer that keeps it open.
    private struct Connection {
        var upstream: HostID
        var open = false
        /// The attempt it carries: its request, and the bytes waiting for the connect.
        var request: Int?
        var pending: [UInt8]?
        /// Requests written and answers read as ``UpstreamConnection`` does (the same codec).
        var codec = UpstreamCodec()
        /// The head of the answer being read.
        var head: ScannedResponseHead?
        /// The answer's head went to the exchange; the rest of its body is still to come.
        var relaying = false
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
    private var connections: [StreamID: Connection] = [:]
    /// Open connections with no attempt, per upstream pod (newest last).
    private var idle: [HostID: [StreamID]] = [:]
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

    /// The run's fault points, handed to the product's exchange (its buggify sites).
    private let faults: any FaultInjector

    init(config: HTTPEgressConfig, upstreams: [(host: HostID, address: MeshAddress)], poolConfig: UpstreamPool.Config, stopAt: MeshInstant,
         calmAt: MeshInstant, tokenServer: HostID? = nil, faults: any FaultInjector = InertFaults.shared) {
        self.faults = faults
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

    /// Reports `event` to request `id`'s exchange and carries out what it answers. The reference
    /// model hears how the current attempt ended from what the app saw (its answer or failure), or
    /// that it was dropped.
    private func deliver(_ id: Int, _ event: EgressExchange.Event, _ host: SimHost) {
        guard var r = requests[id] else { return }
        let attempt = r.current
        // A failed attempt is over; an answered one stays current until the exchange decides, so
        // that a retry drops its connection as the NIO driver does (``Action/abandonAttempt``).
        if case .attemptFailed = event, let a = attempt {
            r.current = nil
            byWire[a.wire] = nil
        }
        let actions = r.exchange.handle(event, pool: &pool, now: host.now, random: &host.random)
        requests[id] = r
        if let a = attempt {
            switch event {
            case .attemptHead(let status): model.ended(a.endpoint, status >= 500 ? .serverError : .success, now: host.now)
            case .attemptFailed: model.ended(a.endpoint, .gatewayError, now: host.now)
            case .appLeft where actions.contains(.abandonAttempt): model.released(a.endpoint, probe: a.modelProbe)
            case .timerFired where actions.contains(.abandonAttempt): model.ended(a.endpoint, .gatewayError, now: host.now)
            default: break
            }
        }
        perform(id, actions, host)
    }

    /// The driver's part: each action becomes a token request, bytes on a connection, a timer or
    /// the app's answer. Nothing here decides anything.
    private func perform(_ id: Int, _ actions: [EgressExchange.Action], _ host: SimHost) {
        let sim = host.simulation
        let retrying = actions.contains { if case .retrying = $0 { true } else { false } }
        for action in actions {
            // The product's decisions go into the log and its hash.
            host.log("egress", Self.code(action), Int64(id))
            switch action {
            case .fetchToken:
                token(for: id, host)
            case .send(let pick, let token):
                send(id, pick, token: token ?? "", host)
            case .arm(let timer, let at, let generation):
                if timer == .wait && !retrying { sim.coverage.hit("http.wait-for-endpoint") }
                let t = host.setTimer(after: at - host.now)
                timers[t.rawValue] = .exchange(id, timer, generation)
                requests[id]?.timers.append(t)
            case .abandonAttempt:
                // Its connection is closed (as the NIO pool does): a late answer cannot be mistaken.
                if let a = requests[id]?.current {
                    byWire[a.wire] = nil
                    drop(a.stream, host)
                }
                requests[id]?.current = nil
            case .retrying(_, let neverSent):
                retries += 1
                checkBudget(host)
                sim.coverage.hit("http.retry")
                sim.coverage.sometimes(neverSent, "http.retry-after-connect-failure")
            case .poolEvents(let events):
                for event in events {
                    switch event {
                    case .ejected: sim.coverage.hit("http.ejected")
                    case .ejectionSkipped: sim.coverage.hit("http.ejection-skipped-max-percent")
                    case .breakerOpened: sim.coverage.hit("http.breaker-opened")
                    case .breakerClosed: sim.coverage.hit("http.breaker-closed")
                    }
                }
            case .tokenRejected(let rejected):
                tokens?.rejected(rejected)
            case .relay(let status, let gaveUp):
                if let gaveUp {
                    sim.coverage.hit("http.give-up." + gaveUp.rawValue)
                    finish(id, .failed("\(status) \(gaveUp.rawValue)"), host)
                } else {
                    finish(id, .ok("\(status)"), host)
                }
            case .refuse(let refusal):
                switch refusal.code {
                case "request_timeout": sim.coverage.hit("http.deadline")
                case "no_healthy_endpoint": sim.coverage.hit("http.no-endpoint")
                default: if let reason = refusal.reason { sim.coverage.hit("http.give-up." + reason.rawValue) }
                }
                finish(id, .failed("\(refusal.status) \(refusal.code)"), host)
            }
        }
    }

    /// A stable number for each kind of action, for the log's hash.
    private static func code(_ action: EgressExchange.Action) -> Int64 {
        switch action {
        case .fetchToken: 1
        case .send(let pick, _): pick.isProbe ? 3 : 2
        case .arm(let timer, _, _): timer == .deadline ? 4 : timer == .attempt ? 5 : 6
        case .abandonAttempt: 7
        case .retrying: 8
        case .poolEvents(let events): 100 + Int64(events.count)
        case .tokenRejected: 9
        case .relay(let status, _): 1000 + Int64(status)
        case .refuse(let refusal): 2000 + Int64(refusal.status)
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
            deliver(id, .tokenReady(token), host)
        case .useAndRefresh(let token):
            host.simulation.coverage.hit("http.token-refresh-background")
            fetchToken(host)
            deliver(id, .tokenReady(token), host)
        case .fetchAndWait:
            fetchToken(host)
        case .wait:
            host.simulation.coverage.hit("http.token-waiters")
        case .fail:
            host.simulation.coverage.hit("http.token-fail-fast")
            deliver(id, .tokenFailed("the last fetch failed"), host)
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
            deliver(id, token.map { .tokenReady($0) } ?? .tokenFailed("token endpoint failed"), host)
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
        let id = host.simulation.history.invoke(process: host.name, "http", "\(method) \(key)", at: host.now, deadline: host.now + config.deadline)
        // The app's own trace context; the sidecar hop must continue it.
        let traceparent = TracePropagation.nextHop(traceparent: nil, tracestate: nil, random: &host.random).context.traceParentHeaderValue
        let settings = EgressExchange.Settings(service: "upstream", deadline: config.deadline, attemptTimeout: config.attemptTimeout, usesToken: tokens != nil)
        var exchange = EgressExchange(method: method, settings: settings, traceparent: traceparent, tracestate: nil, now: host.now, random: &host.random,
                                      faults: faults)
        var r = Request(historyId: id, key: key, method: method, slot: slot, exchange: exchange, traceparent: traceparent)
        if host.random.chance(config.appDisconnect) {
            let leave = host.setTimer(after: .nanoseconds(Int64(Double(config.deadline.nanoseconds) * host.random.nextUnit())))
            timers[leave.rawValue] = .appLeaves(id)
            r.timers.append(leave)
        }
        let actions = exchange.start(pool: &pool, now: host.now, random: &host.random)
        r.exchange = exchange
        requests[id] = r
        perform(id, actions, host)
    }

    private func send(_ id: Int, _ pick: UpstreamPool.Pick, token: String, _ host: SimHost) {
        guard var r = requests[id] else { return }
        let sim = host.simulation
        r.token = token
        // The product's decision goes into the log and its hash: which endpoint, probe or not.
        host.log("attempt", Int64(pool.index(of: pick.address) ?? -1), pick.isProbe ? 1 : 0)
        let (violation, probe) = model.sent(to: pick.address, now: host.now)
        sim.expect(violation == nil, "http.no-traffic-to-unavailable", "\(r.key) sent to \(pick.address): \(violation ?? "")", host: host.id)
        let removed = HTTPEgressChecks.noTrafficToRemoved(pick.address, listed: listed)
        sim.expect(removed == nil, "http.no-traffic-to-removed", "\(r.key) \(removed ?? "")", host: host.id)
        sim.coverage.sometimes(pick.isProbe, "http.breaker-probe")
        nextWire += 1
        let wire = nextWire
        let upstream = upstreams.first { $0.address == pick.address }!.host
        // The request as the product writes it from the app's (`EgressRequestHead`): routing and
        // hop-by-hop fields gone, the sidecar hop's trace context as the exchange made it, the token.
        let head = Self.upstreamRequest(r, probe: pick.isProbe, token: token)
        let stream: StreamID
        var written = false
        var connection: Connection
        if let s = idle[upstream]?.popLast() {
            stream = s
            connection = connections[s]!
        } else {
            stream = host.connect(to: upstream, port: HTTPUpstream.port)
            connection = Connection(upstream: upstream)
            timers[host.setTimer(after: config.attemptTimeout).rawValue] = .connect(stream)
        }
        var bytes: [UInt8] = []
        for part in [UpstreamRequestPart.head(head.bytes, head.kind), .end] {
            connection.codec.encode(part, allocator: ByteBufferAllocator()) { bytes += $0.readableBytesView }
        }
        connection.request = id
        if connection.open {
            host.write(stream, bytes)
            written = true
        } else {
            connection.pending = bytes
        }
        connections[stream] = connection
        r.current = Attempt(wire: wire, endpoint: pick.address, sentAt: host.now, stream: stream, written: written, modelProbe: probe)
        byWire[wire] = id
        requests[id] = r
    }

    /// The app's request as it reaches the sidecar (routing by `service_id`, its own trace, a
    /// hop-by-hop field), and the head the product writes from it for one attempt.
    private static func upstreamRequest(_ r: Request, probe: Bool, token: String) -> EncodedRequestHead {
        var fields = [("service_id", "upstream"), ("x-request-key", r.key), ("traceparent", r.traceparent), ("connection", "keep-alive, x-app-hop"),
                      ("x-app-hop", "1")]
        if probe { fields.append(("x-probe", "1")) }
        let app = ByteBuffer(bytes: SimHTTP1.request(method: r.method, target: "/work", fields: fields))
        guard case .success(let scanned) = ScannedRequestHead.scanning(app) else { preconditionFailure("the simulated app's request does not scan") }
        let head = EgressRequestHead(app: scanned, target: "/work", traceparent: r.exchange.upstreamTraceparent, tracestate: r.exchange.upstreamTracestate,
                                     host: nil, rules: HeaderRules(), bodyLength: 0)
        return head.encoded(token: token.isEmpty ? nil : token)
    }

    /// Closes a connection and forgets it.
    private func drop(_ stream: StreamID, _ host: SimHost) {
        guard let c = connections.removeValue(forKey: stream) else { return }
        idle[c.upstream]?.removeAll { $0 == stream }
        host.close(stream)
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        if tokenStream(event, host) { return }
        switch event {
        case .connected(let s):
            guard var c = connections[s] else { return }
            c.open = true
            if let bytes = c.pending, let id = c.request, requests[id]?.current?.stream == s {
                host.write(s, bytes)
                requests[id]!.current!.written = true
            }
            c.pending = nil
            connections[s] = c
        case .connectFailed(let s, let kind):
            if case .connectRefused = kind { host.simulation.coverage.hit("http.connect-refused") }
            lost(s, kind, host)
        case .reset(let s):
            lost(s, .reset, host)
        case .closed(let s):
            lost(s, .closed, host)
        case .data(let s, let bytes):
            guard connections[s] != nil else { return }
            connections[s]!.codec.received(ByteBuffer(bytes: bytes))
            while var c = connections[s] {
                let part: UpstreamResponsePart?
                do {
                    part = try c.codec.nextPart()
                } catch {
                    // A malformed answer (the scanner refused it) or bytes nobody asked for: the
                    // connection is dropped, as on the NIO data path.
                    host.simulation.coverage.hit(error is HTTP1Violation ? "http.malformed-answer" : "http.unsolicited-bytes")
                    connections[s] = c
                    return lost(s, .protocolViolation, host)
                }
                guard let part else { connections[s] = c; return }
                switch part {
                case .head(let head):
                    c.head = head
                    connections[s] = c
                    answerHead(s, host)
                case .body:
                    connections[s] = c
                case .end:
                    connections[s] = c
                    answerEnded(s, host)
                }
            }
        case .datagram, .accepted:
            break
        }
    }

    /// An answer's head on connection `s`: checked against what was sent, then the exchange decides.
    private func answerHead(_ s: StreamID, _ host: SimHost) {
        guard let c = connections[s], let head = c.head, let id = c.request, let r = requests[id], let a = r.current, a.stream == s else { return }
        let key = head.first("x-request-key") ?? ""
        let wrong = HTTPEgressChecks.rightResponse(sent: r.key, answered: key)
        host.simulation.expect(wrong == nil, "http.right-response", wrong ?? "", host: host.id)
        // The upstream echoes the traceparent it saw: the app's trace id with the sidecar's span.
        let lost = HTTPEgressChecks.traceSurvives(sent: r.traceparent, seen: head.first("traceparent") ?? "")
        host.simulation.expect(lost == nil, "http.trace-survives", "\(r.key): \(lost ?? "")", host: host.id)
        if !listed.contains(a.endpoint) { host.simulation.coverage.hit("http.response-from-removed") }
        connections[s]?.relaying = true
        deliver(id, .attemptHead(status: head.status), host)
    }

    /// The whole answer arrived: the connection takes the next attempt, unless it closes.
    private func answerEnded(_ s: StreamID, _ host: SimHost) {
        guard var c = connections[s] else { return }
        guard c.relaying, c.head?.scan.keepAlive ?? false else { return drop(s, host) }
        c.request = nil
        c.relaying = false
        c.head = nil
        connections[s] = c
        idle[c.upstream, default: []].append(s)
    }

    /// Connection `s` failed or closed: the attempt it carried (if its answer had not begun) failed.
    private func lost(_ s: StreamID, _ kind: TransportError.Kind, _ host: SimHost) {
        guard let c = connections[s] else { return }
        drop(s, host)
        guard !c.relaying, let id = c.request, let a = requests[id]?.current, a.stream == s else { return }
        deliver(id, .attemptFailed(kind, requestSent: a.written), host)
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let purpose = timers.removeValue(forKey: token.rawValue) else { return }
        switch purpose {
        case .think(let slot): issue(slot, host)
        case .exchange(let id, let timer, let generation):
            deliver(id, .timerFired(timer, generation: generation), host)
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
            deliver(id, .appLeft, host)
            finish(id, .failed("499 app left"), host)
        case .connect(let s):
            guard let c = connections[s], !c.open else { return }
            lost(s, .connectTimeout, host)
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
        // The deadline is the exchange's to keep (checked over the history at the end: `http.deadline`).
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
        let stuck = HTTPEgressChecks.poolQuiescent(pool.endpoints)
        host.simulation.expect(stuck == nil, "http.pool-quiescent", "\(host.name): \(stuck ?? "")", host: host.id)
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
