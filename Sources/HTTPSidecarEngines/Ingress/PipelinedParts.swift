import NIOCore

/// Parts of pipelined requests that arrived while an earlier request was being answered, bounded
/// in parts and in bytes. Each part is copied when queued, so what waits holds only its own bytes
/// (not the read buffers it was sliced from, nor the scanner's field array). Once ``isFull``, the
/// engine stops reading parts out of its codec (the rest stay unread bytes) and pauses the client's
/// reads, so a client that pipelines without reading cannot grow the sidecar's memory.
struct PipelinedParts {
    /// More parts than this are full.
    static let maxParts = 64
    /// More bytes than this (head bytes and body bytes) are full: two of the largest heads.
    static let maxBytes = 128 * 1024

    private var parts: CircularBuffer<ClientRequestPart> = []
    private(set) var bytes = 0

    var isEmpty: Bool { parts.isEmpty }
    var count: Int { parts.count }
    var isFull: Bool { parts.count > Self.maxParts || bytes > Self.maxBytes }
    var first: ClientRequestPart? { parts.first }

    mutating func append(_ part: ClientRequestPart) {
        switch part {
        case .head(let head):
            bytes += head.bytes.readableBytes
            parts.append(.head(head.compacted()))
        case .body(let chunk):
            bytes += chunk.readableBytes
            parts.append(.body(ByteBuffer(bytes: chunk.readableBytesView)))
        case .end:
            parts.append(.end)
        }
    }

    mutating func popFirst() -> ClientRequestPart? {
        guard let part = parts.popFirst() else { return nil }
        switch part {
        case .head(let head): bytes -= head.bytes.readableBytes
        case .body(let chunk): bytes -= chunk.readableBytes
        case .end: break
        }
        return part
    }
}
