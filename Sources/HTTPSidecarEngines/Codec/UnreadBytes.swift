import NIOCore

/// A decoder that reads parts out of a connection's bytes, consuming what it reads.
protocol PartDecoder {
    associatedtype Part
    /// The next part `buffer` holds (its bytes consumed), or nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Part?
}

extension HTTP1RequestDecoder: PartDecoder {}
extension HTTP1ResponseDecoder: PartDecoder {}

/// The bytes a connection read and its decoder has not consumed yet (a partial head or chunk-size
/// line), shared by ``ClientCodec`` and ``UpstreamCodec``. After the decoder refuses the stream,
/// nothing more is kept or read.
struct UnreadBytes {
    private var buffer = ByteBuffer.noBytes
    /// The decoder refused the stream.
    private(set) var failed = false

    /// Bytes are kept that the decoder has not read yet.
    var isEmpty: Bool { buffer.readableBytes == 0 }

    /// Keeps bytes just read after those not consumed yet.
    mutating func append(_ bytes: ByteBuffer) {
        guard !failed else { return }
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next part `decoder` reads from the bytes kept, or nil when it needs more. A refusal is
    /// thrown once; afterwards nothing more comes out.
    mutating func next<Decoder: PartDecoder>(from decoder: inout Decoder) throws -> Decoder.Part? {
        guard !failed else { return nil }
        let part: Decoder.Part?
        do {
            part = try decoder.next(&buffer)
        } catch {
            failed = true
            buffer = ByteBuffer.noBytes
            throw error
        }
        // All read: the read buffer is let go (NIO reuses it for the next read when nothing holds it).
        if part == nil, buffer.readableBytes == 0 { buffer = ByteBuffer.noBytes }
        return part
    }
}

extension ByteBuffer {
    /// An empty buffer, shared (holds no read buffer's storage).
    static let noBytes = ByteBuffer()
}
