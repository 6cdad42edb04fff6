import HTTPSidecar
import MeshCore

// The settings values of the HTTP sidecar that its drivers turn into live objects (TLS contexts,
// discovery watchers, token sources): plain data here, built into sockets and files by HTTPSidecarNIO.

/// A TLS file could not be used; `file` names it so the operator knows which one.
public struct TLSSetupError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var detail: String
    public var description: String { "\(file): \(detail)" }
    public init(file: String, detail: String) {
        self.file = file
        self.detail = detail
    }
}

/// TLS the sidecar terminates (the ingress TLS listener): certificate chain and key, and optionally
/// a CA that client certificates must chain to (mutual TLS).
public struct ServerTLS: Sendable {
    public var listen = MeshAddress(host: "0.0.0.0", port: 9445)
    public var certificateFile: String
    public var keyFile: String
    /// When set, clients must present a certificate signed by this CA.
    public var clientCAFile: String?
    /// Serve only TLS: the plain listener is not started (with `clientCAFile`, every client must
    /// then present a certificate).
    public var required = false

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// TLS the sidecar originates to an upstream: which CA to trust (the system's when absent), an
/// optional client certificate (mutual TLS), and the name to verify (the endpoint's host, or its IP).
public struct UpstreamTLS: Sendable, Hashable {
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    /// Name sent in SNI and verified against the certificate; the endpoint's host name when absent,
    /// and for an IP endpoint without a name, the certificate must carry that IP.
    public var serverName: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }
}

/// Where a service's endpoints come from.
public enum Discovery: Sendable, Hashable, CustomStringConvertible {
    /// A fixed list.
    case fixed([MeshAddress])
    /// Every address a DNS name resolves to (a headless Kubernetes service), re-resolved periodically.
    case dns(name: String, port: Int, every: Duration)
    /// A file of `HOST:PORT` lines (`#` comments), re-read when it changes.
    case file(path: String, every: Duration)

    public var description: String {
        switch self {
        case .fixed(let endpoints): endpoints.map(\.description).joined(separator: ",")
        case .dns(let name, let port, let every): "dns:\(name):\(port) every \(every)"
        case .file(let path, let every): "file:\(path) every \(every)"
        }
    }
}

/// OAuth2 client-credentials settings for one upstream service (RFC 6749 §4.4).
public struct OAuthClientCredentials: Sendable, Hashable {
    public var tokenURL: String
    public var clientId: String
    public var clientSecret: String
    public var scope: String?
    public var audience: String?
    /// TLS to the token endpoint (its CA), when it is `https` with a private CA.
    public var tls: UpstreamTLS?
    public var cache = TokenCache.Config()
    /// The whole token answer must arrive within this long (a trickling endpoint is cut off, the
    /// fetch fails, and a later request starts a new one).
    public var timeout: Duration = .seconds(10)

    public init(tokenURL: String, clientId: String, clientSecret: String, scope: String? = nil) {
        self.tokenURL = tokenURL
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.scope = scope
    }
}

