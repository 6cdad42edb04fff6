import HTTPSidecar
import Logging
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The egress services' decision state, shared by all connections (each pool behind its own lock;
/// the lock is held only for a decision, never across I/O).
final class EgressShared: Sendable {
    let config: EgressConfig
    let clock: any MeshClock
    let pools: [String: NIOLockedValueBox<(pool: UpstreamPool, random: SeededRandom)>]
    let addresses: [String: SocketAddress]
    let connections: PoolRegistry
    let logger: Logger
    let metrics: SidecarMetrics

    init(config: EgressConfig, clock: any MeshClock, logger: Logger, metrics: SidecarMetrics) throws {
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self.logger = logger
        var system = SystemRandom()
        var pools: [String: NIOLockedValueBox<(pool: UpstreamPool, random: SeededRandom)>] = [:]
        var addresses: [String: SocketAddress] = [:]
        for s in config.services {
            pools[s.name] = NIOLockedValueBox((UpstreamPool(s.pool, endpoints: s.endpoints, now: clock.now), SeededRandom(seed: system.next())))
            for e in s.endpoints { addresses[e.description] = try SocketAddress.makeAddressResolvingHost(e.host, port: e.port) }
        }
        self.pools = pools
        self.addresses = addresses
        self.connections = PoolRegistry(settings: ConnectionPoolSettings(
            connectTimeout: config.connectTimeout, responseTimeout: config.attemptTimeout, maxIdle: config.maxIdlePerEndpoint))
    }

    /// Which service a request names: the `service_id` header, else a service named like the `Host`, else a path prefix.
    func service(for head: HTTPRequestHead) -> String? {
        if let id = head.headers.first(name: "service_id") { return id }
        if let host = head.headers.first(name: "host")?.split(separator: ":").first.map(String.init), pools[host] != nil { return host }
        return config.pathRoutes.filter { head.uri.hasPrefix($0.prefix) }.max { $0.prefix.count < $1.prefix.count }?.service
    }
}

/// One app connection to the egress listener: routes each request to a service and runs the
/// attempts the service's ``UpstreamPool`` decides (endpoint choice, retries, backoff, budget).
final class EgressHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case reading(HTTPRequestHead, ByteBuffer, service: String)
        case forwarding
        case closing
    }

    private let shared: EgressShared
    private var state = State.idle

    init(shared: EgressShared) { self.shared = shared }

    /// A protocol error (malformed framing, smuggling attempt) was already answered with 400 by NIO's
    /// error handler; the connection must not be used again.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            if head.headers.contains(name: "service_url") {
                return fail(context, .forbidden, "service_url_not_allowed", "service_url is not on the allow-list", close: head.hasBody || !head.isKeepAlive)
            }
            guard let service = shared.service(for: head) else {
                return fail(context, .notFound, "unknown_service", "name the target with a service_id header, a service host name or a mapped path", close: head.hasBody || !head.isKeepAlive)
            }
            guard shared.pools[service] != nil else {
                return fail(context, .notFound, "unknown_service", "no service called \(service) is configured", close: head.hasBody || !head.isKeepAlive)
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
        var service: String
        var deadline: MeshInstant
        var attempts = 0
        var tried: [MeshAddress] = []
        var keepAlive: Bool
    }

    private func start(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ body: ByteBuffer, _ service: String) {
        var upstream = head
        ProxyHeaders.removeHopByHop(&upstream.headers)
        upstream.headers.remove(name: "service_id")
        upstream.headers.remove(name: "content-length")
        if body.readableBytes > 0 || head.method == .POST || head.method == .PUT || head.method == .PATCH {
            upstream.headers.add(name: "content-length", value: String(body.readableBytes))
        }
        upstream.version = .http1_1
        let now = shared.clock.now
        shared.pools[service]!.withLockedValue { $0.pool.requestArrived(now: now) }
        attempt(context, Exchange(head: upstream, body: body, service: service, deadline: now + shared.config.requestTimeout, keepAlive: head.isKeepAlive))
    }

    private func attempt(_ context: ChannelHandlerContext, _ exchange: Exchange) {
        var ex = exchange
        let now = shared.clock.now
        let box = shared.pools[ex.service]!
        guard let pick = box.withLockedValue({ state in state.pool.pick(now: now, exclude: ex.tried, random: &state.random) }) else {
            shared.metrics.service(ex.service).noEndpoint.increment()
            shared.metrics.finished("egress", status: 503, seconds: 0)
            return fail(context, .serviceUnavailable, "no_healthy_endpoint", "every endpoint of \(ex.service) is ejected, open or gone", close: !ex.keepAlive)
        }
        ex.attempts += 1
        ex.tried.append(pick.address)
        let target = shared.addresses[pick.address.description]!
        let pool = shared.connections.pool(for: context.eventLoop, target: target)
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
        let box = shared.pools[ex.service]!
        let (events, decision) = box.withLockedValue { state -> ([UpstreamPool.Event], RetryDecision?) in
            let events = state.pool.record(pick.address, outcome, latency: now - started, now: now)
            guard outcome != .success else { return (events, nil) }
            let d = state.pool.retryDecision(method: ex.head.method.rawValue, attempt: ex.attempts, failure: outcome,
                                             requestNeverSent: neverSent, now: now, timeLeft: ex.deadline - now, random: &state.random)
            return (events, d)
        }
        for e in events {
            shared.logger.notice("egress \(ex.service): \(e)")
            shared.metrics.record(ex.service, e)
        }
        switch decision {
        case .retry(let delay)?:
            shared.metrics.service(ex.service).retries.increment()
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) {
                let (handler, context) = bound.value
                handler.attempt(context, ex)
            }
        default:
            switch result {
            case .success(let r):
                shared.metrics.finished("egress", status: Int(r.head.status.code), seconds: (now - started).seconds)
                var headers = r.head.headers
                ProxyHeaders.removeHopByHop(&headers)
                respond(context, r.head.status, headers.map { ($0.name, $0.value) }, r.body, close: !ex.keepAlive, method: ex.head.method)
            case .failure(let error):
                let timedOut: Bool
                if let e = error as? TransportError, e.kind == .closed, e.detail.contains("did not answer") { timedOut = true } else { timedOut = false }
                shared.metrics.finished("egress", status: timedOut ? 504 : 502, seconds: (now - started).seconds)
                fail(context, timedOut ? .gatewayTimeout : .badGateway, timedOut ? "upstream_timeout" : "upstream_unavailable",
                     "\(ex.service) failed after \(ex.attempts) attempt(s): \(error)", close: !ex.keepAlive)
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
