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
        /// A TLS failure: the handshake or verification failed (nothing sent), or the session broke
        /// later (an unclean close after the request left). Whether the request was sent is told
        /// apart from the kind.
        case tls = "tls_failure"
    }
    public var kind: Kind
    public var detail: String
    public init(_ kind: Kind, _ detail: String = "") {
        self.kind = kind
        self.detail = detail
    }
    public var description: String { detail.isEmpty ? kind.rawValue : "\(kind.rawValue): \(detail)" }
}
