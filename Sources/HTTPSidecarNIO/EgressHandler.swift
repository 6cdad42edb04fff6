import HTTPClientNIO
import HTTPSidecarEngines
import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore

/// The NIO driver of one app connection to the egress listener: it runs the connection's
/// ``EgressConnection`` engine and does only what the engine asks (see ``EgressConnectionIO``):
/// moves the app's bytes, sends attempts on connections of the service's per-loop pools
/// (``UpstreamConnection``), fetches tokens (``OAuthTokenSource``), keeps the exchange's timers
/// (re-armed lazily, ``LazyTimers``), and keeps the metrics. Every decision is the engine's.
final class EgressHandler: ChannelDuplexHandler, RemovableChannelHandler, EgressConnectionIO {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let generation: Generation<EgressShared>
    private var shared: EgressShared
    private var engine: EgressConnection?
    private var context: ChannelHandlerContext?
    /// The attempt whose answer is awaited or streaming, and its connection once it has one.
    private var attempt: EgressAttempt?
    /// The app's connection: writes, closes, and reads held back while the engine pauses them.
    private let client = ClientChannel()
    /// The exchange's timers, re-armed lazily (a stale firing is dropped by the engine; they are
    /// disarmed when the request ends and cancelled when the connection goes).
    private var timers = LazyTimers<UInt64>()

    init(generation: Generation<EgressShared>) {
        self.generation = generation
        self.shared = generation.current
    }

    // MARK: Channel events, on to the engine

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        client.context = context
        // Trace ids come from a generator seeded once per connection from the system.
        var system = SystemRandom()
        engine = EgressConnection(io: self, seed: system.next())
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        client.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        engine?.clientClosed()
        timers.cancelAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let engine { engine.failed(error) } else { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        engine?.clientBytes(unwrapInboundIn(data))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        engine?.clientWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) { client.read(context) }

    // MARK: EgressConnectionIO: the app's connection

    var now: MeshInstant { shared.clock.now }

    func currentLimits() -> EgressLimits {
        shared = generation.current
        let config = shared.config
        return EgressLimits(maxHeaders: config.maxHeaders, maxBodyBytes: config.maxBodyBytes, escapedSeparators: config.escapedSeparators)
    }

    func route(_ head: ScannedRequestHead, path: String) -> Result<EgressRouting, ErrorResponse> {
        shared.route(head, path: path).map { EgressRouting(service: $0.0, host: $0.host) }
    }

    func writeToClient(_ bytes: IOData) { client.write(bytes) }
    func flushClient() { client.flush() }
    func closeClient(afterWrites: Bool) { client.close(afterWrites: afterWrites) }
    var clientIsWritable: Bool { client.isWritable }
    func clientReads(paused: Bool) { client.reads(paused: paused) }

    // MARK: EgressConnectionIO: attempts

    func sendAttempt(_ id: UInt64, to pick: UpstreamPool.Pick, head: EncodedRequestHead, body: ByteBuffer, service: any EgressService) {
        guard let context, let service = service as? ServiceRuntime else { return }
        let attempt = EgressAttempt(handler: self, id: id)
        self.attempt = attempt
        guard let target = service.sockets.withLockedValue({ $0[pick.address] }) else {
            // Discovery listed it but no address was resolved for it: an attempt that never left.
            return engine?.attemptFailed(id, TransportError(.connectRefused, "no address for \(pick.address)"), requestSent: false) ?? ()
        }
        let pool = service.connections.pool(for: context.eventLoop, target: target, host: service.hostName(for: pick.address))
        let timeout = pool.settings.responseTimeout
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pool.acquire { result in
            let handler = bound.value
            guard handler.attempt === attempt, handler.engine?.wantsAttempt(id) == true else {
                if case .success(let c) = result { c.abandon() }  // the attempt was abandoned meanwhile
                return
            }
            switch result {
            case .success(let connection):
                attempt.connection = connection
                connection.start(head, sink: attempt, timeout: timeout)
                if body.readableBytes > 0 { connection.sendBody(body) }
                connection.sendEnd()
            case .failure(let error):
                handler.attempt = nil
                handler.engine?.attemptFailed(id, error, requestSent: false)
            }
        }
    }

    func abandonAttempt(_ id: UInt64, _ reason: EgressExchange.AbandonReason) {
        guard let attempt, attempt.id == id else { return }
        attempt.connection?.abandon()
        self.attempt = nil
    }

    func attemptReads(_ id: UInt64, paused: Bool) {
        guard let connection = attempt?.connection, attempt?.id == id else { return }
        if paused { connection.pauseReading() } else { connection.resumeReading() }
    }

