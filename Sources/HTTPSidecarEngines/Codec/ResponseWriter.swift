import HTTPSidecar
import NIOCore
import NIOHTTP1

/// One whole answer the sidecar writes itself (a refusal, a preflight, a 502): sets
/// `Content-Length`, adds `Connection: close` when the connection ends after it, and leaves the body
/// out for HEAD. The connection engines write its parts through their ``ClientCodec`` (in NIO and in
/// the simulator alike).
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
}
