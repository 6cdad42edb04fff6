import HTTPSidecar
import NIOCore
import NIOHTTP1

/// Writes one whole response to a client: sets `Content-Length`, adds `Connection: close`
/// and closes after the flush when asked, and leaves the body out for HEAD.
enum ResponseWriter {
    static func write(
        _ wire: ClientWire, status: HTTPResponseStatus, headers: [(String, String)],
        body: ByteBuffer?, close: Bool, method: HTTPMethod
    ) {
        // Outbound validation is off on these pipelines: a field built from request data that is not
        // fit for the wire (a CR/LF would add lines to the answer) is dropped here instead.
        var h = HTTPHeaders(headers.filter { HeaderRules.isToken($0.0) && HeaderValue.isSafe($0.1) })
        h.replaceOrAdd(name: "content-length", value: String(body?.readableBytes ?? 0))
        if close { h.replaceOrAdd(name: "connection", value: "close") }
        wire.send(.head(HTTPResponseHead(version: .http1_1, status: status, headers: h)))
        if let body, body.readableBytes > 0, method != .HEAD {
            wire.send(.body(.byteBuffer(body)))
        }
        if close { wire.sendAndClose(.end) } else { wire.sendAndFlush(.end) }
    }
}
