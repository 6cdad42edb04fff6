import NIOCore

/// A request on its way to an upstream: the head already encoded, then body bytes without framing.
/// Small enough (24 bytes) for NIO to carry each part without boxing it.
enum UpstreamRequestPart {
    case head(ByteBuffer, EncodedRequestHead.Kind)
    case body(ByteBuffer)
    case end
}

/// Writes requests to an upstream: the head as encoded, the body as it comes or in chunks when the
/// head declared `Transfer-Encoding: chunked` (and the last chunk at the end). Nothing is added to
/// the head: it carries its framing already (``IngressAdmission`` and the egress set it).
final class HTTP1RequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = UpstreamRequestPart
    typealias OutboundOut = IOData

    private var chunked = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let bytes, let kind):
            chunked = kind == .chunked
            context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: promise)
        case .body(let body):
            guard chunked else { return context.write(wrapOutboundOut(.byteBuffer(body)), promise: promise) }
            guard body.readableBytes > 0 else { promise?.succeed(()); return }
            var size = context.channel.allocator.buffer(capacity: 18)
            size.writeString(String(body.readableBytes, radix: 16))
            size.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(size)), promise: nil)
            context.write(wrapOutboundOut(.byteBuffer(body)), promise: nil)
            context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(staticString: "\r\n"))), promise: promise)
        case .end:
            if chunked {
                chunked = false
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(staticString: "0\r\n\r\n"))), promise: promise)
            } else if let promise {
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
            }
        }
    }
}
