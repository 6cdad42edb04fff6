import Foundation

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
