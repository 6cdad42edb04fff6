import HTTPTypes

/// A host and port a transport listens on or connects to.
public struct MeshAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One piece of a streamed HTTP body.
public enum HTTPBodyPart: Sendable, Equatable {
    /// A chunk of body bytes (never empty).
    case bytes([UInt8])
    /// The end of the body, with optional trailers.
    case end(HTTPFields?)
}

/// Why a transport operation failed. `kind` is stable and maps to proxy status codes.
public struct TransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Nobody accepted the connection (peer down or not listening). Safe to retry anywhere.
        case connectRefused = "connect_refused"
        /// The connection was not established in time. Safe to retry: nothing was sent.
        case connectTimeout = "connect_timeout"
        /// The peer reset the connection; the request may or may not have been processed.
        case reset = "connection_reset"
        /// The connection closed before the exchange completed.
        case closed = "connection_closed"
        /// The peer did not answer, or went quiet mid-answer, for longer than the response timeout.
        case responseTimeout = "response_timeout"
        /// The peer sent something that is not valid HTTP.
        case protocolViolation = "protocol_violation"
        /// TLS handshake or verification failed. Safe to retry: the request is written only after a handshake.
        case tls = "tls_failure"
    }
    public var kind: Kind
    public var detail: String
    public init(_ kind: Kind, _ detail: String = "") {
        self.kind = kind
        self.detail = detail
    }
    /// `true` when the failure happened before any byte of the request could have reached the peer.
    public var requestNeverSent: Bool { kind == .connectRefused || kind == .connectTimeout || kind == .tls }
    public var description: String { detail.isEmpty ? kind.rawValue : "\(kind.rawValue): \(detail)" }
}

/// Pull side of a streamed body. Asking for the next part only after the previous one was written
/// onwards is the backpressure mechanism: a slow reader slows the writer, nothing is buffered whole.
public protocol HTTPPartSource: AnyObject {
    /// Requests the next part; `handler` runs exactly once, on the transport's serial context.
    /// At most one request may be outstanding. After `.end` or a failure no more parts come.
    func nextPart(_ handler: @escaping (Result<HTTPBodyPart, TransportError>) -> Void)
}

/// Push side of a streamed body.
public protocol HTTPPartSink: AnyObject {
    /// Writes `part`; `done` runs once the transport has room for more (or the write failed).
    /// Writing after `.end` is a programming error.
    func write(_ part: HTTPBodyPart, _ done: @escaping (Result<Void, TransportError>) -> Void)
}

/// The server side of one request/response exchange.
public protocol HTTPServerExchange: AnyObject {
    /// The request head, already validated by the transport (framing, header limits).
    var request: HTTPRequest { get }
    /// Where the request came from.
    var remoteAddress: MeshAddress { get }
    /// The request body.
    var requestBody: any HTTPPartSource { get }
    /// Sends the response head; returns the sink for the response body. Call at most once.
    func respond(_ head: HTTPResponse) -> any HTTPPartSink
}

/// A client connection that carries one exchange at a time (HTTP/1.1) or several (HTTP/2).
public protocol HTTPClientConnection: AnyObject {
    /// Whether another request may be sent on this connection now.
    var isReusable: Bool { get }
    /// Starts an exchange. The returned sink takes the request body; `onResponse` runs once with the
    /// response head and body source, or with the failure.
    func send(
        _ request: HTTPRequest,
        onResponse: @escaping (Result<(HTTPResponse, any HTTPPartSource), TransportError>) -> Void
    ) -> any HTTPPartSink
    /// Closes the connection; outstanding exchanges fail with `.closed`.
    func close()
}

/// A listening socket; `close()` stops accepting, open exchanges continue.
public protocol HTTPListener: AnyObject {
    var address: MeshAddress { get }
    func close()
}

/// Seam: serving and connecting over HTTP.
///
/// The shape is callback-based and confined: every callback of one connection runs on one serial
/// context (a NIO event loop in production, the simulator's loop in simulation), the same context from
/// which the connection's methods must be called. That lets the production path stay on the event loop
/// with no hops or locks, and lets the simulator drive the identical code deterministically.
///
/// Contract for both implementations:
/// - `connect` reports `.connectRefused` when nothing listens at the address, `.connectTimeout` when
///   the handshake does not finish within `timeout`, and never both.
/// - A peer that crashes mid-exchange surfaces as `.reset` on the other side.
/// - Bodies are streamed part by part; a transport never buffers a whole body on its own.
/// - Framing is validated before the exchange is handed over: ambiguous framing (both
///   `Content-Length` and `Transfer-Encoding`, differing duplicate `Content-Length`, obsolete line
///   folding) is rejected with 400 and the connection closed.
public protocol HTTPTransport: AnyObject {
    /// Listens on `address`; `onExchange` runs for each request.
    func listen(
        on address: MeshAddress,
        onExchange: @escaping (any HTTPServerExchange) -> Void
    ) throws -> any HTTPListener

    /// Opens a client connection to `address`.
    func connect(
        to address: MeshAddress,
        timeout: Duration,
        _ done: @escaping (Result<any HTTPClientConnection, TransportError>) -> Void
    )
}
