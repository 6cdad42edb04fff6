import HTTPSidecar
import NIOCore
import NIOHTTP1

/// An upstream's answer as the decoder reads it: the head as scanned bytes, body bytes without framing.
public enum UpstreamResponsePart {
    case head(ScannedResponseHead)
    case body(ByteBuffer)
    case end
}

/// Reads an upstream's answers out of the bytes its connection receives, with the sidecar's own
/// framing scanner (``HTTP1ResponseScanner``) instead of llhttp. It is told which request each
/// answer is to (``expectAnswer(to:)``: a HEAD answer has no body, whatever its fields say). An
/// answer the scanner refuses, or bytes nobody asked for, fail the exchange (the client gets 502)
/// and close the connection: a pooled connection whose framing is in doubt is never reused.
/// Interim 1xx answers are dropped; a body delimited by the close ends when the upstream closes
/// (``endOfStream()``).
///
/// Not a pipeline stage: the connection's one handler (``UpstreamConnection``) calls it.
struct HTTP1ResponseDecoder {
    /// Where the decoder is in the byte stream.
    private enum Reading {
        /// Waiting for (the rest of) a head. → length, chunked, untilClose, end (no body)
        case head
        case length(remaining: Int)
        /// In a chunked body (read by ``chunks``). → end
        case chunked
        /// The body runs to the close. → (EOF) finished
        case untilClose
        /// The answer is complete: its end is the next part. → head, finished
        case end
        /// The connection may carry nothing more; any byte is a violation.
        case finished
    }

    private var scanner: HTTP1ResponseScanner
    private var head = HTTP1ResponseHead()
    private var reading = Reading.head
    private var keepAlive = true
    private var methods = CircularBuffer<HTTP1Method>(initialCapacity: 2)
    private var chunks = ChunkedBodyReader()

    init(limits: HTTP1Limits = HTTP1Limits(maxHeadBytes: 64 * 1024, maxFields: 1_000)) {
        scanner = HTTP1ResponseScanner(limits: limits)
    }

    /// A request went out: its answer is the next one after those already awaited.
    mutating func expectAnswer(to kind: EncodedRequestHead.Kind) {
        methods.append(kind == .headMethod ? .head : .get)
    }

    /// Bytes that arrived with no request awaiting an answer.
    struct UnsolicitedBytes: Error, CustomStringConvertible {
        var description: String { "the upstream sent bytes with no request outstanding" }
    }

    /// The next part `buffer` holds (its bytes consumed), or nil when more bytes are needed. Throws
    /// a violation for an answer the scanner refuses and ``UnsolicitedBytes`` for bytes nobody asked for.
    mutating func next(_ buffer: inout ByteBuffer) throws -> UpstreamResponsePart? {
        switch reading {
        case .end:
            _ = methods.popFirst()
            reading = keepAlive ? .head : .finished
            return .end
        case .chunked:
            switch try chunks.next(&buffer) {
            case .data(let slice)?: return .body(slice)
            case .end?:
                reading = .end
                return try next(&buffer)
            case nil: return nil
            }
        default:
            break
        }
        guard buffer.readableBytes > 0 else { return nil }
        switch reading {
        case .finished:
            throw UnsolicitedBytes()
        case .head:
            guard let method = methods.first else { throw UnsolicitedBytes() }
            let scan = buffer.withUnsafeReadableBytes { scanner.scan($0, method: method, into: &head) }
            switch scan {
            case .needMore: return nil
            case .invalid(let violation): throw violation
            case .complete: break
            }
            let bytes = buffer.readSlice(length: head.length)!
            scanner.reset()
            if head.isInformational { return try next(&buffer) }
            keepAlive = head.keepAlive
            switch head.framing {
            case .none: reading = .end
            case .length(let n): reading = .length(remaining: n)
            case .chunked:
                chunks.start(limits: scanner.limits)
                reading = .chunked
            case .untilClose: reading = .untilClose
            }
            return .head(ScannedResponseHead(bytes: bytes, scan: head))
        case .length(let remaining):
            let n = min(remaining, buffer.readableBytes)
            // ci/mutants: answer-cut-at-first-read (the next line)
            reading = n == remaining ? .end : .length(remaining: remaining - n)
            return .body(buffer.readSlice(length: n)!)
        case .untilClose:
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .end, .chunked:
            preconditionFailure("handled above")
        }
    }

    /// The upstream closed: the end of a body delimited by the close, or nil (any other unfinished
    /// answer is the connection's failure, reported by the handler).
    mutating func endOfStream() -> UpstreamResponsePart? {
        guard case .untilClose = reading else { return nil }
        reading = .finished
        return .end
    }
}
