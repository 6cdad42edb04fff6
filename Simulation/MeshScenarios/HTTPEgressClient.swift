import HTTPSidecar
import HTTPSidecarEngines
import MeshCore
import MeshSimulator
import NIOCore

/// An app and its egress sidecar on one simulated pod. The app sends HTTP/1.1 requests on its own
/// connections to the sidecar, which runs the production ``EgressConnection`` engine per connection
/// (``HTTPEgressAppConnection``): routing, the request's ``EgressExchange`` against the service's
/// ``UpstreamPool`` (load balancing, breakers, ejection, retry budget and safety, deadline, tokens),
/// the attempts' heads (``EgressRequestHead``), relaying the answer. This pod does what the NIO
/// driver does for it and nothing more: attempts on pooled HTTP/1.1 connections to the upstream
/// pods, token fetches through the product's ``TokenBroker``, timers. The app judges the answers it
/// reads; a reference model hears what each attempt came to.
final class HTTPEgressClient: SimProcess {
    /// The app's request under way on a slot (one connection, one request at a time).
    private struct Request {
        var historyId: Int
        var key: String
        var method: String
        /// The app's trace context for this request (the upstream must see its trace with a new span).
        var traceparent: String
        /// What the sidecar's exchange settled on (seen in its actions), for the history's outcome.
        var outcome: History.Outcome?
        var leave: TimerToken?
        /// Named by a `service_url` off the allow-list: must be refused 403, reaching no upstream.
        var offList = false
        /// The exchange's last action was a retry (its backoff wait is not a wait for an endpoint).
        var retrying = false
        /// When the answer's head reached the app (its body may still break off).
        var answerBegan: MeshInstant?
    }
    /// An attempt the sidecar sent, on a connection to an upstream pod.
    private struct Attempt {
        var id: UInt64
        var endpoint: MeshAddress
        var stream: StreamID
        /// Whether the reference model counted this attempt as a half-open probe.
        var modelProbe = false
        /// When it was sent.
        var sentAt: MeshInstant
    }
    private enum Purpose {
        /// An exchange timer, for the app connection (engine) that armed it: a later connection on the
        /// same slot has exchanges of its own, numbered from 1 again.
        case think(Int), exchange(HTTPEgressAppConnection, EgressExchange.Timer, generation: UInt64, exchange: UInt64), discovery
        /// Connection `stream`'s link deadline, for the instant the timer was set for.
        case link(StreamID, at: MeshInstant)
        case tokenTimeout(UInt64), appLeaves(Int, history: Int)
    }
    /// One HTTP/1.1 connection to an upstream pod: it carries one attempt at a time and goes back to
    /// the idle list after a whole answer that keeps it open. Its ``UpstreamLink`` (the one
    /// ``UpstreamConnection`` runs in NIO) frames the requests, reads the answers, keeps the connect
    /// and response deadlines and says whether a request was sent and the connection may be reused.
    private struct Connection {
        var upstream: HostID
        var link: UpstreamLink
        /// The attempt it carries (its slot and id), and the bytes waiting for the connect.
        var attempt: (slot: Int, id: UInt64)?
        var pending: [UInt8] = []
        /// The instant its deadline timer is set for (progress only moves the deadline later, so
        /// the timer is re-armed lazily; a deadline that moves earlier, at the connect, gets a new one).
        var timerAt: MeshInstant?
    }

