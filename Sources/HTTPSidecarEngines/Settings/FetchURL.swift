import Foundation
import NIOHTTP1

/// An `http://` or `https://` URL split into what a connection needs.
public struct FetchURL: Sendable, Hashable, CustomStringConvertible {
    public var secure: Bool
    public var host: String
    public var port: Int
    /// Path and query, at least `/`.
    public var target: String

    public init?(_ text: String) {
        guard let c = URLComponents(string: text), let scheme = c.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = c.host, !host.isEmpty else { return nil }
        secure = scheme == "https"
        self.host = host
        port = c.port ?? (secure ? 443 : 80)
        let path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        target = c.percentEncodedQuery.map { "\(path)?\($0)" } ?? path
    }

    /// `scheme://host:port`, the unit a `service_url` allow-list compares.
    public var origin: String { "\(secure ? "https" : "http")://\(host.lowercased()):\(port)" }
    public var description: String { origin + target }
}

extension FetchURL {
    /// The head of a request the sidecar makes on its own (a push to the app, a readiness probe, a
    /// token or JWKS fetch), as both worlds send it: `Host` naming this origin, `fields` in order,
    /// and the body's `Content-Length` (0 without one).
    public func requestHead(method: HTTPMethod, target: String, fields: [(String, String)], bodyLength: Int) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: target)
        head.headers.add(name: "host", value: port == (secure ? 443 : 80) ? host : "\(host):\(port)")
        for (name, value) in fields { head.headers.add(name: name, value: value) }
        head.headers.add(name: "content-length", value: String(bodyLength))
        return head
    }
}
