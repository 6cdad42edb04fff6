import KafkaSidecar
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SidecarAuth

/// A request as the REST handlers see it: the head and the whole body.
public struct RESTRequest: Sendable {
    public var method: HTTPMethod
    /// The path without the query.
    public var path: String
    /// The query, percent-decoded, in order.
    public var query: QueryString
    public var headers: HTTPHeaders
    public var body: ByteBuffer
}

/// An answer: status, content type and body.
public struct RESTResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)] = []

    public init(status: Int, contentType: String = "application/json", body: [UInt8], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    /// A JSON error in the light-mesh shape: `{"error":{"code","message"}}` with a stable code.
    public static func error(_ status: Int, _ code: String, _ message: String) -> RESTResponse {
        RESTResponse(status: status, body: JSONText.lightMeshError(code: code, message: message))
    }

    /// A JSON error in the Confluent v2 / Strimzi shape: `{"error_code","message"}`.
    public static func kafkaError(_ status: Int, _ errorCode: Int, _ message: String) -> RESTResponse {
        let text = "{\"error_code\":\(errorCode),\"message\":\(JSONText.quoted(message))}\n"
        return RESTResponse(status: status, contentType: "application/vnd.kafka.v2+json", body: Array(text.utf8))
    }
}

/// Bounds of a REST listener: what one client, or many, can hold of the sidecar.
public struct RESTLimits: Sendable, Hashable {
    /// Largest request body in bytes (larger: 413 and close, the rest unread).
    public var maxBodyBytes = 4 * 1024 * 1024
    /// Open connections at once; one more is closed as soon as it is accepted.
    public var maxConnections = 256
    /// A whole request, from its first byte to its body's end, must arrive within this (else 408
    /// and close): a client trickling a byte at a time cannot pin a body buffer for longer.
    public var requestTimeout: Duration = .seconds(30)
    /// A connection with no request under way is closed after this long.
    public var idleTimeout: Duration = .seconds(60)
    public init() {}
}

/// A small HTTP/1.1 server for the Kafka sidecar's REST and admin listeners: NIO's codec (llhttp),
/// whole bodies up to a limit (413 and close past it), `Expect: 100-continue` answered, keep-alive and
/// in-order pipelining, one routing function, and the bounds of ``RESTLimits``.
public final class RESTServer: Sendable {
    public typealias Route = @Sendable (RESTRequest, any EventLoop) -> EventLoopFuture<RESTResponse>

    private let group: any EventLoopGroup
    private let listen: MeshAddress
    private let limits: RESTLimits
    private let route: Route
    private let authenticator: JWTAuthenticator?
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)
    private let open = NIOLockedValueBox(0)

    /// - Parameter authenticator: when set, every request needs a valid `Authorization: Bearer`
    ///   token (401 `40101`; a missing scope 403 `40301`): a request without one is refused at its
    ///   head, before its body is read.
    public init(listen: MeshAddress, group: any EventLoopGroup, limits: RESTLimits, authenticator: JWTAuthenticator? = nil,
                route: @escaping Route) {
        self.group = group
        self.listen = listen
        self.limits = limits
        self.authenticator = authenticator
        self.route = route
    }

    /// Binds and returns the address bound (port 0 picks a free one).
    public func start() async throws -> MeshAddress {
        let route = self.route, limits = self.limits, open = self.open, authenticator = self.authenticator
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let admitted = open.withLockedValue { n in
                    guard n < limits.maxConnections else { return false }
                    n += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RequestClock(limits: limits))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RESTHandler(route: route, maxBodyBytes: limits.maxBodyBytes,
                                                                                  authenticator: authenticator))
                }
            }
            .bind(host: listen.host, port: listen.port).get()
        self.channel.withLockedValue { $0 = channel }
        return MeshAddress(host: listen.host, port: channel.localAddress?.port ?? listen.port)
    }

    public func stop() async throws {
        try await channel.withLockedValue { $0 }?.close()
    }
}

