import HTTPSidecar
import NIOCore
import NIOHTTP1

/// How a server handler answers a request the framing scanner (or NIO's parser, on the admin
/// listener) refused. NIO's own error handler answers 400 to everything and leaves closing to the
/// pipeline; the sidecar answers with the violation's status (431 for oversized heads, 501 for an
/// unknown method, 505 for a version, 400 for the rest) and a JSON body with a stable code, and always
/// closes: after a framing error the byte stream cannot be trusted (that is what a smuggling attempt
/// relies on).
public enum ProtocolErrors {
    /// The answer to a request the parser refused, or nil when `error` is not a parse error.
    public static func response(for error: any Error) -> ErrorResponse? {
        if let violation = error as? HTTP1Violation {
            return ErrorResponse(status: HTTPResponseStatus(statusCode: violation.status), code: violation.code, message: violation.description)
        }
        switch error as? HTTPParserError {
        case .none:
            return nil
        case .headerOverflow:
            return ErrorResponse(status: .requestHeaderFieldsTooLarge, code: "headers_too_large", message: "the request head is too large")
        case .some(let parserError):
            return ErrorResponse(status: .badRequest, code: "bad_request", message: "malformed HTTP request (\(parserError))")
        }
    }
}

extension HeaderRules {
    /// Applies the rules to NIO headers (rebuilt only when there are rules).
    func apply(to headers: inout HTTPHeaders) {
        guard !isEmpty else { return }
        var fields = headers.map { (name: $0.name, value: $0.value) }
        apply(to: &fields)
        headers = HTTPHeaders(fields.map { ($0.name, $0.value) })
    }
}