    /// The current attempt's connection reported `event`.
    fileprivate func attemptEvent(_ from: EgressAttempt, _ event: (EgressConnection) -> Void) {
        guard attempt === from, let engine else { return }
        event(engine)
    }

    fileprivate func attemptOver(_ from: EgressAttempt) {
        if attempt === from { attempt = nil }
    }

    // MARK: EgressConnectionIO: tokens and timers

    func fetchToken(for service: any EgressService, exchange: UInt64) {
        guard let context, let source = (service as? ServiceRuntime)?.token else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        source.token(on: context.eventLoop).whenComplete { result in
            let engine = bound.value.engine
            switch result {
            case .success(let token): engine?.tokenReady(token, exchange: exchange)
            case .failure(let error): engine?.tokenFailed("\(error)", exchange: exchange)
            }
        }
    }

    func arm(_ timer: EgressExchange.Timer, at instant: MeshInstant, generation: UInt64, exchange: UInt64) {
        let deadline = NIODeadline.now() + .nanoseconds(max(0, (instant - shared.clock.now).nanoseconds))
        if timers.arm(timer, .init(at: deadline, generation: generation, payload: exchange)) {
            schedule(timer, at: deadline)
        }
    }

    func disarmTimers() { timers.disarmAll() }

    private func schedule(_ timer: EgressExchange.Timer, at deadline: NIODeadline) {
        guard let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.timerTaskFired(timer) }
        timers.scheduled(timer, task, at: deadline)
    }

    private func timerTaskFired(_ timer: EgressExchange.Timer) {
        let (due, later) = timers.fired(timer, now: .now())
        if let later { return schedule(timer, at: later) }
        guard let due else { return }
        engine?.timerFired(timer, generation: due.generation, exchange: due.payload)
    }

    // MARK: EgressConnectionIO: the books

    func tokenRejected(_ token: String, service: any EgressService) {
        (service as? ServiceRuntime)?.token?.rejected(token)
    }

    func retrying(service: any EgressService) {
        shared.metrics.service(service.exchangeSettings.service).retries.increment()
    }

    func poolEvents(_ events: [UpstreamPool.Event], service: any EgressService) {
        let name = service.exchangeSettings.service
        for e in events {
            shared.logger.notice("egress \(name): \(e)")
            shared.metrics.record(name, e)
        }
    }

    func finished(status: Int, seconds: Double, service: any EgressService, noEndpoint: Bool) {
        let name = service.exchangeSettings.service
        if noEndpoint { shared.metrics.service(name).noEndpoint.increment() }
        shared.metrics.finished("egress", status: status, seconds: seconds, service: name)
    }
}

/// One attempt of an egress request: the sink of its upstream connection, forwarding to the handler
/// (which ignores an attempt that is no longer current).
final class EgressAttempt: UpstreamResponseSink {
    private weak var handler: EgressHandler?
    let id: UInt64
    var connection: UpstreamConnection?

    init(handler: EgressHandler, id: UInt64) {
        self.handler = handler
        self.id = id
    }

    func upstreamHead(_ head: ScannedResponseHead) { handler?.attemptEvent(self) { $0.attemptHead(id, head) } }
    func upstreamBody(_ chunk: ByteBuffer) { handler?.attemptEvent(self) { $0.attemptBody(id, chunk) } }
    func upstreamReadComplete() { handler?.attemptEvent(self) { $0.attemptReadComplete(id) } }

    func upstreamEnd() {
        handler?.attemptEvent(self) { $0.attemptEnded(id) }
        handler?.attemptOver(self)
    }

    func upstreamFailed(_ error: TransportError, requestSent: Bool) {
        handler?.attemptEvent(self) { $0.attemptFailed(id, error, requestSent: requestSent) }
        handler?.attemptOver(self)
    }
}

extension ServiceRuntime: EgressService {
    var exchangeSettings: EgressExchange.Settings {
        // Each attempt's timeout is the engine's, as in the simulator; the connection's own response
        // timeout (the same length) still bounds a pause in the middle of an answer.
        EgressExchange.Settings(service: config.name, deadline: requestTimeout, attemptTimeout: connections.settings.responseTimeout,
                                usesToken: token != nil)
    }
    var requestRules: HeaderRules { config.headers.request }
    var responseRules: HeaderRules { config.headers.response }

    func decide(_ decision: (inout UpstreamPool, inout SeededRandom) -> [EgressExchange.Action]) -> [EgressExchange.Action] {
        decisions.withLockedValue { decision(&$0.pool, &$0.random) }
    }
}
