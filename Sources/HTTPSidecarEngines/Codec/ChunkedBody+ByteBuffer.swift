import HTTPSidecar
import NIOCore

/// A chunked body read out of a connection's bytes, one data slice at a time (slices of the read
/// buffer, no copies), for the request and the answer decoders alike. ``start(limits:)`` at each
/// chunked head.
struct ChunkedBodyReader {
    /// What the body holds next.
    enum Step {
        case data(ByteBuffer)
        /// The last chunk (and trailer section) was read.
        case end
    }

    private var scanner = ChunkedBodyScanner()
    /// Data read from the last bytes scanned and not handed out yet (from `handedOut` on).
    private var slices: [ByteBuffer] = []
    private var handedOut = 0
    private var ended = false

    init() { slices.reserveCapacity(8) }

    /// A new body begins.
    mutating func start(limits: HTTP1Limits) {
        scanner = ChunkedBodyScanner(limits: limits)
        slices.removeAll(keepingCapacity: true)
        handedOut = 0
        ended = false
    }

    /// The next data slice, or the end, or nil when more bytes are needed. The bytes scanned are
    /// moved past (all of them while the body goes on, up to its end when it ends). Throws the
    /// violation that refuses the body.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Step? {
        if slices.isEmpty {
            if ended { return .end }
            guard buffer.readableBytes > 0 else { return nil }
            ended = try scan(&buffer)
            if slices.isEmpty { return ended ? .end : nil }
        }
        let slice = slices[handedOut]
        handedOut += 1
        if handedOut == slices.count {
            // All handed out: nothing here holds the read buffer any more.
            slices.removeAll(keepingCapacity: true)
            handedOut = 0
        }
        return .data(slice)
    }

    private mutating func scan(_ buffer: inout ByteBuffer) throws -> Bool {
        let start = buffer.readerIndex
        let whole = buffer
        let step = whole.withUnsafeReadableBytes { bytes in
            scanner.scan(bytes) { slices.append(whole.getSlice(at: start + $0.lowerBound, length: $0.count)!) }
        }
        switch step {
        case .needMore:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return false
        case .done(let consumed):
            buffer.moveReaderIndex(forwardBy: consumed)
            return true
        case .invalid(let violation):
            throw violation
        }
    }
}
