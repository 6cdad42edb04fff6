import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// One app connection to the egress listener: routes each request to a service and runs the
/// attempts the service's ``UpstreamPool`` decides (endpoint choice, retries, backoff, budget).
/// The request body is kept whole (up to the body limit) because a retry must resend it; the answer
/// is decided at its head (retry, or this is it) and then streamed to the app, with backpressure.
final class EgressHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private enum State {
        case idle
        case reading(ScannedRequestHead, ByteBuffer, service: ServiceRuntime, target: RequestTarget)
        case forwarding
        case closing
    }

    private let generation: Generation<EgressShared>
    private var shared: EgressShared
    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// The connection's bytes: requests read from them, answers written to them.
    private let wire = ClientWire()
    /// The attempt whose answer is awaited or streaming; callbacks of any other are stale.
    private var current: EgressAttempt?
    /// The lifecycle of the request being forwarded (``EgressExchange``, the same engine the simulator runs).
    private var exchange: EgressExchange?
    /// What the driver keeps of that request: the head and body every attempt sends, its service.
    private var forwarding: Exchange?
    /// Parts of pipelined requests that arrived while one was being forwarded (answered in order);
    /// reading pauses while the queue is long. Reads are not paused per request.
    private var queued: CircularBuffer<ClientRequestPart> = []
    private var draining = false
    private var readsPaused = false
    private var readPending = false
    /// The exchange's timers, re-armed lazily (a stale firing would be ignored by the exchange; they
    /// are disarmed when the request ends and cancelled when the connection goes).
    private var timers = LazyTimers<Exchange>()
    /// Ids for the trace hop (a new span per request), seeded once per connection.
    private var random: SeededRandom = {
        var system = SystemRandom()
        return SeededRandom(seed: system.next())
    }()

    init(generation: Generation<EgressShared>) {
        self.generation = generation
        self.shared = generation.current
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        wire.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        wire.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelRequest()
        timers.cancelAll()
        state = .closing
        context.fireChannelInactive()
    }

    /// The app went away (or broke the protocol) while a request was under way: the attempt in
    /// flight is released in its pool (``EgressRequest/cancel(pool:now:)``, once), its connection
    /// closed, the deadline disarmed.
    private func cancelRequest() {
        if let ex = forwarding, let context { deliver(.appLeft, context, ex) }
        current?.connection?.abandon()
        current = nil
        endRequest()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The app reads the answer slowly: stop reading the upstream until it catches up.
        if let connection = current?.connection {
            if context.channel.isWritable { connection.resumeReading() } else { connection.pauseReading() }
        }
        context.fireChannelWritabilityChanged()
    }

    /// A protocol error (malformed framing, smuggling attempt, oversized head): answered with 400 or
    /// 431 when no response is under way, and the connection is closed either way.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let started: Bool
        switch state {
        case .idle, .reading: started = false
        case .forwarding, .closing: started = true
        }
        cancelRequest()
        state = .closing
        ProtocolErrors.answer(wire, error, responseStarted: started)
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused { readPending = true } else { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        wire.received(unwrapInboundIn(data))
        do {
            while let part = try wire.nextPart() {
                if queued.isEmpty && takesPartNow {
                    handle(part, context)
                } else {
                    queued.append(part)
                    if queued.count > 64 { readsPaused = true }
                    drainQueue(context)
                }
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    /// Whether ``handle(_:_:)`` acts on a part now (a request being forwarded holds the next ones).
    private var takesPartNow: Bool {
        switch state {
        case .idle, .reading: return true
        case .forwarding: return false
        case .closing: return true  // dropped
        }
    }

    /// Feeds queued parts while the state takes them (once a request is answered, the next one's).
    private func drainQueue(_ context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while takesPartNow, let part = queued.popFirst() { handle(part, context) }
        if readsPaused && queued.count <= 64 {
            readsPaused = false
            if readPending {
                readPending = false
                context.read()
            }
        }
    }

    private func handle(_ part: ClientRequestPart, _ context: ChannelHandlerContext) {
        switch (part, state) {
        case (.head(let head), .idle):
            shared = generation.current
            let config = shared.config
            if head.fieldCount > config.maxHeaders {
                return fail(context, .requestHeaderFieldsTooLarge, "too_many_headers", "more than \(config.maxHeaders) header fields", close: true)
            }
            let framing: RequestFraming
            switch RequestFraming.of(method: head.method.text, contentLength: head.values("content-length"),
                                     transferEncoding: head.values("transfer-encoding")) {
            case .success(let f): framing = f
            case .failure(let problem): return fail(context, .badRequest, problem.code, "\(problem)", close: true)
            }
            let target: RequestTarget
            switch RequestTarget.normalize(head.target, escaped: config.escapedSeparators) {
            case .success(let t): target = t
            case .failure(let problem): return fail(context, .badRequest, "bad_path", "\(problem)", close: true)
            }
            let service: ServiceRuntime
            switch shared.route(head, path: target.path) {
            case .success(let s): service = s
            case .failure(let e): return fail(context, e.status, e.code, e.message, close: framing.hasBody || !head.scan.keepAlive)
            }
            if case .length(let length) = framing, length > config.maxBodyBytes {
                return fail(context, .payloadTooLarge, "body_too_large", "the request body exceeds \(config.maxBodyBytes) bytes", close: true)
            }
            state = .reading(head, context.channel.allocator.buffer(capacity: 0), service: service, target: target)
        case (.body(var chunk), .reading(let head, var body, let service, let target)):
            guard body.readableBytes + chunk.readableBytes <= shared.config.maxBodyBytes else {
                return fail(context, .payloadTooLarge, "body_too_large", "the request body exceeds \(shared.config.maxBodyBytes) bytes", close: true)
            }
            body.writeBuffer(&chunk)
            state = .reading(head, body, service: service, target: target)
        case (.end, .reading(let head, let body, let service, let target)):
            state = .forwarding
            start(context, head, body, service, target)
        default:
            break
        }
    }

    // MARK: Attempts

    /// The request as it goes upstream (every attempt sends it; a token is added per attempt).
    struct Exchange {
        var head: EgressRequestHead
        var body: ByteBuffer
        var service: ServiceRuntime
        var keepAlive: Bool
        /// The HTTP version the app spoke (an HTTP/1.0 app gets no chunked framing).
        var version: HTTPVersion
    }

    private func start(_ context: ChannelHandlerContext, _ head: ScannedRequestHead, _ body: ByteBuffer, _ service: ServiceRuntime, _ target: RequestTarget) {
        let now = shared.clock.now
        // Each attempt's timeout is the engine's, as in the simulator; the connection's own response
        // timeout (the same length) still bounds a pause in the middle of an answer.
        let settings = EgressExchange.Settings(service: service.config.name, deadline: service.requestTimeout,
                                               attemptTimeout: service.connections.settings.responseTimeout, usesToken: service.token != nil)
        var exchange = EgressExchange(method: head.method.text, settings: settings, traceparent: head.first("traceparent"),
                                      tracestate: head.first("tracestate"), now: now, random: &random)
        // An allow-listed origin is another host: it gets its own authority as Host (virtual hosting,
        // and the name TLS verifies), not the one the app used to reach the sidecar.
        var host: String?
        if shared.allowedOrigins.contains(service.config.name), let origin = FetchURL(service.config.name) {
            let defaultPort = origin.secure ? 443 : 80
            host = origin.port == defaultPort ? origin.host : "\(origin.host):\(origin.port)"
        }
        let upstream = EgressRequestHead(app: head, target: target.originForm, traceparent: exchange.upstreamTraceparent,
                                         tracestate: exchange.upstreamTracestate, host: host, rules: service.config.headers.request,
                                         bodyLength: body.readableBytes)
        let ex = Exchange(head: upstream, body: body, service: service, keepAlive: head.scan.keepAlive, version: head.version)
        let actions = service.decisions.withLockedValue { exchange.start(pool: &$0.pool, now: now, random: &$0.random) }
        self.exchange = exchange
        forwarding = ex
        perform(actions, context, ex)
    }

    /// Reports `event` to the request's ``EgressExchange`` (under the service's lock, which the
    /// decision holds only while it runs) and carries out what it answers.
    private func deliver(_ event: EgressExchange.Event, _ context: ChannelHandlerContext, _ ex: Exchange) {
        guard var exchange else { return }
        let now = shared.clock.now
        let actions = ex.service.decisions.withLockedValue { exchange.handle(event, pool: &$0.pool, now: now, random: &$0.random) }
        self.exchange = exchange
        perform(actions, context, ex)
    }

    /// The driver's part: each action becomes a token fetch, a connection and its writes, a timer,
    /// or an answer. Nothing here decides anything.
    private func perform(_ actions: [EgressExchange.Action], _ context: ChannelHandlerContext, _ ex: Exchange) {
        let name = ex.service.config.name
        for action in actions {
            switch action {
            case .fetchToken:
                guard let source = ex.service.token else { continue }
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                source.token(on: context.eventLoop).whenComplete { result in
                    let (handler, context) = bound.value
                    switch result {
                    case .success(let token): handler.deliver(.tokenReady(token), context, ex)
                    case .failure(let error): handler.deliver(.tokenFailed("\(error)"), context, ex)
                    }
                }
            case .send(let pick, let token):
                send(context, ex, pick, token: token)
            case .arm(let timer, let at, let generation):
                let deadline = NIODeadline.now() + .nanoseconds(max(0, (at - shared.clock.now).nanoseconds))
                if timers.arm(timer, .init(at: deadline, generation: generation, payload: ex)) {
                    schedule(timer, at: deadline, context)
                }
            case .abandonAttempt:
                current?.connection?.abandon()
                current = nil
            case .retrying:
                shared.metrics.service(name).retries.increment()
            case .poolEvents(let events):
                for e in events {
                    shared.logger.notice("egress \(name): \(e)")
                    shared.metrics.record(name, e)
                }
            case .tokenRejected(let token):
                ex.service.token?.rejected(token)
            case .relay(let status, _):
                guard let attempt = current, let head = attempt.head else { continue }
                endRequest()
                shared.metrics.finished("egress", status: status, seconds: (shared.clock.now - attempt.started).seconds, service: name)
                let (relayed, closeAfter) = ProxyHeaders.relayedHead(scanned: head, rules: ex.service.config.headers.response,
                                                                     requestVersion: ex.version, keepAlive: ex.keepAlive)
                attempt.closeAfterAnswer = closeAfter
                attempt.streaming = true
                wire.send(.relayed(consume relayed))
                if !context.channel.isWritable { attempt.connection?.pauseReading() }
            case .refuse(let refusal):
                let seconds = exchange.map { (shared.clock.now - $0.started).seconds } ?? 0
                endRequest()
                if refusal.code == "no_healthy_endpoint" { shared.metrics.service(name).noEndpoint.increment() }
                shared.metrics.finished("egress", status: refusal.status, seconds: seconds, service: name)
                fail(context, HTTPResponseStatus(statusCode: refusal.status), refusal.code, refusal.message, close: !ex.keepAlive)
            }
        }
    }

    private func send(_ context: ChannelHandlerContext, _ ex: Exchange, _ pick: UpstreamPool.Pick, token: String?) {
        let service = ex.service
        let now = shared.clock.now
        let attempt = EgressAttempt(handler: self, exchange: ex, pick: pick, token: token, started: now)
        current = attempt
        guard let target = service.sockets.withLockedValue({ $0[pick.address] }) else {
            // Discovery listed it but no address was resolved for it: an attempt that never left.
            return attemptFailed(attempt, TransportError(.connectRefused, "no address for \(pick.address)"), requestSent: false)
        }
        let head = ex.head.encoded(token: token)
        let pool = service.connections.pool(for: context.eventLoop, target: target, host: service.hostName(for: pick.address))
        let timeout = pool.settings.responseTimeout
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pool.acquire { result in
            let handler = bound.value
            guard handler.current === attempt else {
                if case .success(let c) = result { c.abandon() }  // the attempt was abandoned meanwhile
                return
            }
            switch result {
            case .success(let connection):
                attempt.connection = connection
                connection.start(head, sink: attempt, timeout: timeout)
                if ex.body.readableBytes > 0 { connection.sendBody(ex.body) }
                connection.sendEnd()
            case .failure(let error):
                handler.attemptFailed(attempt, error, requestSent: false)
            }
        }
    }

    /// The request was answered, refused or abandoned: its exchange is over and its timers go.
    private func endRequest() {
        exchange = nil
        forwarding = nil
        timers.disarmAll()
    }

    private func schedule(_ timer: EgressExchange.Timer, at deadline: NIODeadline, _ context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.timerTaskFired(timer, context)
        }
        timers.scheduled(timer, task, at: deadline)
    }

    private func timerTaskFired(_ timer: EgressExchange.Timer, _ context: ChannelHandlerContext) {
        let (due, later) = timers.fired(timer, now: .now())
        if let later { return schedule(timer, at: later, context) }
        guard let due else { return }
        deliver(.timerFired(timer, generation: due.generation), context, due.payload)
    }

    /// The attempt's response head: the exchange decides (a retry drops the rest of this answer
    /// with its connection; otherwise the answer streams to the app from here on).
    fileprivate func attemptHead(_ attempt: EgressAttempt, _ head: ScannedResponseHead) {
        guard current === attempt, let context else { return }
        attempt.head = head
        deliver(.attemptHead(status: head.status), context, attempt.exchange)
    }

    fileprivate func attemptBody(_ attempt: EgressAttempt, _ chunk: ByteBuffer) {
        guard current === attempt, attempt.streaming else { return }
        wire.send(.body(.byteBuffer(chunk)))
    }

    fileprivate func attemptReadComplete(_ attempt: EgressAttempt) {
        guard current === attempt, attempt.streaming else { return }
        context?.flush()
    }

    fileprivate func attemptEnded(_ attempt: EgressAttempt) {
        guard current === attempt, attempt.streaming, let context else { return }
        current = nil
        if !attempt.closeAfterAnswer {
            wire.sendAndFlush(.end)
            answered(context, close: false)
        } else {
            state = .closing
            wire.sendAndClose(.end)
        }
    }

    fileprivate func attemptFailed(_ attempt: EgressAttempt, _ error: TransportError, requestSent: Bool) {
        guard current === attempt, let context else { return }
        if attempt.streaming {
            current = nil
            state = .closing
            context.close(promise: nil)  // the answer broke off midway: the app must see it broken
            return
        }
        current = nil
        deliver(.attemptFailed(error.kind, requestSent: requestSent), context, attempt.exchange)
    }

    // MARK: Responses

    private func fail(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ code: String, _ message: String, close: Bool) {
        let body = ErrorResponse(status: status, code: code, message: message).body(allocator: context.channel.allocator)
        respond(context, status, [("content-type", "application/json")], body, close: close, method: .GET)
    }

    private func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ headers: [(String, String)], _ body: ByteBuffer, close: Bool, method: HTTPMethod) {
        ResponseWriter.write(wire, status: status, headers: headers, body: body, close: close, method: method)
        answered(context, close: close)
    }

    /// The request is answered: the connection closes, or takes the next request (queued ones first).
    private func answered(_ context: ChannelHandlerContext, close: Bool) {
        if close {
            state = .closing
            return
        }
        // A refused head (with no body: else the connection closes) still has its end to come; in
        // `.idle` that end is dropped like any stray part.
        state = .idle
        drainQueue(context)
    }
}

