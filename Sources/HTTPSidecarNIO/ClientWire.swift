import HTTPSidecar
import NIOCore

/// The bytes of one client connection, sans-IO: what the client sent, read into request parts by
/// ``HTTP1RequestDecoder``, and the answers, written as bytes by ``HTTP1ResponseEncoder`` (which
/// learns from the heads read which answers are to HEAD). The ingress's ``IngressConnection``
/// engine holds one (in NIO and in the simulator alike); the egress's NIO handler runs one through
/// ``ClientWire``.
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

/// An egress client connection's ``ClientCodec`` in the connection's one NIO handler. Codec and
/// policy share one pipeline stage, so a request crosses no handler boundary (no message boxing, no
/// dynamic casts, no per-part pipeline walk) on its way through the sidecar.
///
/// Confined to the connection's event loop.
final class ClientWire {
    private var codec = ClientCodec()
    /// The handler's context, while it is in the pipeline.
    var context: ChannelHandlerContext?

    /// Takes bytes the client sent; ``nextPart()`` reads them.
    func received(_ bytes: ByteBuffer) { codec.received(bytes) }

    /// See ``ClientCodec/nextPart()``.
    func nextPart() throws -> ClientRequestPart? { try codec.nextPart() }

    // MARK: Writing

    /// Writes `part`'s bytes; `promise` completes when the last of them is written (or at once when
    /// there are none, after what was written before).
    func send(_ part: consuming ClientResponsePart, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var held: IOData?
        codec.encode(part, allocator: context.channel.allocator) { data in
            if let previous = held { context.write(NIOAny(previous), promise: nil) }
            held = data
        }
        if let held {
            context.write(NIOAny(held), promise: promise)
        } else if let promise {
            context.write(NIOAny(IOData.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
    }

    /// Writes `part` and flushes.
    func sendAndFlush(_ part: ClientResponsePart, promise: EventLoopPromise<Void>? = nil) {
        send(part, promise: promise)
        context?.flush()
    }

    /// Writes `part`, flushes, and closes the connection once it is written.
    func sendAndClose(_ part: ClientResponsePart) {
        guard let context else { return }
        let channel = context.channel
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        sendAndFlush(part, promise: promise)
    }

}
