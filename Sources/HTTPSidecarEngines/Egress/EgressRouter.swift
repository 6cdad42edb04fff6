import HTTPSidecar
import MeshCore
import NIOHTTP1

/// Which service an egress request names, decided once for the NIO driver and the simulator alike:
/// a `service_url` header (allow-listed origins only, else 403 `service_url_not_allowed`), the
/// `service_id` header, a `Host` equal to a service's name, else the longest path prefix route
/// (404 `unknown_service` when nothing names one). Services are keyed by name; an allow-listed origin
/// is a service of its own, keyed by the origin (`scheme://host:port`).
public struct EgressRouter: Sendable {
    /// Configured service names.
    public let services: Set<String>
    /// Allow-listed `service_url` origins (normalized `scheme://host:port`).
    public let allowedOrigins: Set<String>
    let pathRoutes: [(prefix: String, service: String)]

    /// Where a request goes: the service's key, and the `Host` it gets when that is not the app's.
    public struct Route: Hashable, Sendable {
        public var service: String
        /// For an allow-listed origin, its own authority (virtual hosting, and the name TLS
        /// verifies), not the one the app used to reach the sidecar.
        public var host: String?
    }

    /// The router of `config`; throws naming the key when an allow-list entry is not an origin or a
    /// path route names no service.
    public init(config: EgressConfig) throws(ConfigError) {
        var origins = Set<String>()
        for (i, text) in config.serviceURLAllowList.enumerated() {
            guard let url = FetchURL(text), url.target == "/" else {
                throw ConfigError(key: "egress.service_url_allow[\(i)]", "expected an origin such as https://api.example.com, got '\(text)'")
            }
            origins.insert(url.origin)
        }
        let names = Set(config.services.map(\.name))
        for route in config.pathRoutes where !names.contains(route.service) {
            throw ConfigError(key: "egress.routes.\(route.prefix)", "no service called \(route.service)")
        }
        services = names
        allowedOrigins = origins
        pathRoutes = config.pathRoutes
    }

    /// Where `head` goes (`path` is its normalized path, for path routes), or the refusal to answer.
    public func route(_ head: ScannedRequestHead, path: String) -> Result<Route, ErrorResponse> {
        if let url = head.first("service_url") {
            // ci/mutants: service-url-not-checked (the next line)
            guard let parsed = FetchURL(url), allowedOrigins.contains(parsed.origin) else {
                return .failure(ErrorResponse(status: .forbidden, code: "service_url_not_allowed", message: "service_url \(url) is not on the allow-list"))
            }
            let defaultPort = parsed.secure ? 443 : 80
            return .success(Route(service: parsed.origin, host: parsed.port == defaultPort ? parsed.host : "\(parsed.host):\(parsed.port)"))
        }
        let name: String?
        if let id = head.first("service_id") {
            name = id
        } else if let host = head.first("host")?.split(separator: ":").first.map(String.init), services.contains(host) {
            name = host
        } else {
            name = pathRoutes.filter { RequestTarget.path(path, isUnder: $0.prefix) }.max { $0.prefix.count < $1.prefix.count }?.service
        }
        guard let name else {
            return .failure(ErrorResponse(status: .notFound, code: "unknown_service", message: "name the target with a service_id header, a service host name or a mapped path"))
        }
        guard services.contains(name) else {
            return .failure(ErrorResponse(status: .notFound, code: "unknown_service", message: "no service called \(name) is configured"))
        }
        return .success(Route(service: name, host: nil))
    }
}
