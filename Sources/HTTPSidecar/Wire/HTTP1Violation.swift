/// Why the framing scanner refused a message. Every refusal ends the connection: after bytes the
/// scanner cannot frame with certainty, nothing that follows on the stream can be trusted (that is
/// the whole of request smuggling). Each case has a stable `code` for the JSON error and a status.
public enum HTTP1Violation: Error, Hashable, Sendable, CustomStringConvertible {
    /// The head (or the trailer section) is longer than the configured limit.
    case headTooLarge
    /// More header fields than the configured limit.
    case tooManyFields
    /// A LF without the CR before it, or a CR not followed by LF.
    case bareLineEnding
    /// A NUL or another control byte where none may be.
    case controlByte
    /// The request line is not `method SP target SP HTTP/1.x`.
    case badRequestLine
    /// A method outside the known list (or `CONNECT`, which a relay does not tunnel).
    case unsupportedMethod
    /// The request-target has a byte outside visible ASCII, or a form the method does not allow.
    case badTarget
    /// A version other than HTTP/1.0 or HTTP/1.1.
    case unsupportedVersion
    /// A field line that is not `token ":" OWS value OWS` (whitespace before the colon, no name).
    case badFieldLine
    /// A field line starting with whitespace (obsolete line folding, RFC 9112 §5.2).
    case obsoleteLineFolding
    /// A `Content-Length` that is not one run of digits, or more than one of them.
    case badContentLength
    /// `Transfer-Encoding` other than exactly `chunked`, or repeated, or in an HTTP/1.0 message.
    case badTransferEncoding
    /// Both `Content-Length` and `Transfer-Encoding`.
    case lengthAndTransferEncoding
    /// `Connection` names a field that decides framing or routing (`Content-Length`, `Transfer-Encoding`, `Host`).
    case connectionNamesFraming
    /// No `Host` in an HTTP/1.1 request, more than one, or a malformed one.
    case badHost
    /// A chunk-size line that is not hex digits (and optional extensions) ending in CRLF, or too large
    /// (a size over 15 digits, or more extension bytes in the body than the head limit).
    case badChunkSize
    /// Chunk data not followed by CRLF.
    case badChunkEnd
    /// A status line that is not `HTTP/1.x SP 3DIGIT [SP reason]`.
    case badStatusLine

    /// The HTTP status to answer a client with (a bad upstream answer is the relay's 502 instead).
    public var status: Int {
        switch self {
        case .headTooLarge, .tooManyFields: 431
        case .unsupportedMethod: 501
        case .unsupportedVersion: 505
        default: 400
        }
    }

    /// The stable error code in JSON error bodies.
    public var code: String {
        switch self {
        case .headTooLarge: "headers_too_large"
        case .tooManyFields: "too_many_headers"
        case .unsupportedMethod: "unsupported_method"
        case .unsupportedVersion: "unsupported_version"
        case .badTarget: "bad_target"
        case .badHost: "bad_host"
        default: "bad_framing"
        }
    }

    public var description: String {
        switch self {
        case .headTooLarge: "the message head is too large"
        case .tooManyFields: "too many header fields"
        case .bareLineEnding: "a line ending other than CRLF"
        case .controlByte: "a control byte in the message head"
        case .badRequestLine: "a malformed request line"
        case .unsupportedMethod: "a method this relay does not forward"
        case .badTarget: "a malformed request target"
        case .unsupportedVersion: "an HTTP version other than 1.0 or 1.1"
        case .badFieldLine: "a malformed header field line"
        case .obsoleteLineFolding: "a folded header line (obs-fold)"
        case .badContentLength: "a malformed or repeated Content-Length"
        case .badTransferEncoding: "a Transfer-Encoding other than a single chunked"
        case .lengthAndTransferEncoding: "both Content-Length and Transfer-Encoding"
        case .connectionNamesFraming: "Connection names a framing or routing field"
        case .badHost: "a missing, repeated or malformed Host"
        case .badChunkSize: "a malformed chunk size"
        case .badChunkEnd: "chunk data not followed by CRLF"
        case .badStatusLine: "a malformed status line"
        }
    }
}
