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
    /// Bytes read and not yet decoded (a partial head or chunk-size line).
    private var unread = ByteBuffer.noBytes
    /// The decoder refused the stream: nothing more is read from it.
    public private(set) var failed = false

    public init() {}

    /// The bytes of a request part, handed to `emit` in order; a head also tells the decoder that
    /// its answer comes after those already awaited.
    public mutating func encode(_ part: UpstreamRequestPart, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        if case .head(_, let kind) = part { decoder.expectAnswer(to: kind) }
        encoder.encode(part, allocator: allocator, emit: emit)
    }

    /// Takes bytes the upstream sent; ``nextPart()`` reads them.
    public mutating func received(_ bytes: ByteBuffer) {
        guard !failed else { return }
        if unread.readableBytes == 0 {
            unread = bytes
        } else {
            var bytes = bytes
            unread.writeBuffer(&bytes)
        }
    }

    /// The next part of an answer in what was received, or nil when more bytes are needed. A refused
    /// answer or unsolicited bytes are thrown once; afterwards the stream is dead.
    public mutating func nextPart() throws -> UpstreamResponsePart? {
        guard !failed else { return nil }
        let part: UpstreamResponsePart?
        do {
            part = try decoder.next(&unread)
        } catch {
            failed = true
            unread.clear()
            throw error
        }
        if part == nil, unread.readableBytes == 0 { unread = ByteBuffer.noBytes }  // the read buffer is let go
        return part
    }

    /// The upstream closed: the end of a body delimited by the close, or nil.
    public mutating func endOfStream() -> UpstreamResponsePart? {
        failed ? nil : decoder.endOfStream()
    }
}
