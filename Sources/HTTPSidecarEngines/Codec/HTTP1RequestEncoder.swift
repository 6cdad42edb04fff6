import NIOCore

/// A request on its way to an upstream: the head already encoded, then body bytes without framing.
public enum UpstreamRequestPart {
    case head(ByteBuffer, EncodedRequestHead.Kind)
    case body(ByteBuffer)
    case end
}

/// Writes requests to an upstream: the head as encoded, the body as it comes or in chunks when the
/// head declared `Transfer-Encoding: chunked` (and the last chunk at the end). Nothing is added to
/// the head: it carries its framing already (``IngressAdmission`` and the egress set it). Not a
/// pipeline stage: ``UpstreamConnection`` calls it.
struct HTTP1RequestEncoder {
    private var chunked = false

    /// The bytes of `part`, handed to `emit` in order (none, one, or a chunk's three pieces).
    mutating func encode(_ part: UpstreamRequestPart, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        switch part {
        case .head(let bytes, let kind):
            chunked = kind == .chunked
            emit(bytes)
        case .body(let body):
            guard chunked else { return emit(body) }
            guard body.readableBytes > 0 else { return }
            emit(allocator.chunkSizeLine(body.readableBytes))
            emit(body)
            // ci/mutants: request-chunk-unterminated (the next line)
            emit(allocator.buffer(staticString: "\r\n"))
        case .end:
            if chunked {
                chunked = false
                emit(allocator.buffer(staticString: "0\r\n\r\n"))
            }
        }
    }
}

/// The bytes of one upstream connection, sans-IO: requests written by ``HTTP1RequestEncoder``, the
/// answers read by ``HTTP1ResponseDecoder`` (told by each head written which request an answer is
/// to). ``UpstreamConnection`` runs it in NIO; the simulated ingress sidecar runs it over simulated
/// streams, so both frame the request to the app and read its answer with the same code.
public struct UpstreamCodec {
    private var encoder = HTTP1RequestEncoder()
    private var decoder = HTTP1ResponseDecoder()
    private var unread = UnreadBytes()

    public init() {}

    /// The bytes of a request part, handed to `emit` in order; a head also tells the decoder that
    /// its answer comes after those already awaited.
    public mutating func encode(_ part: UpstreamRequestPart, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        if case .head(_, let kind) = part { decoder.expectAnswer(to: kind) }
        encoder.encode(part, allocator: allocator, emit: emit)
    }

    /// Takes bytes the upstream sent; ``nextPart()`` reads them.
    public mutating func received(_ bytes: ByteBuffer) { unread.append(bytes) }

    /// The next part of an answer in what was received, or nil when more bytes are needed. A refused
    /// answer or unsolicited bytes are thrown once; afterwards the stream is dead.
    public mutating func nextPart() throws -> UpstreamResponsePart? { try unread.next(from: &decoder) }

    // ci/mutants: trailing-bytes-reused (the declaration below)
    /// Whether the connection may carry another exchange after an answer ended: not when bytes came
    /// after the answer (a body on a HEAD, 204 or 304 answer, or past its Content-Length), since the
    /// next request's answer would be read from them. Both worlds' drivers ask this at an answer's end.
    public var reusableAfterAnswer: Bool { unread.isEmpty && !unread.failed }

    /// The upstream closed: the end of a body delimited by the close, or nil.
    public mutating func endOfStream() -> UpstreamResponsePart? {
        unread.failed ? nil : decoder.endOfStream()
    }
}
