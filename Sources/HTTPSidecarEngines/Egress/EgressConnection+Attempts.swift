import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1

/// The engine's exchange: starting a request's ``EgressExchange``, handing it each event, carrying
/// out its actions through the driver, and relaying the answer it settles on.
extension EgressConnection {
    func start(_ head: ScannedRequestHead, _ body: ByteBuffer, _ routing: EgressRouting, _ target: RequestTarget) {
        let now = io.now
        let service = routing.service
        var exchange = EgressExchange(method: head.method.text, settings: service.exchangeSettings, traceparent: head.first("traceparent"),
                                      tracestate: head.first("tracestate"), now: now, random: &random, faults: faults)
        let upstream = EgressRequestHead(app: head, target: target.originForm, traceparent: exchange.upstreamTraceparent,
                                         tracestate: exchange.upstreamTracestate, host: routing.host, rules: service.requestRules,
                                         bodyLength: body.readableBytes)
        serial += 1
        forwarding = Forwarding(head: upstream, body: body, service: service, keepAlive: head.scan.keepAlive, version: head.version)
        let actions = service.decide { exchange.start(pool: &$0, now: now, random: &$1) }
        self.exchange = exchange
        perform(actions)
    }

    /// Reports `event` to the request's exchange (one decision on the service's pool) and carries
    /// out what it answers.
    func deliver(_ event: EgressExchange.Event) {
        guard var exchange, let service = forwarding?.service else { return }
        let now = io.now
        let actions = service.decide { exchange.handle(event, pool: &$0, now: now, random: &$1) }
        self.exchange = exchange
        perform(actions)
    }

    /// Each action becomes a token fetch, an attempt, a timer, an answer, or a note in the books.
    func perform(_ actions: [EgressExchange.Action]) {
        guard let fwd = forwarding else { return }
        let exchangeSerial = serial
        for action in actions {
            guard serial == exchangeSerial else { return }  // answered, and the next request started meanwhile
            io.observe(action, exchange: serial)
            switch action {
            case .fetchToken:
                io.fetchToken(for: fwd.service, exchange: serial)
            case .send(let pick, let token):
                attempts += 1
                let attempt = Attempt(id: attempts, started: io.now)
                current = attempt
                io.sendAttempt(attempt.id, to: pick, head: fwd.head.encoded(token: token), body: fwd.body, service: fwd.service)
            case .arm(let timer, let at, let generation):
                io.arm(timer, at: at, generation: generation, exchange: serial)
            case .abandonAttempt(let reason):
                if let attempt = current { io.abandonAttempt(attempt.id, reason) }
                current = nil
            case .retrying:
                io.retrying(service: fwd.service)
            case .poolEvents(let events):
                io.poolEvents(events, service: fwd.service)
            case .tokenRejected(let token):
                io.tokenRejected(token, service: fwd.service)
            case .relay(let status, _):
                guard let attempt = current, let head = attempt.head else { continue }
                endRequest()
                io.finished(status: status, seconds: (io.now - attempt.started).seconds, service: fwd.service, noEndpoint: false)
                let (relayed, closeAfter) = ProxyHeaders.relayedHead(scanned: head, rules: fwd.service.responseRules,
                                                                     requestVersion: fwd.version, keepAlive: fwd.keepAlive)
                current?.closeAfterAnswer = closeAfter
                current?.streaming = true
                current?.head = nil  // relayed: its read buffer can go
                codec.encode(.relayed(consume relayed), allocator: allocator) { io.writeToClient($0) }
                if !io.clientIsWritable { io.attemptReads(attempt.id, paused: true) }
            case .refuse(let refusal):
                let seconds = exchange.map { (io.now - $0.started).seconds } ?? 0
                endRequest()
                io.finished(status: refusal.status, seconds: seconds, service: fwd.service, noEndpoint: refusal.code == "no_healthy_endpoint")
                refuse(ErrorResponse(status: HTTPResponseStatus(statusCode: refusal.status), code: refusal.code, message: refusal.message), close: !fwd.keepAlive)
            }
        }
    }

    /// The request was answered, refused or abandoned: its exchange is over and its timers go.
    func endRequest() {
        exchange = nil
        forwarding = nil
        io.disarmTimers()
    }

    /// The app went away (or broke the protocol) while a request was under way: the attempt in
    /// flight is released in its pool (``EgressRequest/cancel(pool:now:)``, once), its connection
    /// closed, the deadline disarmed.
    func cancelRequest() {
        if forwarding != nil { deliver(.appLeft) }
        if let attempt = current { io.abandonAttempt(attempt.id, .appLeft) }
        current = nil
        endRequest()
    }

    // MARK: Events for the exchange

    /// A token for exchange `exchange` (stale ones are dropped).
    public func tokenReady(_ token: String, exchange: UInt64) {
        guard exchange == serial else { return }
        deliver(.tokenReady(token))
    }

    public func tokenFailed(_ why: String, exchange: UInt64) {
        guard exchange == serial else { return }
        deliver(.tokenFailed(why))
    }

    /// A timer armed for exchange `exchange` fired (the exchange drops a stale generation).
    public func timerFired(_ timer: EgressExchange.Timer, generation: UInt64, exchange: UInt64) {
        // ci/mutants: stale-timer-accepted (the next line)
        guard exchange == serial else { return }  // an earlier request's (its generations start at 1 too)
        deliver(.timerFired(timer, generation: generation))
    }

    // MARK: Attempt events

    /// Whether attempt `id` is still wanted (a connection that comes up for an abandoned one is given up).
    public func wantsAttempt(_ id: UInt64) -> Bool { current?.id == id }

    /// The attempt's answer head: the exchange decides (a retry drops the rest of this answer with
    /// its connection; otherwise the answer streams to the app from here on).
    public func attemptHead(_ id: UInt64, _ head: ScannedResponseHead) {
        guard current?.id == id else { return }
        current?.head = head
        deliver(.attemptHead(status: head.status))
    }

    public func attemptBody(_ id: UInt64, _ chunk: ByteBuffer) {
        guard let attempt = current, attempt.id == id, attempt.streaming else { return }
        codec.encode(.body(.byteBuffer(chunk)), allocator: allocator) { io.writeToClient($0) }
    }

    /// The end of a read burst of the answer: what was relayed in it leaves together.
    public func attemptReadComplete(_ id: UInt64) {
        guard let attempt = current, attempt.id == id, attempt.streaming else { return }
        io.flushClient()
    }

    /// The answer is complete (its connection has gone back to the pool, or closed).
    public func attemptEnded(_ id: UInt64) {
        guard let attempt = current, attempt.id == id, attempt.streaming else { return }
        current = nil
        codec.encode(.end, allocator: allocator) { io.writeToClient($0) }
        io.flushClient()
        if attempt.closeAfterAnswer {
            state = .closing
            io.closeClient(afterWrites: true)
        } else {
            answered(close: false)
        }
    }

    /// The attempt failed: the exchange decides (retry, or an answer), unless its answer was
    /// already streaming, which the app must see broken off.
    public func attemptFailed(_ id: UInt64, _ error: TransportError, requestSent: Bool) {
        guard let attempt = current, attempt.id == id else { return }
        current = nil
        if attempt.streaming {
            state = .closing
            io.closeClient(afterWrites: false)
            return
        }
        deliver(.attemptFailed(error.kind, requestSent: requestSent))
    }
}
