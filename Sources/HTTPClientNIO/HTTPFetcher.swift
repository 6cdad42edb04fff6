import HTTPSidecarEngines
import Foundation
import MeshCore
import NIOCore
import NIOHTTP1

/// Small control-plane HTTP calls of the sidecar itself (token endpoint, JWKS URL): keep-alive
/// connections to one origin, TLS for `https` (trusting `tls`'s CA, or the system's).
public final class HTTPFetcher: Sendable {
    public let origin: FetchURL
    private let group: any EventLoopGroup
    private let pools: PoolRegistry
    private let address: SocketAddress

    /// - Parameters:
    ///   - timeout: the whole response must arrive within it (else the connection is closed).
    ///   - maxIdle: keep-alive connections kept per event loop between calls.
    ///   - maxResponseBytes: a larger answer body is refused and its connection closed.
    public init(_ url: FetchURL, group: any EventLoopGroup, tls: UpstreamTLS? = nil, timeout: Duration = .seconds(10), maxIdle: Int = 2,
                maxResponseBytes: Int = 1 << 20) throws {
        origin = url
        self.group = group
        address = try SocketAddress.makeAddressResolvingHost(url.host, port: url.port)
        pools = try PoolRegistry(settings: ConnectionPoolSettings(connectTimeout: .seconds(2), responseTimeout: timeout, maxIdle: maxIdle, maxResponseBytes: maxResponseBytes),
                                 tls: url.secure ? (tls ?? UpstreamTLS()) : nil)
    }

    /// One request to `target` on the origin; the whole response, or a `TransportError`.
    package func fetch(method: HTTPMethod, target: String, headers: [(String, String)], body: ByteBuffer?, on loop: (any EventLoop)? = nil) -> EventLoopFuture<AppResponse> {
        let loop = loop ?? group.next()
        let head = origin.requestHead(method: method, target: target, fields: headers, bodyLength: body?.readableBytes ?? 0)
        let pools = self.pools, address = self.address, host = origin.host, request = head
        return loop.flatSubmit { pools.pool(for: loop, target: address, host: host).send(request, body: body) }
    }

    /// One request on `loop`; the status and the whole body, or a `TransportError`.
    public func call(method: HTTPMethod, target: String, headers: [(String, String)], body: ByteBuffer?, on loop: any EventLoop) -> EventLoopFuture<(status: Int, body: ByteBuffer)> {
        fetch(method: method, target: target, headers: headers, body: body, on: loop).map { (Int($0.head.status.code), $0.body) }
    }

    package func fetch(method: HTTPMethod, target: String, headers: [(String, String)], body: ByteBuffer?) async throws -> AppResponse {
        try await fetch(method: method, target: target, headers: headers, body: body, on: nil).get()
    }
}

/// A failed control-plane fetch (JWKS URL): the URL and why.
public struct FetchError: Error, CustomStringConvertible, Sendable {
    public var url: String
    public var message: String
    public var description: String { "\(url): \(message)" }
}

/// Loads a document over HTTP(S) for the sidecar's own use (a JWKS URL), with keep-alive between loads.
public final class DocumentLoader: Sendable {
    private let fetcher: HTTPFetcher
    private let url: String

    /// `tls` trusts a private CA for `https` URLs (the system's roots when nil).
    public init(url: String, group: any EventLoopGroup, tls: UpstreamTLS? = nil) throws {
        guard let parsed = FetchURL(url) else { throw FetchError(url: url, message: "expected an http:// or https:// URL") }
        self.url = url
        fetcher = try HTTPFetcher(parsed, group: group, tls: tls)
    }

    /// GETs the document; anything but 200 is an error.
    public func load() async throws -> String {
        let response: AppResponse
        do {
            response = try await fetcher.fetch(method: .GET, target: fetcher.origin.target, headers: [("accept", "application/json")], body: nil)
        } catch {
            throw FetchError(url: url, message: "\(error)")
        }
        guard response.head.status == .ok else { throw FetchError(url: url, message: "answered \(response.head.status.code)") }
        return String(buffer: response.body)
    }
}
