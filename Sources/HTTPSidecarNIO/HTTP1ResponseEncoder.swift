import NIOCore
import NIOHTTP1

/// The methods of requests a connection has read and not answered yet, in order: the request
/// decoder adds one per head, the response encoder takes one per final answer (a HEAD answer has
/// no body, whatever its framing fields say). Confined to the connection's event loop.
final class PendingRequestMethods {
    private var methods = CircularBuffer<HTTPMethod>(initialCapacity: 4)

    func append(_ method: HTTPMethod) { methods.append(method) }
    func next() -> HTTPMethod? { methods.popFirst() }
}

/// An answer on its way to a client: a head the sidecar built, or one it relays already encoded.
/// Small enough (24 bytes) for NIO to carry each part without boxing it.
enum ClientResponsePart {
    case head(HTTPResponseHead)
    /// An upstream's head as the ingress relays it (``ProxyHeaders/relayedHead(scanned:rules:setting:requestVersion:keepAlive:)``):
    /// the status and field lines, and how its body is framed.
    case relayedHead(ByteBuffer, EncodedResponseHead.FramingUnlessHead)

    /// `head` relayed.
    static func relayed(_ head: EncodedResponseHead) -> Self { .relayedHead(head.bytes, head.framingUnlessHead) }
    case body(IOData)
    case end
}

/// Writes the sidecar's answers to a client as HTTP/1.1 bytes, paired with ``HTTP1RequestDecoder``.
///
/// Framing: a `Content-Length` the handler set is kept; otherwise a `Transfer-Encoding: chunked` it
/// set, or (HTTP/1.1, a status and method that carry a body) one added here; an HTTP/1.0 answer
/// without a length is delimited by the close (the handlers close it). Answers to HEAD, and 1xx,
/// 204 and 304 answers, never carry body bytes or a chunk terminator, whatever their fields say:
/// writing one would be read by the client as the start of the next answer.
final class HTTP1ResponseEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ClientResponsePart
    typealias OutboundOut = IOData

    private let pending: PendingRequestMethods
    /// How the body of the answer being written is framed.
    private enum Body { case none, plain, chunked }
    private var body = Body.plain

    init(pending: PendingRequestMethods) {
        self.pending = pending
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            let informational = head.status.code < 200 && head.status.code != 101
            let method = informational ? nil : pending.next()
            let noBody = method == .HEAD || head.status.code < 200 || head.status.code == 204 || head.status.code == 304
            if noBody {
                body = .none
            } else if head.headers.contains(name: "content-length") {
                body = .plain
            } else if head.headers["transfer-encoding"].contains(where: { $0.lowercased() == "chunked" }) {
                body = .chunked
            } else if head.version == .http1_1 {
                head.headers.add(name: "transfer-encoding", value: "chunked")
                body = .chunked
            } else {
                body = .plain
            }
            var buffer = context.channel.allocator.buffer(capacity: 256)
            buffer.writeHead(head)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .relayedHead(var bytes, let framing):
            // Relayed heads are final answers (the upstream decoder drops interim ones).
            switch framing.framing(answeringHead: pending.next() == .HEAD) {
            case .none: body = .none
            case .plain: body = .plain
            case .chunked(let addField):
                if addField { bytes.writeStaticString("transfer-encoding: chunked\r\n") }
                body = .chunked
            }
            bytes.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: promise)
        case .body(let data):
            switch body {
            case .none:
                promise?.succeed(())
            case .plain:
                context.write(wrapOutboundOut(data), promise: promise)
            case .chunked:
                guard data.readableBytes > 0 else { promise?.succeed(()); return }
                var size = context.channel.allocator.buffer(capacity: 18)
                size.writeString(String(data.readableBytes, radix: 16))
                size.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(size)), promise: nil)
                context.write(wrapOutboundOut(data), promise: nil)
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(staticString: "\r\n"))), promise: promise)
            }
        case .end:
            let chunked = body == .chunked
            body = .plain
            if chunked {
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(staticString: "0\r\n\r\n"))), promise: promise)
            } else if let promise {
                // Nothing to write, but the promise must complete after what was written before it.
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
            }
        }
    }
}

extension ByteBuffer {
    /// Status line and fields of `head`, and the empty line.
    mutating func writeHead(_ head: HTTPResponseHead) {
        writeStaticString(head.version == .http1_1 ? "HTTP/1.1 " : "HTTP/1.0 ")
        writeString(String(head.status.code))
        writeStaticString(" ")
        writeString(head.status.reasonPhrase)
        writeStaticString("\r\n")
        for (name, value) in head.headers {
            writeString(name)
            writeStaticString(": ")
            writeString(value)
            writeStaticString("\r\n")
        }
        writeStaticString("\r\n")
    }
}
