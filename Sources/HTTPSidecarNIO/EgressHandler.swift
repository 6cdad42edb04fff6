import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The current egress generation, read by each connection at the start of each request.
final class EgressGeneration: Sendable {
    private let box: NIOLockedValueBox<EgressShared>
    init(_ first: EgressShared) { box = NIOLockedValueBox(first) }
    var current: EgressShared { box.withLockedValue { $0 } }
    func replace(_ next: EgressShared) { box.withLockedValue { $0 = next } }
}

/// One app connection to the egress listener: routes each request to a service and runs the
/// attempts the service's ``UpstreamPool`` decides (endpoint choice, retries, backoff, budget).
final class EgressHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case reading(HTTPRequestHead, ByteBuffer, service: ServiceRuntime)
        case forwarding
        case closing
    }

    private let generation: EgressGeneration
    private var shared: EgressShared
    private var state = State.idle

    init(generation: EgressGeneration) {
        self.generation = generation
        self.shared = generation.current
    }

    /// A protocol error (malformed framing, smuggling attempt, oversized head): answered with 400 or
    /// 431 when no response is under way, and the connection is closed either way.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let started: Bool
        switch state {
        case .idle, .reading: started = false
        case .forwarding, .closing: started = true
        }
        state = .closing
        ProtocolErrors.answer(context, error, responseStarted: started)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            shared = generation.current
            let service: ServiceRuntime
            switch shared.route(head) {
            case .success(let s): service = s
            case .failure(let e): return fail(context, e.status, e.code, e.message, close: head.hasBody || !head.isKeepAlive)
            }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > shared.config.maxBodyBytes {
                return fail(context, .payloadTooLarge, "body_too_large", "the request body exceeds \(shared.config.maxBodyBytes) bytes", close: true)
            }
            state = .reading(head, context.channel.allocator.buffer(capacity: 0), service: service)
        case (.body(var chunk), .reading(let head, var body, let service)):
            guard body.readableBytes + chunk.readableBytes <= shared.config.maxBodyBytes else {
                return fail(context, .payloadTooLarge, "body_too_large", "the request body exceeds \(shared.config.maxBodyBytes) bytes", close: true)
            }
            body.writeBuffer(&chunk)
            state = .reading(head, body, service: service)
        case (.end, .reading(let head, let body, let service)):
            state = .forwarding
            start(context, head, body, service)
        default:
            break
        }
    }

    // MARK: Attempts

    private struct Exchange {
        var head: HTTPRequestHead
        var body: ByteBuffer
        var service: ServiceRuntime
        var deadline: MeshInstant
        var attempts = 0
        var tried: [MeshAddress] = []
        var keepAlive: Bool
        /// The bearer token sent (so a 401 can retire it).
        var token: String?
    }

    private func start(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer, _ service: ServiceRuntime) {
        var upstream = head
        ProxyHeaders.removeHopByHop(&upstream.headers)
        upstream.headers.remove(name: "service_id")
        upstream.headers.remove(name: "service_url")
        upstream.headers.remove(name: "content-length")
        if body.readableBytes > 0 || head.method == .POST || head.method == .PUT || head.method == .PATCH {
            upstream.headers.add(name: "content-length", value: String(body.readableBytes))
        }
        service.config.headers.request.apply(to: &upstream.headers)
        upstream.version = .http1_1
        let now = shared.clock.now
        service.decisions.withLockedValue { $0.pool.requestArrived(now: now) }
        attempt(context, Exchange(head: upstream, body: body, service: service, deadline: now + service.requestTimeout, keepAlive: head.isKeepAlive))
    }

    /// Asks the service's token source before every attempt (a retry late in a long deadline must
    /// not carry a token that expired meanwhile); cached tokens come back at once.
    private func attempt(_ context: ChannelHandlerContext, _ exchange: Exchange) {
        guard let source = exchange.service.token else { return send(context, exchange) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        source.token(on: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success(let token):
                var ex = exchange
                ex.token = token
                ex.head.headers.replaceOrAdd(name: "authorization", value: "Bearer \(token)")
                handler.send(context, ex)
            case .failure(let error):
                handler.shared.metrics.finished("egress", status: 503, seconds: 0, service: exchange.service.config.name)
                handler.fail(context, .serviceUnavailable, "token_unavailable", "no access token for \(exchange.service.config.name): \(error)", close: !exchange.keepAlive)
            }
        }
    }

    private func send(_ context: ChannelHandlerContext, _ exchange: Exchange) {
        var ex = exchange
        let now = shared.clock.now
        let service = ex.service
        let name = service.config.name
        guard let pick = service.decisions.withLockedValue({ state in state.pool.pick(now: now, exclude: ex.tried, random: &state.random) }),
              let target = service.sockets.withLockedValue({ $0[pick.address] }) else {
            shared.metrics.service(name).noEndpoint.increment()
            shared.metrics.finished("egress", status: 503, seconds: 0, service: name)
            return fail(context, .serviceUnavailable, "no_healthy_endpoint", "every endpoint of \(name) is ejected, open or gone", close: !ex.keepAlive)
        }
        ex.attempts += 1
        ex.tried.append(pick.address)
        let pool = service.connections.pool(for: context.eventLoop, target: target, host: service.hostName(for: pick.address))
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let started = now
        let sent = ex
        pool.send(ex.head, body: ex.body).whenComplete { result in
            let (handler, context) = bound.value
            handler.finished(context, sent, pick, started, result)
        }
    }

    private func finished(_ context: ChannelHandlerContext, _ ex: Exchange, _ pick: UpstreamPool.Pick, _ started: MeshInstant, _ result: Result<AppResponse, any Error>) {
        let now = shared.clock.now
        let outcome: UpstreamOutcome
        var neverSent = false
        switch result {
        case .success(let r): outcome = UpstreamOutcome(responseStatus: Int(r.head.status.code))
        case .failure(let e as TransportError):
            outcome = .gatewayError(e.kind)
            neverSent = e.requestNeverSent
        case .failure: outcome = .gatewayError(nil)
        }
        let name = ex.service.config.name
        if case .success(let r) = result, r.head.status == .unauthorized, let token = ex.token { ex.service.token?.rejected(token) }
        let (events, decision) = ex.service.decisions.withLockedValue { state -> ([UpstreamPool.Event], RetryDecision?) in
            let events = state.pool.record(pick.address, outcome, latency: now - started, now: now)
            guard outcome != .success else { return (events, nil) }
            let d = state.pool.retryDecision(method: ex.head.method.rawValue, attempt: ex.attempts, failure: outcome,
                                             requestNeverSent: neverSent, now: now, timeLeft: ex.deadline - now, random: &state.random)
            return (events, d)
        }
        for e in events {
            shared.logger.notice("egress \(name): \(e)")
            shared.metrics.record(name, e)
        }
        switch decision {
        case .retry(let delay)?:
            shared.metrics.service(name).retries.increment()
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) {
                let (handler, context) = bound.value
                handler.attempt(context, ex)
            }
        default:
            switch result {
            case .success(let r):
                shared.metrics.finished("egress", status: Int(r.head.status.code), seconds: (now - started).seconds, service: name)
                var headers = r.head.headers
                ProxyHeaders.removeHopByHop(&headers)
                ex.service.config.headers.response.apply(to: &headers)
                respond(context, r.head.status, headers.map { ($0.name, $0.value) }, r.body, close: !ex.keepAlive, method: ex.head.method)
            case .failure(let error):
                let timedOut: Bool
                if let e = error as? TransportError, e.kind == .closed, e.detail.contains("did not answer") { timedOut = true } else { timedOut = false }
                shared.metrics.finished("egress", status: timedOut ? 504 : 502, seconds: (now - started).seconds, service: name)
                fail(context, timedOut ? .gatewayTimeout : .badGateway, timedOut ? "upstream_timeout" : "upstream_unavailable",
                     "\(name) failed after \(ex.attempts) attempt(s): \(error)", close: !ex.keepAlive)
            }
        }
    }

    // MARK: Responses

    private func fail(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ code: String, _ message: String, close: Bool) {
        let body = ErrorResponse(status: status, code: code, message: message).body(allocator: context.channel.allocator)
        respond(context, status, [("content-type", "application/json")], body, close: close, method: .GET)
    }

    private func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ headers: [(String, String)], _ body: ByteBuffer, close: Bool, method: HTTPMethod) {
        state = close ? .closing : .idle
        ResponseWriter.write(context, status: status, headers: headers, body: body, close: close, method: method)
    }
}