/// Told by ``RESTHandler`` (as an outbound user event) where its connection is in a request.
enum RequestProgress: Sendable {
    /// The whole request was read; the answer is being made.
    case read
    /// The answer was written; the connection waits for the next request.
    case answered
}

/// The time bounds of one connection, on its raw bytes (before HTTP framing, so a head that never
/// completes is bounded too).
///
/// States: `.idle` (no request under way; closed after the idle timeout) → first byte → `.receiving`
/// (the whole request must arrive by its deadline; else 408 and close) → ``RequestProgress/read`` →
/// `.answering` (no deadline: the route bounds itself) → ``RequestProgress/answered`` → `.idle`.
/// Bytes that arrive while answering (a pipelined request) start its deadline at once.
final class RequestClock: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private enum State { case idle, receiving, answering(pipelined: Bool) }

    private let limits: RESTLimits
    private var state = State.idle
    private var timer: Scheduled<Void>?

    init(limits: RESTLimits) { self.limits = limits }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, limits.idleTimeout, expired: false) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, limits.idleTimeout, expired: false)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .idle:
            state = .receiving
            arm(context, limits.requestTimeout, expired: true)
        case .answering:
            state = .answering(pipelined: true)
        case .receiving:
            break
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let progress = event as? RequestProgress else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        switch (progress, state) {
        case (.read, _):
            timer?.cancel()
            timer = nil
            state = .answering(pipelined: false)
        case (.answered, .answering(let pipelined)):
            // Pipelined bytes already arrived: the next request's clock runs from now.
            state = pipelined ? .receiving : .idle
            arm(context, pipelined ? limits.requestTimeout : limits.idleTimeout, expired: pipelined)
        case (.answered, _):
            break
        }
        promise?.succeed(())
    }

    /// One timer at a time; `expired` tells whether its firing ends a request under way (408) or an
    /// idle connection (a silent close).
    private func arm(_ context: ChannelHandlerContext, _ after: Duration, expired request: Bool) {
        timer?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(after.nanoseconds)) {
            let (clock, context) = bound.value
            clock.timer = nil
            if request, case .receiving = clock.state {
                clock.timedOut(context)
            } else if case .idle = clock.state {
                context.close(promise: nil)
            }
        }
    }

    /// 408 written straight to the socket (the HTTP encoder may be mid-request), then close.
    private func timedOut(_ context: ChannelHandlerContext) {
        let body = "{\"error_code\":408,\"message\":\"the request did not arrive within \(limits.requestTimeout)\"}\n"
        let text = "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n" + body
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(string: text)))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

