import HTTPClientNIO
import HTTPSidecarEngines
import Logging
import MeshCore
import NIOConcurrencyHelpers
import CoreMetrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The admin listener (loopback by default): `/health/live`, `/health/ready`, `/metrics` (Prometheus
/// text), `/config` (effective configuration, secrets redacted) and `/endpoints` (egress endpoint states).
public final class AdminServer: Sendable {
    public struct Sources: Sendable {
        public var registry: PrometheusCollectorRegistry
        /// The effective configuration as JSON, secrets already redacted.
        public var configJSON: @Sendable () -> String
        public var egress: EgressServer?
        /// Ready only when the app answers this path on its address (when set).
        public var appHealth: (address: MeshAddress, path: String)?
        public init(registry: PrometheusCollectorRegistry, configJSON: @escaping @Sendable () -> String, egress: EgressServer? = nil, appHealth: (address: MeshAddress, path: String)? = nil) {
            self.registry = registry
            self.configJSON = configJSON
            self.egress = egress
            self.appHealth = appHealth
        }
    }

    private let listen: MeshAddress
    private let group: any EventLoopGroup
    private let sources: Sources
    private let channel = NIOLockedValueBox<(any Channel)?>(nil)

    public init(listen: MeshAddress = MeshAddress(host: "127.0.0.1", port: 9901), group: any EventLoopGroup, sources: Sources) {
        self.listen = listen
        self.group = group
        self.sources = sources
    }

    @discardableResult
    public func start() async throws -> MeshAddress {
        let sources = self.sources
        let group = self.group
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(sources: sources))
                }
            }
            .bind(host: listen.host, port: listen.port).get()
        channel.withLockedValue { $0 = server }
        return MeshAddress(host: listen.host, port: server.localAddress?.port ?? listen.port)
    }

    public func stop() async throws { try await channel.withLockedValue { $0 }?.close() }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let sources: AdminServer.Sources
    private var head: HTTPRequestHead?

    init(sources: AdminServer.Sources) { self.sources = sources }

    /// A protocol error (malformed framing, smuggling attempt) was already answered with 400 by NIO's
    /// error handler; the connection must not be used again.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
            switch (head.method, path) {
            case (.GET, "/health/live"):
                send(context, .ok, "application/json", "{\"status\":\"live\"}\n", keepAlive: head.isKeepAlive)
            case (.GET, "/health/ready"):
                ready(context, keepAlive: head.isKeepAlive)
            case (.GET, "/metrics"):
                recordEndpointStates()
                send(context, .ok, "text/plain; version=0.0.4", sources.registry.emitToString(), keepAlive: head.isKeepAlive)
            case (.GET, "/config"):
                send(context, .ok, "application/json", sources.configJSON() + "\n", keepAlive: head.isKeepAlive)
            case (.GET, "/endpoints"):
                let rows = (sources.egress?.endpoints() ?? []).map { e in
                    "{\"service\":\"\(e.service)\",\"address\":\"\(e.address)\",\"available\":\(e.available),\"state\":\"\(e.breaker)\",\"in_flight\":\(e.inFlight),\"ewma_ms\":\(String(format: "%.3f", e.ewmaMilliseconds))}"
                }
                send(context, .ok, "application/json", "[" + rows.joined(separator: ",") + "]\n", keepAlive: head.isKeepAlive)
            default:
                send(context, .notFound, "application/json", "{\"error\":{\"code\":\"not_found\",\"message\":\"admin paths: /health/live /health/ready /metrics /config /endpoints\"}}\n", keepAlive: head.isKeepAlive)
            }
        }
    }

    /// `lightmesh_egress_endpoints{service,state}`: how many endpoints of each service are closed
    /// (serving), open, half-open or ejected, computed at scrape time from the live decision state
    /// (ejections and half-open transitions end by the clock, not by an event a counter could see).
    private func recordEndpointStates() {
        guard let egress = sources.egress else { return }
        let factory = PrometheusMetricsFactory(registry: sources.registry)
        var counts: [String: [String: Int]] = [:]
        for e in egress.endpoints() { counts[e.service, default: [:]][e.breaker, default: 0] += 1 }
        for (service, states) in counts {
            for state in ["closed", "open", "half-open", "ejected"] {
                Gauge(label: "lightmesh_egress_endpoints", dimensions: [("service", service), ("state", state)], factory: factory)
                    .record(states[state] ?? 0)
            }
        }
    }

    private func ready(_ context: ChannelHandlerContext, keepAlive: Bool) {
        guard let (address, path) = sources.appHealth else {
            return send(context, .ok, "application/json", "{\"status\":\"ready\"}\n", keepAlive: keepAlive)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        do {
            let target = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
            let pool = UpstreamConnectionPool(eventLoop: loop, target: target, config: ConnectionPoolSettings(connectTimeout: .seconds(1), responseTimeout: .seconds(2), maxIdle: 0))
            pool.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: ["host": address.description, "connection": "close"]), body: nil).whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let r) where r.head.status.code < 400:
                    handler.send(context, .ok, "application/json", "{\"status\":\"ready\"}\n", keepAlive: keepAlive)
                case .success(let r):
                    handler.send(context, .serviceUnavailable, "application/json", "{\"status\":\"not_ready\",\"app_status\":\(r.head.status.code)}\n", keepAlive: keepAlive)
                case .failure:
                    handler.send(context, .serviceUnavailable, "application/json", "{\"status\":\"not_ready\",\"reason\":\"app unreachable\"}\n", keepAlive: keepAlive)
                }
            }
        } catch {
            send(context, .serviceUnavailable, "application/json", "{\"status\":\"not_ready\"}\n", keepAlive: keepAlive)
        }
    }

    private func send(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ type: String, _ body: String, keepAlive: Bool) {
        var headers = HTTPHeaders([("content-type", type), ("content-length", String(body.utf8.count))])
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in if !keepAlive { channel.close(promise: nil) } }
    }
}

import Foundation
