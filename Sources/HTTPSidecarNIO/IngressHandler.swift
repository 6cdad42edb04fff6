import HTTPClientNIO
import HTTPSidecarEngines
import Foundation
import HTTPSidecar
import Logging
import MeshCore
import NIOCore
import SidecarAuth

/// The NIO driver of one ingress client connection: it runs the connection's ``IngressConnection``
/// engine and does only what the engine asks (see ``IngressConnectionIO``): moves the client's
/// bytes and one app connection's (from the loop's keep-alive pool, ``UpstreamConnection``) in and
/// out, holds back reads, keeps one timer, runs JWT signature checks off the loop, and keeps the
/// metrics and access log. Every decision is the engine's.
final class IngressHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamResponseSink, IngressConnectionIO {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    let generation: Generation<IngressShared>
    /// The configuration generation of the request being handled (read afresh at each request head).
    var shared: IngressShared
    /// The app pool of this loop for ``shared``'s generation, looked up once per generation.
    var pool: UpstreamConnectionPool?
    var poolGeneration: ObjectIdentifier?
    /// `http` or `https`: the listener's scheme, for `X-Forwarded-Proto`.
    let scheme: String
    var engine: IngressConnection?
    var context: ChannelHandlerContext?
    /// The client's connection: writes, closes, and reads held back while the engine pauses them.
    let client = ClientChannel()
    /// The app connection of the exchange under way.
    var upstream: UpstreamConnection?
    var wakeTimer: Scheduled<Void>?
    /// The client's address, read once per connection (each read is a getpeername system call).
    var clientAddress: String?

    init(generation: Generation<IngressShared>, scheme: String) {
        self.generation = generation
        self.shared = generation.current
        self.scheme = scheme
    }

    // MARK: Channel events, on to the engine

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        client.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        client.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        clientAddress = context.remoteAddress?.ipAddress
        // Ids come from a fast generator seeded once per connection from the system: a getrandom
        // system call per id cost a fifth of the proxy's time.
        var system = SystemRandom()
        let engine = IngressConnection(io: self, scheme: scheme, client: clientAddress, seed: system.next())
        self.engine = engine
        engine.opened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        wakeTimer?.cancel()
        wakeTimer = nil
        engine?.clientClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let engine { engine.failed(error) } else { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        engine?.clientBytes(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        engine?.clientReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        engine?.clientWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) { client.read(context) }

    // MARK: The app connection's answer (UpstreamResponseSink)

    func upstreamHead(_ head: ScannedResponseHead) { engine?.appHead(head) }
    func upstreamBody(_ chunk: ByteBuffer) { engine?.appBody(chunk) }
    func upstreamReadComplete() { engine?.appReadComplete() }

    func upstreamEnd() {
        upstream = nil  // back in its pool (or closed)
        engine?.appEnd()
    }

    func upstreamFailed(_ error: TransportError, requestSent: Bool) {
        upstream = nil  // closed
        engine?.appFailed(error)
    }

    func upstreamWritabilityChanged(_ writable: Bool) { engine?.appWritabilityChanged(writable) }

    // MARK: IngressConnectionIO

    var now: MeshInstant { shared.clock.now }

    func currentPolicy() -> IngressPolicy {
        shared = generation.current
        return shared.policy
    }

    func writeToClient(_ bytes: IOData) { client.write(bytes) }
    func flushClient() { client.flush() }
    func closeClient(afterWrites: Bool) { client.close(afterWrites: afterWrites) }
    var clientIsWritable: Bool { client.isWritable }
    func clientReads(paused: Bool) { client.reads(paused: paused) }

    func wake(at instant: MeshInstant) {
        guard let context else { return }
        let deadline = NIODeadline.now() + .nanoseconds((instant - shared.clock.now).nanoseconds)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        wakeTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let handler = bound.value
            handler.wakeTimer = nil
            handler.engine?.wakeUp()
        }
    }