/// One connection: collects each request, routes it, writes the answer.
final class RESTHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: RESTServer.Route
    private let maxBodyBytes: Int
    private let authenticator: JWTAuthenticator?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var refused = false

    init(route: @escaping RESTServer.Route, maxBodyBytes: Int, authenticator: JWTAuthenticator?) {
        self.route = route
        self.maxBodyBytes = maxBodyBytes
        self.authenticator = authenticator
    }

    /// A protocol error (malformed framing) was already answered with 400 by NIO; close.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            refused = false
            if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                return refuseTooLarge(context)
            }
            // No (or a malformed) token: refused before the body is read; a token is checked at the end.
            if let authenticator, let refusal = Self.refusedAtHead(authenticator, h) {
                refused = true
                self.head = nil
                context.triggerUserOutboundEvent(RequestProgress.read, promise: nil)
                return write(context, refusal, keepAlive: false)
            }
            // The client waits for a go-ahead before sending the body.
            if h.version == .http1_1, let expect = h.headers.first(name: "expect") {
                guard expect.lowercased() == "100-continue" else {
                    refused = true
                    self.head = nil
                    return write(context, .kafkaError(417, 417, "only 'Expect: 100-continue' is understood"), keepAlive: false)
                }
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard !refused else { return }
            if body.readableBytes + chunk.readableBytes > maxBodyBytes { return refuseTooLarge(context) }
            // A body that arrives in one chunk is kept as it is, not copied.
            if body.readableBytes == 0 && body.capacity == 0 {
                body = chunk
            } else {
                body.writeBuffer(&chunk)
            }
        case .end:
            guard let head, !refused else { return }
            self.head = nil
            context.triggerUserOutboundEvent(RequestProgress.read, promise: nil)
            let (path, query) = QueryString.split(target: head.uri)
            let request = RESTRequest(method: head.method, path: String(path), query: query, headers: head.headers, body: body)
            body = ByteBuffer()
            let keepAlive = head.isKeepAlive
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let route = self.route
            let answer: EventLoopFuture<RESTResponse>
            if let authenticator {
                answer = Self.verdict(authenticator, request, on: context.eventLoop).flatMap { verdict in
                    if let failure = Self.failure(verdict) { return context.eventLoop.makeSucceededFuture(Self.refusal(failure)) }
                    return route(request, context.eventLoop)
                }
            } else {
                answer = route(request, context.eventLoop)
            }
            answer.hop(to: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let response): handler.write(context, response, keepAlive: keepAlive)
                case .failure(let error): handler.write(context, .kafkaError(500, 500, "\(error)"), keepAlive: false)
                }
            }
        }
    }

    /// The token's verdict for `request`: at once when no signature check is needed, else off the loop.
    static func verdict(_ authenticator: JWTAuthenticator, _ request: RESTRequest,
                        on loop: any EventLoop) -> EventLoopFuture<Result<VerifiedToken, AuthFailure>> {
        let authorization = request.headers.first(name: "authorization")
        if let verdict = authenticator.authenticateWithoutWaiting(authorization: authorization, path: request.path) {
            return loop.makeSucceededFuture(verdict)
        }
        let path = request.path
        return loop.makeFutureWithTask { await authenticator.authenticate(authorization: authorization, path: path) }
    }

    /// The refusal a head earns before its body is read: two `Authorization` fields (the sidecar would
    /// verify one), or a verdict that needs no signature check (no token, a malformed one, a known
    /// token whose claims fail).
    static func refusedAtHead(_ authenticator: JWTAuthenticator, _ head: HTTPRequestHead) -> RESTResponse? {
        let fields = head.headers["authorization"]
        if fields.count > 1 { return .kafkaError(400, 400, "more than one Authorization field") }
        let path = String(QueryString.split(target: head.uri).path)
        return failure(authenticator.authenticateWithoutWaiting(authorization: fields.first, path: path)).map(refusal)
    }

    static func failure(_ verdict: Result<VerifiedToken, AuthFailure>?) -> AuthFailure? {
        if case .failure(let failure)? = verdict { return failure }
        return nil
    }

    /// A refused token in the Confluent shape: 401 `40101`, or 403 `40301` for a missing scope.
    static func refusal(_ failure: AuthFailure) -> RESTResponse {
        var response = RESTResponse.kafkaError(failure.status, failure.status == 403 ? 40301 : 40101, failure.message)
        response.headers.append(("www-authenticate", failure.wwwAuthenticate))
        return response
    }

    /// 413, then close: the rest of the body is not read.
    private func refuseTooLarge(_ context: ChannelHandlerContext) {
        refused = true
        head = nil
        context.triggerUserOutboundEvent(RequestProgress.read, promise: nil)
        write(context, .kafkaError(413, 413, "the body exceeds \(maxBodyBytes) bytes"), keepAlive: false)
    }

    private func write(_ context: ChannelHandlerContext, _ response: RESTResponse, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(3 + response.headers.count)
        // A 204 has neither a body nor the fields that describe one (RFC 9110 §8.6, §15.3.5).
        if response.status != 204 && response.status != 304 {
            headers.add(name: "content-type", value: response.contentType)
            headers.add(name: "content-length", value: String(response.body.count))
        }
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers))), promise: nil)
        if !response.body.isEmpty && response.status != 204 && response.status != 304 {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in if !keepAlive { channel.close(promise: nil) } }
        context.triggerUserOutboundEvent(RequestProgress.answered, promise: nil)
    }
}
