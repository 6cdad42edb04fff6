import HTTPSidecar
import NIOCore

/// The bytes of one client connection, sans-IO: what the client sent, read into request parts by
/// ``HTTP1RequestDecoder``, and the answers, written as bytes by ``HTTP1ResponseEncoder`` (which
/// learns from the heads read which answers are to HEAD). The connection engines
/// (``IngressConnection``, ``EgressConnection``) each hold one, in NIO and in the simulator alike.
public struct ClientCodec {
    private var decoder: HTTP1RequestDecoder
    private var encoder = HTTP1ResponseEncoder()
    private var unread = UnreadBytes()

    public init(limits: HTTP1Limits = HTTP1Limits(maxHeadBytes: 64 * 1024, maxFields: 1_000)) {
        decoder = HTTP1RequestDecoder(limits: limits)
    }

    /// Takes bytes the client sent; ``nextPart()`` reads them.
    public mutating func received(_ bytes: ByteBuffer) { unread.append(bytes) }

    /// The next request part in what was received, or nil when more bytes are needed. A violation
    /// is thrown once; afterwards the stream is dead and nothing more comes out.
    public mutating func nextPart() throws -> ClientRequestPart? {
        let part = try unread.next(from: &decoder)
        if case .head(let head) = part { encoder.expectAnswer(toHead: head.method == .head) }
        return part
    }

    /// The bytes of an answer part, handed to `emit` in order (none, one, or a chunk's three pieces).
    public mutating func encode(_ part: consuming ClientResponsePart, allocator: ByteBufferAllocator, emit: (IOData) -> Void) {
        encoder.encode(part, allocator: allocator, emit: emit)
    }
}
