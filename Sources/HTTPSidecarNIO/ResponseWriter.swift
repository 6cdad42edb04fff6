import HTTPSidecar
import NIOCore
import NIOHTTP1

/// One whole answer the sidecar writes itself (a refusal, a preflight, a 502): sets
/// `Content-Length`, adds `Connection: close` when the connection ends after it, and leaves the body
/// out for HEAD. The ingress's engine writes its parts through its ``ClientCodec`` (in NIO and in the
/// simulator alike), the egress's NIO handler through ``ClientWire``.
public enum ResponseWriter {
    /// The parts of the answer: the head, the body unless empty or answering HEAD, the end.
    public static func parts(status: HTTPResponseStatus, headers: [(String, String)], body: ByteBuffer?,
                             close: Bool, method: HTTPMethod) -> [ClientResponsePart] {
        // Outbound validation is off on these pipelines: a field built from request data that is not
        // fit for the wire (a CR/LF would add lines to the answer) is dropped here instead.
        var h = HTTPHeaders(headers.filter { HeaderRules.isToken($0.0) && HeaderValue.isSafe($0.1) })
        h.replaceOrAdd(name: "content-length", value: String(body?.readableBytes ?? 0))
        if close { h.replaceOrAdd(name: "connection", value: "close") }
        var parts: [ClientResponsePart] = [.head(HTTPResponseHead(version: .http1_1, status: status, headers: h))]
        if let body, body.readableBytes > 0, method != .HEAD { parts.append(.body(.byteBuffer(body))) }
        parts.append(.end)
        return parts
    }

    /// Writes the answer and flushes; closes the connection once it is written when `close`.
    static func write(_ wire: ClientWire, status: HTTPResponseStatus, headers: [(String, String)],
                      body: ByteBuffer?, close: Bool, method: HTTPMethod) {
        // Every part but the last (the end), which flushes, and closes when asked.
        for part in parts(status: status, headers: headers, body: body, close: close, method: method).dropLast() { wire.send(part) }
        if close { wire.sendAndClose(.end) } else { wire.sendAndFlush(.end) }
    }
}
