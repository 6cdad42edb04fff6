import KafkaSidecar
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request as the REST handlers see it: the head and the whole body.
public struct RESTRequest: Sendable {
    public var method: HTTPMethod
    /// The path without the query.
    public var path: String
    public var query: [String: String]
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

    /// A JSON error in the sidecar's shape: `{"error":{"code","message"}}` with a stable code.
    public static func error(_ status: Int, _ code: String, _ message: String) -> RESTResponse {
        var text = "{\"error\":{\"code\":\""
        text += code
        text += "\",\"message\":"
        text += JSONText.quoted(message)
        text += "}}\n"
        return RESTResponse(status: status, body: Array(text.utf8))
    }
}

/// A small HTTP/1.1 server for the Kafka sidecar's REST and admin listeners: NIO's codec (llhttp),
/// whole bodies up to a limit (413 and close past it), keep-alive and in-order pipelining, and one
/// routing function.
public final class RESTServer: Sendable {
    public typealias Route = @Sendable (RESTRequest, any EventLoop) -> EventLoopFuture<RESTResponse>

    private let group: any EventLoopGroup
    private let listen: MeshAddress
    private let maxBodyBytes: Int
    private let idleTimeout: Duration
    private let route: Route
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)

    /// - Parameter idleTimeout: a connection silent this long is closed.
    public init(listen: MeshAddress, group: any EventLoopGroup, maxBodyBytes: Int, idleTimeout: Duration = .seconds(60), route: @escaping Route) {
        self.idleTimeout = idleTimeout
        self.group = group
        self.listen = listen
        self.maxBodyBytes = maxBodyBytes
        self.route = route
    }

    /// Binds and returns the address bound (port 0 picks a free one).
    public func start() async throws -> MeshAddress {
        let route = self.route, limit = maxBodyBytes, idle = TimeAmount.nanoseconds(idleTimeout.nanoseconds)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // A connection that sends nothing for the idle timeout (between requests, or
                    // stalled inside one) is closed, so slow clients cannot hold connections forever.
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RESTHandler(route: route, maxBodyBytes: limit))
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

/// One connection: collects each request, routes it, writes the answer.
final class RESTHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: RESTServer.Route
    private let maxBodyBytes: Int
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var refused = false

    init(route: @escaping RESTServer.Route, maxBodyBytes: Int) {
        self.route = route
        self.maxBodyBytes = maxBodyBytes
    }

    /// A protocol error (malformed framing) was already answered with 400 by NIO; close.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            refused = false
            if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                refuseTooLarge(context)
            }
        case .body(var chunk):
            guard !refused else { return }
            if body.readableBytes + chunk.readableBytes > maxBodyBytes { return refuseTooLarge(context) }
            body.writeBuffer(&chunk)
        case .end:
            guard let head, !refused else { return }
            self.head = nil
            let parts = head.uri.split(separator: "?", maxSplits: 1)
            var query: [String: String] = [:]
            if parts.count == 2 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    query[String(kv[0])] = kv.count == 2 ? String(kv[1]) : ""
                }
            }
            let request = RESTRequest(method: head.method, path: parts.first.map(String.init) ?? "/", query: query, headers: head.headers, body: body)
            body = ByteBuffer()
            let keepAlive = head.isKeepAlive
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            route(request, context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let response): handler.write(context, response, keepAlive: keepAlive)
                case .failure(let error): handler.write(context, .error(500, "internal", "\(error)"), keepAlive: false)
                }
            }
        }
    }

    /// 413, then close: the rest of the body is not read.
    private func refuseTooLarge(_ context: ChannelHandlerContext) {
        refused = true
        head = nil
        write(context, .error(413, "body_too_large", "the body exceeds \(maxBodyBytes) bytes"), keepAlive: false)
    }

    private func write(_ context: ChannelHandlerContext, _ response: RESTResponse, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(3 + response.headers.count)
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.count))
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers))), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in if !keepAlive { channel.close(promise: nil) } }
    }
}
