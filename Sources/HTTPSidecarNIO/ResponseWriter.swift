import HTTPSidecar
import NIOCore
import NIOHTTP1

/// Writes one whole response on a server pipeline: sets `Content-Length`, adds `Connection: close`
/// and closes after the flush when asked, and leaves the body out for HEAD.
enum ResponseWriter {
    static func write(
        _ context: ChannelHandlerContext, status: HTTPResponseStatus, headers: [(String, String)],
        body: ByteBuffer?, close: Bool, method: HTTPMethod
    ) {
        // Outbound validation is off on these pipelines: a field built from request data that is not
        // fit for the wire (a CR/LF would add lines to the answer) is dropped here instead.
        var h = HTTPHeaders(headers.filter { HeaderRules.isToken($0.0) && HeaderValue.isSafe($0.1) })
        h.replaceOrAdd(name: "content-length", value: String(body?.readableBytes ?? 0))
        if close { h.replaceOrAdd(name: "connection", value: "close") }
        context.write(NIOAny(ClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: h))), promise: nil)
        if let body, body.readableBytes > 0, method != .HEAD {
            context.write(NIOAny(ClientResponsePart.body(.byteBuffer(body))), promise: nil)
        }
        if close {
            let channel = context.channel
            context.writeAndFlush(NIOAny(ClientResponsePart.end)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.writeAndFlush(NIOAny(ClientResponsePart.end), promise: nil)
        }
    }
}
