import HTTPSidecar
import NIOCore

extension ChunkedBodyScanner {
    /// Reads the chunked body at the start of `buffer`: its data is appended to `slices` as slices
    /// of the buffer (no copies) and the bytes read are moved past (all of them while the body goes
    /// on, up to its end when it ends). Returns whether the body ended; throws the violation that
    /// refuses it. Shared by the request and answer decoders.
    mutating func read(_ buffer: inout ByteBuffer, into slices: inout [ByteBuffer]) throws -> Bool {
        let start = buffer.readerIndex
        let whole = buffer
        let step = whole.withUnsafeReadableBytes { bytes in
            scan(bytes) { slices.append(whole.getSlice(at: start + $0.lowerBound, length: $0.count)!) }
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