    func connectToApp() -> Bool {
        guard let context else { return false }
        let pool = appPool(context)
        if let idle = pool.takeIdle() {
            upstream = idle
            return true
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pool.connect { result in
            let handler = bound.value
            switch result {
            case .success(let connection):
                handler.upstream = connection
                if handler.engine?.appConnected() != true {  // the client left meanwhile
                    handler.upstream = nil
                    connection.abandon()
                }
            case .failure(let error):
                handler.engine?.appFailed(error)
            }
        }
        return false
    }

    func appPool(_ context: ChannelHandlerContext) -> UpstreamConnectionPool {
        let id = ObjectIdentifier(shared.appPools)
        if let pool, poolGeneration == id { return pool }
        let fresh = shared.appPools.pool(for: context.eventLoop, target: shared.app)
        pool = fresh
        poolGeneration = id
        return fresh
    }

    func startApp(_ head: EncodedRequestHead, timeout: Duration) {
        upstream?.start(head, sink: self, timeout: timeout)
    }

    func sendToApp(_ part: UpstreamRequestPart) {
        switch part {
        case .body(let chunk): upstream?.sendBody(chunk)
        case .end: upstream?.sendEnd()
        case .head: break
        }
    }

    func flushApp() { upstream?.flush() }

    func abandonApp() {
        upstream?.abandon()
        upstream = nil
    }

    func appReads(paused: Bool) {
        if paused { upstream?.pauseReading() } else { upstream?.resumeReading() }
    }

    var appIsWritable: Bool { upstream?.isWritable ?? false }

    /// At once for a token seen before (or a missing one), else the signature is checked off the
    /// event loop and the verdict comes back on it.
    func verify(_ jwt: JWTAuthenticator, authorization: String?, path: String) -> Result<VerifiedToken, AuthFailure>? {
        if let verdict = jwt.authenticateWithoutWaiting(authorization: authorization, path: path) { return verdict }
        guard let context else { return nil }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await jwt.authenticate(authorization: authorization, path: path)
        }.whenComplete { result in
            bound.value.engine?.verified(result)
        }
        return nil
    }

    func exchangeBegan() {
        shared.metrics.inFlight("ingress", shared.inFlight.increment())
    }

    func answeredAtHead(_ head: ScannedRequestHead, status: Int) {
        shared.metrics.finished("ingress", status: status, seconds: 0)
        guard let log = shared.policy.services.accessLog else { return }
        // Refused before the path was judged: the path is logged as sent (up to its query).
        let target = head.target
        let path = target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
        log.record([
            ("time", .string(Date().formatted(.iso8601))), ("client", .string(clientAddress ?? "")),
            ("method", .string(head.method.text)), ("path", .string(log.loggedTarget(path: path, uri: target))), ("status", .int(status)),
            ("duration_ms", .double(0)), ("bytes_in", .int(0)),
            ("correlation_id", .string("")), ("trace_id", .string("")),
            ("user_agent", .string(head.first("user-agent") ?? "")),
        ])
    }

    func exchangeFinished(_ ex: IngressExchange, status: Int) {
        shared.metrics.inFlight("ingress", shared.inFlight.decrement())
        let elapsed = shared.clock.now - ex.started
        shared.metrics.finished("ingress", status: status, seconds: elapsed.seconds)
        if let route = ex.route { shared.metrics.routeFinished(route.prefix, status: status) }
        if let log = shared.policy.services.accessLog {
            log.record([
                ("time", .string(Date().formatted(.iso8601))), ("client", .string(clientAddress ?? "")),
                ("method", .string(ex.head.method.text)), ("path", .string(log.loggedTarget(path: ex.path, uri: ex.head.target))), ("status", .int(status)),
                ("duration_ms", .double(elapsed.seconds * 1000)), ("bytes_in", .int(ex.bodyBytes)),
                ("correlation_id", .string(ex.correlationId)), ("trace_id", .string(ex.traceId)),
                ("user_agent", .string(ex.head.first("user-agent") ?? "")),
            ])
        }
    }
}
