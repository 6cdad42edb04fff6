import NIOCore
import NIOHTTP1

/// An answer on its way to a client: a head the sidecar built, or one it relays already encoded.
public enum ClientResponsePart {
    case head(HTTPResponseHead)
    /// An upstream's head as the ingress relays it (``ProxyHeaders/relayedHead(scanned:rules:setting:requestVersion:keepAlive:)``):
    /// the status and field lines, and how its body is framed.
    case relayedHead(ByteBuffer, EncodedResponseHead.FramingUnlessHead)

    /// `head` relayed.
    /// (Consumed: the encoder appends the framing field and the empty line to the head's own buffer,
    /// in place when nothing else holds it.)
    public static func relayed(_ head: consuming EncodedResponseHead) -> Self {
        let framing = head.framingUnlessHead
        return .relayedHead(head.bytes, framing)
    }
    case body(IOData)
    case end
}

/// Writes the sidecar's answers to a client as HTTP/1.1 bytes, paired with ``HTTP1RequestDecoder``
/// in the connection's codec (``ClientCodec``).
///
/// Framing: a `Content-Length` the handler set is kept; otherwise a `Transfer-Encoding: chunked` it
/// set, or (HTTP/1.1, a status and method that carry a body) one added here; an HTTP/1.0 answer
/// without a length is delimited by the close (the handlers close it). Answers to HEAD, and 1xx,
/// 204 and 304 answers, never carry body bytes or a chunk terminator, whatever their fields say:
/// writing one would be read by the client as the start of the next answer.
struct HTTP1ResponseEncoder {
    /// Whether each request read and not answered yet is a HEAD, in order: the decoder's side adds
    /// one per head (``expectAnswer(toHead:)``), a final answer takes one.
    private var pendingHeads = CircularBuffer<Bool>(initialCapacity: 4)
    /// How the body of the answer being written is framed.
    private enum Body { case none, plain, chunked }
    private var body = Body.plain

    /// A request was read: its answer comes after those already awaited.
    mutating func expectAnswer(toHead: Bool) { pendingHeads.append(toHead) }

    /// The bytes of `part`, handed to `emit` in order (none, one, or a chunk's three pieces).
    mutating func encode(_ part: consuming ClientResponsePart, allocator: ByteBufferAllocator, emit: (IOData) -> Void) {
        switch consume part {
        case .head(var head):
            let informational = head.status.code < 200 && head.status.code != 101
            let answersHead = informational ? false : (pendingHeads.popFirst() ?? false)
            let noBody = answersHead || head.status.code < 200 || head.status.code == 204 || head.status.code == 304
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
            var buffer = allocator.buffer(capacity: 256)
            buffer.writeHead(head)
            emit(.byteBuffer(buffer))
        case .relayedHead(var bytes, let framing):
            // Relayed heads are final answers (the upstream decoder drops interim ones).
            switch framing.framing(answeringHead: pendingHeads.popFirst() ?? false) {
            case .none: body = .none
            case .plain: body = .plain
            case .chunked(let addField):
                if addField { bytes.writeStaticString("transfer-encoding: chunked\r\n") }
                body = .chunked
            }
            bytes.writeStaticString("\r\n")
            emit(.byteBuffer(bytes))
        case .body(let data):
            switch body {
            case .none:
                break
            case .plain:
                emit(data)
            case .chunked:
                guard data.readableBytes > 0 else { return }
                // ci/mutants: chunk-size-line-dropped (the next line)
                emit(.byteBuffer(allocator.chunkSizeLine(data.readableBytes)))
                emit(data)
                emit(.byteBuffer(allocator.buffer(staticString: "\r\n")))
            }
        case .end:
            let chunked = body == .chunked
            body = .plain
            if chunked { emit(.byteBuffer(allocator.buffer(staticString: "0\r\n\r\n"))) }
        }
    }
}

extension ByteBufferAllocator {
    /// A chunk's size line: the size in hex and CRLF.
    func chunkSizeLine(_ size: Int) -> ByteBuffer {
        var line = buffer(capacity: 18)
        line.writeString(String(size, radix: 16))
        line.writeStaticString("\r\n")
        return line
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
