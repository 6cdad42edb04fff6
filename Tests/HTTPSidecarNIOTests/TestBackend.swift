import Foundation
import HTTPSidecarNIO
import HTTPClientNIO
import HTTPSidecarEngines
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A custom answer of a ``TestBackend``: status, body and extra headers for a request head and body.
typealias BackendResponder = @Sendable (HTTPRequestHead, String) -> (status: HTTPResponseStatus, body: String, headers: [(String, String)])

/// A tiny app for the live tests: answers every request with a text dump of what it received and
/// counts requests, so a test can assert what did (and did not) reach the app.
final class TestBackend: Sendable {
    let received = NIOLockedValueBox<[String]>([])
    private let children = NIOLockedValueBox<[any Channel]>([])
    private let channel: any Channel
    /// The listening port (kept: a closed channel no longer knows it).
    let port: Int

    /// - Parameters:
    ///   - tls: serve TLS with this context (which may require client certificates).
    ///   - delay: answer this long after the request ended (scheduled on the loop: a handler never sleeps).
    ///   - respond: answer with this instead of the dump of the request.
    init(group: any EventLoopGroup, tls: NIOSSLContext? = nil, delay: TimeAmount = .zero, respond: BackendResponder? = nil) async throws {
        let received = self.received
        let children = self.children
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                children.withLockedValue { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Echo(received: received, delay: delay, respond: respond))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }
    var requests: [String] { received.withLockedValue { $0 } }

    func stop() async throws { try await channel.close() }

    /// Like a crashed pod: stops listening and resets every open connection.
    func kill() async throws {
        try await channel.close()
        for c in children.withLockedValue({ $0 }) { try? await c.close() }
    }

    final class Echo: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let received: NIOLockedValueBox<[String]>
        let respond: BackendResponder?
        let delay: TimeAmount
        var head: HTTPRequestHead?
        var body = ""
        init(received: NIOLockedValueBox<[String]>, delay: TimeAmount, respond: BackendResponder?) {
            self.received = received
            self.delay = delay
            self.respond = respond
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h; body = ""
            case .body(let b): body += String(buffer: b)
            case .end:
                guard let head else { return }
                var dump = "\(head.method.rawValue) \(head.uri)\n"
                for (n, v) in head.headers { dump += "\(n.lowercased()): \(v)\n" }
                dump += "\n\(body)"
                received.withLockedValue { $0.append(dump) }
                let answer = respond?(head, body) ?? (.ok, dump, [])
                guard delay > .zero else { return write(answer, for: head, context) }
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: delay) {
                    let (handler, context) = bound.value
                    handler.write(answer, for: head, context)
                }
            }
        }

        private func write(_ answer: (status: HTTPResponseStatus, body: String, headers: [(String, String)]), for head: HTTPRequestHead,
                           _ context: ChannelHandlerContext) {
            var headers = HTTPHeaders([("content-length", String(answer.body.utf8.count)), ("x-app", "yes"), ("connection", "keep-alive, x-secret-hop"), ("x-secret-hop", "1")])
            for (n, v) in answer.headers { headers.replaceOrAdd(name: n, value: v) }
            if !head.isKeepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: answer.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// Sends raw bytes and returns everything the server sends back until it closes or `timeout` passes.
/// With `tls`, over TLS (verifying the server as `serverName`).
func rawExchange(port: Int, _ request: String, timeout: TimeAmount = .seconds(8), group: any EventLoopGroup,
                 tls: NIOSSLContext? = nil, serverName: String? = nil) async throws -> String {
    let collected = NIOLockedValueBox("")
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                try channel.pipeline.syncOperations.addHandler(Collect(into: collected))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    // The server may answer and close before the whole request is written (that is fine: read what came).
    try? await channel.writeAndFlush(channel.allocator.buffer(string: request))
    let closed = channel.closeFuture
    let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    try? await closed.get()
    deadline.cancel()
    return collected.withLockedValue { $0 }
}

final class Collect: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let into: NIOLockedValueBox<String>
    init(into: NIOLockedValueBox<String>) { self.into = into }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let s = String(buffer: unwrapInboundIn(data))
        into.withLockedValue { $0 += s }
    }
}

/// The test-only TLS material in `fixtures/tls` (see its gen.sh).
enum TestTLS {
    static func path(_ name: String) -> String {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }
        return dir.appendingPathComponent("fixtures/tls/\(name)").path
    }

    /// A server context with the test server certificate; `requireClientCertificate` demands one
    /// signed by the test CA.
    /// `name` picks the certificate: `server` (localhost and 127.0.0.1) or `named` (pets.internal only).
    static func server(requireClientCertificate: Bool = false, name: String = "server") throws -> NIOSSLContext {
        var config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(path("\(name).pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: path("\(name)-key.pem"), format: .pem)))
        if requireClientCertificate {
            config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path("ca.pem")))
            config.certificateVerification = .noHostnameVerification
        }
        return try NIOSSLContext(configuration: config)
    }

    /// A client context trusting the test CA; `certificate` presents the test client certificate.
    static func client(certificate: Bool = false) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path("ca.pem")))
        if certificate {
            config.certificateChain = try NIOSSLCertificate.fromPEMFile(path("client.pem")).map { .certificate($0) }
            config.privateKey = .privateKey(try NIOSSLPrivateKey(file: path("client-key.pem"), format: .pem))
        }
        return try NIOSSLContext(configuration: config)
    }
}

/// A loopback listener for the live tests' purpose-built apps: each accepted connection gets the
/// HTTP server pipeline (when `http`) and the handler `makeHandler` builds for it.
final class TestListener: Sendable {
    private let channel: any Channel
    let port: Int

    /// With `tls`, the child pipeline is `BelowTLS`, the TLS server handler, then the rest.
    init(group: any EventLoopGroup, http: Bool = true, tls: NIOSSLContext? = nil, _ makeHandler: @escaping @Sendable () -> any ChannelHandler) async throws {
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(BelowTLS())
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    if http { try channel.pipeline.syncOperations.configureHTTPServerPipeline() }
                    try channel.pipeline.syncOperations.addHandler(makeHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }

    func stop() async throws { try await channel.close() }
}

/// An ingress on a free loopback port in front of the app on `port`; `configure` adjusts the rest.
func startIngress(app port: Int, group: any EventLoopGroup, services: IngressServices = IngressServices(),
                  _ configure: (inout IngressConfig) -> Void = { _ in }) async throws -> (IngressServer, Int) {
    var config = IngressConfig()
    config.listen = MeshAddress(host: "127.0.0.1", port: 0)
    config.app = MeshAddress(host: "127.0.0.1", port: port)
    configure(&config)
    let server = try IngressServer(config: config, services: services, group: group)
    return (server, try await server.start().port)
}

/// An egress listener on a free loopback port for `services`; `configure` adjusts the rest.
func startEgress(_ services: [ServiceConfig], group: any EventLoopGroup, _ configure: (inout EgressConfig) -> Void = { _ in }) async throws -> (EgressServer, Int) {
    var config = EgressConfig()
    config.listen = MeshAddress(host: "127.0.0.1", port: 0)
    config.services = services
    configure(&config)
    let server = try EgressServer(config: config, group: group)
    return (server, try await server.start().port)
}