/// One attempt of an egress request: the sink of its upstream connection, forwarding to the handler
/// (which ignores an attempt that is no longer current).
final class EgressAttempt: UpstreamResponseSink {
    private weak var handler: EgressHandler?
    let exchange: EgressHandler.Exchange
    let pick: UpstreamPool.Pick
    /// The bearer token this attempt carries (so a 401 can retire it).
    let token: String?
    let started: MeshInstant
    var connection: UpstreamConnection?
    /// The answer's head, kept while the exchange decides whether it is the app's.
    var head: ScannedResponseHead?
    /// The answer is being streamed to the app (no retry any more).
    var streaming = false
    /// The connection closes after the answer (the app asked, or an HTTP/1.0 app gets an answer
    /// without a length).
    var closeAfterAnswer = false

    init(handler: EgressHandler, exchange: EgressHandler.Exchange, pick: UpstreamPool.Pick, token: String?, started: MeshInstant) {
        self.handler = handler
        self.exchange = exchange
        self.pick = pick
        self.token = token
        self.started = started
    }

    func upstreamHead(_ head: ScannedResponseHead) { handler?.attemptHead(self, head) }
    func upstreamBody(_ chunk: ByteBuffer) { handler?.attemptBody(self, chunk) }
    func upstreamEnd() { handler?.attemptEnded(self) }
    func upstreamFailed(_ error: TransportError, requestSent: Bool) { handler?.attemptFailed(self, error, requestSent: requestSent) }
    func upstreamReadComplete() { handler?.attemptReadComplete(self) }
}
