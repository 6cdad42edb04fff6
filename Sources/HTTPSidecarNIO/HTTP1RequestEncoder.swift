import NIOCore

/// A request on its way to an upstream: the head already encoded, then body bytes without framing.
enum UpstreamRequestPart {
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
