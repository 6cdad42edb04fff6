import HTTPSidecar
import NIOCore
import NIOHTTP1

/// An upstream's answer as the decoder reads it: the head as scanned bytes, body bytes without framing.
enum UpstreamResponsePart {
    case head(ScannedResponseHead)
    case body(ByteBuffer)
    case end
}

/// Decodes an upstream's answers with the sidecar's own framing scanner (``HTTP1ResponseScanner``)
/// instead of llhttp. It watches the requests written through it to know which answer is to a HEAD
/// (no body, whatever the fields say). An answer the scanner refuses, or bytes nobody asked for,
/// fail the exchange (the client gets 502) and close the connection: a pooled connection whose
/// framing is in doubt is never reused. Interim 1xx answers are dropped; a body delimited by the
/// close ends when the upstream closes.
struct HTTP1ResponseDecoder: WriteObservingByteToMessageDecoder {
    typealias InboundOut = UpstreamResponsePart
    typealias OutboundIn = UpstreamRequestPart

    /// Where the decoder is in the byte stream.
    private enum Reading {
        /// Waiting for (the rest of) a head. → length, chunked, untilClose, head (no body), finished
        case head
        case length(remaining: Int)
        case chunked(ChunkedBodyScanner)
        /// The body runs to the close. → (EOF) finished
        case untilClose
        /// The connection may carry nothing more; any byte is a violation.
        case finished
    }

    private var scanner: HTTP1ResponseScanner
    private var head = HTTP1ResponseHead()
    private var reading = Reading.head
    private var keepAlive = true
    private var methods = CircularBuffer<HTTP1Method>(initialCapacity: 2)
    private var slices: [ByteBuffer] = []

    init(limits: HTTP1Limits = HTTP1Limits(maxHeadBytes: 64 * 1024, maxFields: 1_000)) {
        scanner = HTTP1ResponseScanner(limits: limits)
        slices.reserveCapacity(8)
    }

    /// A request went out: its answer is the next one after those already awaited.
    mutating func write(data: UpstreamRequestPart) {
        if case .head(_, let kind) = data { methods.append(kind == .headMethod ? .head : .get) }
    }

    /// Bytes that arrived with no request awaiting an answer.
    struct UnsolicitedBytes: Error, CustomStringConvertible {
        var description: String { "the upstream sent bytes with no request outstanding" }
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes > 0 else { return .needMoreData }
        switch reading {
        case .finished:
            throw UnsolicitedBytes()
        case .head:
            guard let method = methods.first else { throw UnsolicitedBytes() }
            let scan = buffer.withUnsafeReadableBytes { scanner.scan($0, method: method, into: &head) }
            switch scan {
            case .needMore: return .needMoreData
            case .invalid(let violation): throw violation
            case .complete: break
            }
            let bytes = buffer.readSlice(length: head.length)!
            scanner.reset()
            if head.isInformational { return .continue }
            keepAlive = head.keepAlive
            context.fireChannelRead(Self.wrapInboundOut(.head(ScannedResponseHead(bytes: bytes, scan: head))))
            switch head.framing {
            case .none: endMessage(context)
            case .length(let n): reading = .length(remaining: n)
            case .chunked: reading = .chunked(ChunkedBodyScanner(limits: scanner.limits))
            case .untilClose: reading = .untilClose
            }
            return .continue
        case .length(let remaining):
            let n = min(remaining, buffer.readableBytes)
            context.fireChannelRead(Self.wrapInboundOut(.body(buffer.readSlice(length: n)!)))
            if n == remaining { endMessage(context) } else { reading = .length(remaining: remaining - n) }
            return .continue
        case .chunked(var chunks):
            guard buffer.readableBytes > 0 else { return .needMoreData }
            slices.removeAll(keepingCapacity: true)
            let ended = try chunks.read(&buffer, into: &slices)
            for slice in slices { context.fireChannelRead(Self.wrapInboundOut(.body(slice))) }
            guard ended else { reading = .chunked(chunks); return .needMoreData }
            endMessage(context)
            return .continue
        case .untilClose:
            context.fireChannelRead(Self.wrapInboundOut(.body(buffer.readSlice(length: buffer.readableBytes)!)))
            return .needMoreData
        }
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // The close ends a body delimited by it; any other unfinished answer is the connection's
        // failure, reported when the handler sees the close.
        if seenEOF, case .untilClose = reading {
            reading = .finished
            context.fireChannelRead(Self.wrapInboundOut(.end))
        }
        return .needMoreData
    }

    private mutating func endMessage(_ context: ChannelHandlerContext) {
        _ = methods.popFirst()
        reading = keepAlive ? .head : .finished
        context.fireChannelRead(Self.wrapInboundOut(.end))
    }
}