    private let config: HTTPEgressConfig
    private let upstreams: [(host: HostID, address: MeshAddress)]
    private let stopAt: MeshInstant
    /// Faults stop here; so does discovery churn (endpoints still come back).
    private let calmAt: MeshInstant
    /// The sidecar's one service: its pool, shared by the app's connections.
    let service: SimEgressService
    /// How requests name the service: the production router over a configuration with the one
    /// service (`upstream`), a path route `/work` to it, and one allow-listed `service_url` origin
    /// that the apps never name (a `service_url` they do name is off the list: 403).
    static let router: EgressRouter = {
        var config = EgressConfig()
        config.services = [ServiceConfig(name: "upstream", endpoints: [])]
        config.pathRoutes = [(prefix: "/work", service: "upstream")]
        config.serviceURLAllowList = ["https://partner.example"]
        return try! EgressRouter(config: config)
    }()
    private var apps: [HTTPEgressAppConnection?] = []
    private var requests: [Int: Request] = [:]
    private var attempts: [Int: Attempt] = [:]
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
    /// The endpoints discovery lists now (all of them unless churn removed one).
    private var listed: [MeshAddress]
    /// The product's token cache, its waiting slots (with their exchanges), and the one fetch it
    /// asked for (its wire id and stream).
    /// A request waiting for the token fetch: its app connection and exchange.
    struct TokenWaiter {
        let app: HTTPEgressAppConnection
        let exchange: UInt64
    }
    private var tokens: TokenBroker<TokenWaiter>?
    private var tokenFetch: (wire: UInt64, stream: StreamID, sent: Bool)?
    private let tokenServer: HostID?
    /// The endpoint-health promise as an independent model, fed with what each attempt came to.
    private var model: EndpointHealthModel
    /// The run's fault points, handed to the product's exchanges (their buggify sites).
    private let faults: any FaultInjector
    private unowned var host: SimHost!

    init(config: HTTPEgressConfig, upstreams: [(host: HostID, address: MeshAddress)], poolConfig: UpstreamPool.Config, stopAt: MeshInstant,
         calmAt: MeshInstant, tokenServer: HostID? = nil, faults: any FaultInjector = InertFaults.shared) {
        self.faults = faults
        self.config = config
        self.upstreams = upstreams
        self.stopAt = stopAt
        self.calmAt = calmAt
        let settings = EgressExchange.Settings(service: "upstream", deadline: config.deadline, attemptTimeout: config.attemptTimeout,
                                               usesToken: config.oauth != nil)
        self.service = SimEgressService(pool: UpstreamPool(poolConfig, endpoints: upstreams.map(\.address)), random: SeededRandom(seed: 0),
                                        settings: settings)
        self.listed = upstreams.map(\.address)
        self.tokens = config.oauth.map { TokenBroker($0) }
        self.tokenServer = tokenServer
        self.model = EndpointHealthModel(.init(poolConfig), listed: upstreams.map(\.address))
    }

    var retryBudget: RetryPolicy { service.pool.config.retry }

    func start(on host: SimHost) {
        self.host = host
        nextWire = (host.random.next() & 0xffff_ffff) << 32
        service.random = SeededRandom(seed: host.random.next())
        apps = Array(repeating: nil, count: config.concurrency)
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
        service.pool.setEndpoints(listed, now: host.now)
        model.listed(listed)
        scheduleDiscovery(host)
    }

    // MARK: The app

    private func think(_ slot: Int, _ host: SimHost, afterFailure: Bool = false) {
        // An app that just got an error waits a little longer, as real clients do.
        var pause = Int64(Double(config.thinkTime.nanoseconds) * host.random.nextUnit())
        if afterFailure { pause += 20_000_000 }
        timers[host.setTimer(after: .nanoseconds(pause)).rawValue] = .think(slot)
    }

