import HTTPSidecar
import NIOCore
import NIOHTTP1

/// How a server handler answers a request the HTTP parser refused. NIO's own error handler answers
/// 400 to everything and leaves closing to the pipeline; the sidecar answers 431 for oversized
/// headers, 400 (with a JSON body and a stable code) for the rest, and always closes: after a framing
/// error the byte stream cannot be trusted (that is what a smuggling attempt relies on).
enum ProtocolErrors {
    static func response(for error: HTTPParserError) -> ErrorResponse {
        switch error {
        case .headerOverflow:
            return ErrorResponse(status: .requestHeaderFieldsTooLarge, code: "headers_too_large", message: "the request head is too large")
        default:
            return ErrorResponse(status: .badRequest, code: "bad_request", message: "malformed HTTP request (\(error))")
        }
    }

    /// Answers (when no response has started) and closes.
    static func answer(_ context: ChannelHandlerContext, _ error: any Error, responseStarted: Bool) {
        guard let parserError = error as? HTTPParserError, !responseStarted else {
            context.close(promise: nil)
            return
        }
        let e = response(for: parserError)
        ResponseWriter.write(context, status: e.status, headers: [("content-type", "application/json")],
                             body: e.body(allocator: context.channel.allocator), close: true, method: .GET)
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