    /// The app sends its next request on slot `slot`'s connection (a new one after a close).
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
        var r = Request(historyId: id, key: key, method: method, traceparent: traceparent)
        if host.random.chance(config.appDisconnect) {
            let leave = host.setTimer(after: .nanoseconds(Int64(Double(config.deadline.nanoseconds) * host.random.nextUnit())))
            timers[leave.rawValue] = .appLeaves(slot, history: id)
            r.leave = leave
        }
        requests[slot] = r
        if apps[slot]?.closed ?? true {
            apps[slot] = HTTPEgressAppConnection(client: self, host: host, slot: slot, seed: host.random.next(), faults: faults)
        }
        // With its own trace and a hop-by-hop field the sidecar must drop; named the ways apps name a
        // service: `service_id` mostly, else the `Host` (`upstream`, always sent), the path route
        // (another Host), or now and then a `service_url` that is not allow-listed.
        var fields = [("x-request-key", key), ("traceparent", traceparent), ("connection", "keep-alive, x-app-hop"), ("x-app-hop", "1")]
        var hostField = "upstream"
        switch host.random.next() % 20 {
        case 0:
            host.simulation.coverage.hit("http.routed-by-host")
        case 1:
            hostField = "sidecar"
            host.simulation.coverage.hit("http.routed-by-path")
        case 2:
            fields.insert(("service_url", "http://evil.example:8080/work"), at: 0)
            requests[slot]?.offList = true
        default:
            fields.insert(("service_id", "upstream"), at: 0)
        }
        apps[slot]!.send(SimHTTP1.request(method: method, target: "/work", fields: fields, host: hostField))
    }

    /// The app read the whole answer to its request on `slot`.
    func answered(_ slot: Int, status: Int, key: String?) {
        guard let r = requests[slot] else {
            return host.simulation.expect(false, "http.right-response", "\(host.name) got an answer to no request", host: host.id)
        }
        if r.offList {
            // Refused at routing, as it must be: an expected answer, not a failure.
            host.simulation.expect(status == 403, "http.right-response", "\(r.key) named a service_url off the allow-list, yet got \(status)", host: host.id)
            host.simulation.coverage.hit("http.service-url-refused")
            return finish(slot, .ok("403 service_url_not_allowed"))
        }
        if status < 300 {
            let wrong = HTTPEgressChecks.rightResponse(sent: r.key, answered: key ?? "")
            host.simulation.expect(wrong == nil, "http.right-response", "relayed to the app: \(wrong ?? "")", host: host.id)
        }
        finish(slot, r.outcome ?? (status < 300 ? .ok("\(status)") : .failed("\(status)")))
    }

    /// The head of the answer to the request on `slot` reached the app; its body is still coming.
    func answerBegan(_ slot: Int) {
        guard let r = requests[slot], r.answerBegan == nil else { return }
        requests[slot]?.answerBegan = host.now
        host.simulation.history.answerBegan(r.historyId, at: host.now)
    }

    /// The sidecar closed the app's connection on `slot`: a request with no whole answer failed. One
    /// whose answer broke off midway (an upstream that went quiet mid-answer) ended when its answer
    /// began: the deadline promise is about the answer's start, and a relayed body may take longer.
    func connectionClosed(_ slot: Int) {
        guard let r = requests[slot] else { return }
        if let began = r.answerBegan {
            host.simulation.coverage.hit("http.answer-broken-off")
            finish(slot, .failed("answer broken off"), at: began)
        } else {
            finish(slot, .failed("connection closed"))
        }
    }

    private func finish(_ slot: Int, _ outcome: History.Outcome, at: MeshInstant? = nil) {
        guard let r = requests.removeValue(forKey: slot) else { return }
        // The deadline is the exchange's to keep (checked over the history at the end: `http.deadline`).
        _ = host.simulation.history.complete(r.historyId, outcome, at: at ?? host.now)
        if let leave = r.leave { host.cancelTimer(leave); timers[leave.rawValue] = nil }
        if case .ok = outcome { think(slot, host) } else { think(slot, host, afterFailure: true) }
    }

    // MARK: What the engine decided (coverage, the log's hash, the history's outcome, the budget check)

    func observe(_ action: EgressExchange.Action, slot: Int) {
        let sim = host.simulation
        // The product's decisions go into the log and its hash.
        host.log("egress", Self.code(action), Int64(requests[slot]?.historyId ?? -1))
        let afterRetry = requests[slot]?.retrying ?? false
        requests[slot]?.retrying = false
        switch action {
        case .arm(let timer, _, _):
            if timer == .wait && !afterRetry { sim.coverage.hit("http.wait-for-endpoint") }
        case .retrying(_, let neverSent):
            requests[slot]?.retrying = true
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
        case .relay(let status, let gaveUp):
            if let gaveUp {
                sim.coverage.hit("http.give-up." + gaveUp.rawValue)
                requests[slot]?.outcome = .failed("\(status) \(gaveUp.rawValue)")
            } else {
                requests[slot]?.outcome = .ok("\(status)")
            }
        case .refuse(let refusal):
            switch refusal.code {
            case "request_timeout": sim.coverage.hit("http.deadline")
            case "no_healthy_endpoint": sim.coverage.hit("http.no-endpoint")
            default: if let reason = refusal.reason { sim.coverage.hit("http.give-up." + reason.rawValue) }
            }
            requests[slot]?.outcome = .failed("\(refusal.status) \(refusal.code)")
        case .fetchToken, .send, .abandonAttempt, .tokenRejected:
            break
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

    // MARK: Attempts (what the engine asks of the pod)

    func sendAttempt(_ slot: Int, _ id: UInt64, to pick: UpstreamPool.Pick, head: EncodedRequestHead, body: ByteBuffer) {
        let sim = host.simulation
        let key = requests[slot]?.key ?? "?"
        // The product's decision goes into the log and its hash: which endpoint, probe or not.
        host.log("attempt", Int64(service.pool.index(of: pick.address) ?? -1), pick.isProbe ? 1 : 0)
        let (violation, probe) = model.sent(to: pick.address, now: host.now)
        sim.expect(violation == nil, "http.no-traffic-to-unavailable", "\(key) sent to \(pick.address): \(violation ?? "")", host: host.id)
        let removed = HTTPEgressChecks.noTrafficToRemoved(pick.address, listed: listed)
        sim.expect(removed == nil, "http.no-traffic-to-removed", "\(key) \(removed ?? "")", host: host.id)
        sim.coverage.sometimes(pick.isProbe, "http.breaker-probe")
        let upstream = upstreams.first { $0.address == pick.address }!.host
        let stream: StreamID
        var connection: Connection
        if let s = idle[upstream]?.popLast() {
            stream = s
            connection = connections[s]!
        } else {
            stream = host.connect(to: upstream, port: HTTPUpstream.port)
            connection = Connection(upstream: upstream, link: UpstreamLink(tls: config.upstreamTLS, connectTimeout: config.connectTimeout, now: host.now))
        }
        // The head the product wrote from the app's request: routing and hop-by-hop fields gone,
        // the sidecar hop's trace context, the token. They wait in `pending` for the connect.
        var bytes: [UInt8] = []
        connection.link.start(head, timeout: config.attemptTimeout, now: host.now) { bytes += $0.readableBytesView }
        if body.readableBytes > 0 { connection.link.send(.body(body), now: host.now) { bytes += $0.readableBytesView } }
        connection.link.send(.end, now: host.now) { bytes += $0.readableBytesView }
        connection.attempt = (slot, id)
        connection.pending += bytes
        connections[stream] = connection
        attempts[slot] = Attempt(id: id, endpoint: pick.address, stream: stream, modelProbe: probe, sentAt: host.now)
        flushPending(stream, host)
        armLinkTimer(stream, host)
    }

    /// Writes what waits for connection `s` once it is open (on TLS the handshake is taken as done
    /// with the connect: the simulated stream has none).
    private func flushPending(_ s: StreamID, _ host: SimHost) {
        guard var c = connections[s], c.link.open, !c.pending.isEmpty else { return }
        host.write(s, c.pending)
        c.pending = []
        connections[s] = c
    }

    /// A timer for connection `s`'s link deadline, unless one is set for that instant or earlier.
    private func armLinkTimer(_ s: StreamID, _ host: SimHost) {
        guard var c = connections[s], let deadline = c.link.deadline else { return }
        if let at = c.timerAt, at <= deadline { return }
        c.timerAt = deadline
        connections[s] = c
        timers[host.setTimer(after: max(.zero, deadline - host.now)).rawValue] = .link(s, at: deadline)
    }

    /// The engine gave attempt `id` up: its connection is reset (as ``UpstreamConnection/abandon()``
    /// does), so a late answer cannot be mistaken and request bytes still held never arrive. The model hears why, from the engine's reason.
    func abandonAttempt(_ slot: Int, _ id: UInt64, because reason: EgressExchange.AbandonReason) {
        guard let a = attempts[slot], a.id == id else { return }
        attempts[slot] = nil
        switch reason {
        case .appLeft: model.released(a.endpoint, probe: a.modelProbe)
        case .attemptTimedOut: model.ended(a.endpoint, .gatewayError, now: host.now)
        case .deadlinePassed:
            // The model's rule: a probe that never had its whole attempt timeout says nothing.
            if a.modelProbe && host.now - a.sentAt < config.attemptTimeout {
                model.released(a.endpoint, probe: true)
            } else {
                model.ended(a.endpoint, .gatewayError, now: host.now)
            }
        case .retryingAfterAnswer: break  // heard at the head
        }
        drop(a.stream, abortive: true, host)
    }

    func fetchToken(_ slot: Int, exchange: UInt64) {
        guard var broker = tokens, let app = apps[slot] else { return }
        let ask = broker.ask(now: host.now, waiter: TokenWaiter(app: app, exchange: exchange))
        tokens = broker
        // The fetch starts before the token is used (its connect goes out first).
        if ask.startFetch { startTokenFetch(host) }
        switch ask.now {
        case .success(let token)?:
            if ask.startFetch { host.simulation.coverage.hit("http.token-refresh-background") }
            app.engine.tokenReady(token, exchange: exchange)
        case .failure(let failure)?:
            host.simulation.coverage.hit("http.token-fail-fast")
            app.engine.tokenFailed(failure.message, exchange: exchange)
        case nil:
            if !ask.startFetch { host.simulation.coverage.hit("http.token-waiters") }
        }
    }

    func tokenRejected(_ token: String) { tokens?.rejected(token) }

    func arm(_ slot: Int, _ timer: EgressExchange.Timer, at instant: MeshInstant, generation: UInt64, exchange: UInt64) {
        guard let app = apps[slot] else { return }
        timers[host.setTimer(after: instant - host.now).rawValue] = .exchange(app, timer, generation: generation, exchange: exchange)
    }

    // MARK: Tokens

    private func startTokenFetch(_ host: SimHost) {
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
        let waiting: [TokenWaiter]
        if let token {
            host.simulation.coverage.hit("http.token-fetched")
            waiting = broker.fetched(token, expiresIn: lifetime, now: host.now)
        } else {
            host.simulation.coverage.hit("http.token-fetch-failed")
            waiting = broker.fetchFailed("token endpoint failed", now: host.now)
        }
        tokens = broker
        for w in waiting {
            if let token { w.app.engine.tokenReady(token, exchange: w.exchange) } else { w.app.engine.tokenFailed("token endpoint failed", exchange: w.exchange) }
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

    // MARK: Upstream connections

    /// Closes a connection and forgets it; `abortive`: a failed exchange's connection is reset, as
    /// ``UpstreamConnection`` resets it, so request bytes the network still holds never arrive.
    private func drop(_ stream: StreamID, abortive: Bool = false, _ host: SimHost) {
        guard let c = connections.removeValue(forKey: stream) else { return }
        idle[c.upstream]?.removeAll { $0 == stream }
        if abortive { host.abort(stream) } else { host.close(stream) }
    }

    /// The slot and attempt connection `s` carries, while that attempt is the slot's current one.
    private func owner(of s: StreamID) -> (slot: Int, attempt: Attempt)? {
        guard let (slot, id) = connections[s]?.attempt, let a = attempts[slot], a.id == id, a.stream == s else { return nil }
        return (slot, a)
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        if tokenStream(event, host) { return }
        switch event {
        case .connected(let s):
            guard connections[s] != nil else { return }
            connections[s]!.link.connected(now: host.now)
            connections[s]!.link.handshakeCompleted()
            flushPending(s, host)
            armLinkTimer(s, host)
        case .connectFailed(let s, let kind):
            if case .connectRefused = kind { host.simulation.coverage.hit("http.connect-refused") }
            lost(s, connections[s]?.link.failed(TransportError(kind)), host)
        case .reset(let s):
            lost(s, connections[s]?.link.failed(TransportError(.reset)), host)
        case .closed(let s):
            // On TLS a close without close_notify is a TLS error (as NIOSSL reports it).
            guard connections[s] != nil else { return }
            let event = connections[s]!.link.peerClosed(TransportError(config.upstreamTLS ? .tls : .closed))
            if case .end? = event { return answerEnded(s, reuse: false, host) }
            lost(s, event, host)
        case .data(let s, let bytes):
            guard connections[s] != nil else { return }
            connections[s]!.link.received(ByteBuffer(bytes: bytes))
            while connections[s] != nil, let event = connections[s]!.link.next(now: host.now) {
                switch event {
                case .head(let head): answerHead(s, head, host)
                case .body(let chunk): answerBody(s, chunk)
                case .end(let reuse): answerEnded(s, reuse: reuse, host)
                case .failed(let error, _):
                    // A malformed answer (the scanner refused it) or bytes nobody asked for: the
                    // connection is dropped, as on the NIO data path.
                    host.simulation.coverage.hit(error.detail.hasPrefix(UpstreamLink.unsolicited) ? "http.unsolicited-bytes" : "http.malformed-answer")
                    lost(s, event, host)
                }
            }
            if let (slot, a) = owner(of: s) { apps[slot]?.engine.attemptReadComplete(a.id) }
        case .datagram, .accepted:
            break
        }
    }

    /// An answer's head on connection `s`: checked against what was sent, the model hears it, then
    /// the engine's exchange decides.
    private func answerHead(_ s: StreamID, _ head: ScannedResponseHead, _ host: SimHost) {
        guard let (slot, a) = owner(of: s), let r = requests[slot], let app = apps[slot] else { return }
        let key = head.first("x-request-key") ?? ""
        let wrong = HTTPEgressChecks.rightResponse(sent: r.key, answered: key)
        host.simulation.expect(wrong == nil, "http.right-response", wrong ?? "", host: host.id)
        // The upstream echoes the traceparent it saw: the app's trace id with the sidecar's span.
        let lost = HTTPEgressChecks.traceSurvives(sent: r.traceparent, seen: head.first("traceparent") ?? "")
        host.simulation.expect(lost == nil, "http.trace-survives", "\(r.key): \(lost ?? "")", host: host.id)
        if !listed.contains(a.endpoint) { host.simulation.coverage.hit("http.response-from-removed") }
        model.ended(a.endpoint, head.status >= 500 ? .serverError : .success, now: host.now)
        app.engine.attemptHead(a.id, head)
    }

    private func answerBody(_ s: StreamID, _ chunk: ByteBuffer) {
        guard let (slot, a) = owner(of: s) else { return }
        apps[slot]?.engine.attemptBody(a.id, chunk)
    }

    /// The whole answer arrived: the connection takes the next attempt if its link says it may,
    /// else it closes; the engine finishes relaying the answer.
    private func answerEnded(_ s: StreamID, reuse: Bool, _ host: SimHost) {
        guard var c = connections[s] else { return }
        let owner = owner(of: s)
        if reuse {
            c.attempt = nil
            connections[s] = c
            idle[c.upstream, default: []].append(s)
        } else {
            drop(s, host)
        }
        guard let (slot, a) = owner else { return }
        attempts[slot] = nil
        apps[slot]?.engine.attemptEnded(a.id)
    }

    /// Connection `s` failed, closed or timed out (`event`, from its link): the attempt it carried
    /// failed (an answer already relaying breaks off; one not begun goes to the exchange, which may
    /// retry, if the link says the request was never sent).
    private func lost(_ s: StreamID, _ event: UpstreamLinkEvent?, _ host: SimHost) {
        guard let c = connections[s] else { return }
        let owner = owner(of: s)
        drop(s, abortive: true, host)
        guard let (slot, a) = owner, case .failed(let error, let requestSent)? = event else { return }
        attempts[slot] = nil
        if !c.link.answering { model.ended(a.endpoint, .gatewayError, now: host.now) }
        guard let app = apps[slot] else { return }
        app.engine.attemptFailed(a.id, error, requestSent: requestSent)
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let purpose = timers.removeValue(forKey: token.rawValue) else { return }
        switch purpose {
        case .think(let slot):
            issue(slot, host)
        case .exchange(let app, let timer, let generation, let exchange):
            app.engine.timerFired(timer, generation: generation, exchange: exchange)
        case .appLeaves(let slot, let history):
            // The app closed its connection mid-request: the NIO driver calls the same cancel.
            guard requests[slot]?.historyId == history, let app = apps[slot] else { return }
            host.simulation.coverage.hit("http.app-left")
            if let a = attempts[slot] {
                host.simulation.coverage.hit("http.app-left-mid-attempt")
                if service.pool.endpoints.first(where: { $0.address == a.endpoint }).map({ $0.breaker.state.name == "half-open" }) ?? false {
                    host.simulation.coverage.hit("http.app-left-during-probe")
                }
            }
            requests[slot]?.leave = nil
            app.appCloses()
            finish(slot, .failed("499 app left"))
        case .link(let s, let at):
            guard connections[s]?.timerAt == at else { return }  // a connection gone, or a timer replaced by an earlier one
            connections[s]!.timerAt = nil
            let answering = connections[s]!.link.answering
            guard let event = connections[s]!.link.deadlinePassed(now: host.now) else { return armLinkTimer(s, host) }
            if answering { host.simulation.coverage.hit("http.answer-stall-cut") }
            lost(s, event, host)
        case .discovery:
            discoveryChanged(host)
        case .tokenTimeout(let wire):
            guard tokenFetch?.wire == wire else { return }
            tokenFetched(nil, lifetime: nil, host)
        }
    }

    // MARK: Checks

    /// End-of-run check: with no request running, no endpoint may have an attempt counted in flight
    /// or a half-open probe taken; else an attempt was never ended in the pool, and that endpoint
    /// would get no traffic again (a probe slot held for good). Read straight off the endpoint
    /// states, not through the pool's own summary.
    func checkQuiescent(_ host: SimHost) {
        guard requests.isEmpty else { return }
        let stuck = HTTPEgressChecks.poolQuiescent(service.pool.endpoints)
        host.simulation.expect(stuck == nil, "http.pool-quiescent", "\(host.name): \(stuck ?? "")", host: host.id)
    }

    /// At each retry: over the last budget window, retries stayed within the budget (a share of the
    /// requests started plus the floor), counted from this app's own record.
    private func checkBudget(_ host: SimHost) {
        let p = service.pool.config.retry
        retryTimes.append(host.now)
        originalTimes.removeAll { host.now - $0 > p.budgetWindow }
        retryTimes.removeAll { host.now - $0 > p.budgetWindow }
        if let excess = RetryBudgetBound.violation(retries: retryTimes, originals: originalTimes, now: host.now, ratio: p.budgetRatio,
                                                   minPerSecond: p.budgetMinPerSecond, window: p.budgetWindow) {
            host.simulation.expect(false, "http.retry-budget", "\(host.name): \(excess)", host: host.id)
        }
    }
}
