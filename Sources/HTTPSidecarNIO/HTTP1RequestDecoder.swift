import HTTPSidecar
import NIOCore
import NIOHTTP1

/// The parts a request decoder emits: the sidecars' (the head left as scanned bytes) or NIO's (each
/// head decoded into string pairs, for the differential tests).
protocol ScannedRequestPart {
    static func scannedHead(_ head: ScannedRequestHead) -> Self
    static func scannedBody(_ body: ByteBuffer) -> Self
    static var scannedEnd: Self { get }
}

extension HTTPServerRequestPart: ScannedRequestPart {
    static func scannedHead(_ head: ScannedRequestHead) -> Self { .head(head.nio) }
    static func scannedBody(_ body: ByteBuffer) -> Self { .body(body) }
    static var scannedEnd: Self { .end(nil) }
}

/// A client request as the sidecars read it: the head as scanned bytes, body bytes without framing.
enum ClientRequestPart: ScannedRequestPart {
    case head(ScannedRequestHead)
    case body(ByteBuffer)
    case end

    static func scannedHead(_ head: ScannedRequestHead) -> Self { .head(head) }
    static func scannedBody(_ body: ByteBuffer) -> Self { .body(body) }
    static var scannedEnd: Self { .end }
}

/// Decodes client requests with the sidecar's own framing scanner (``HTTP1RequestScanner``) instead
/// of llhttp, so everything the scanner refuses (see its rules) is answered 400/431/501/505 and the
/// connection closed before any byte reaches the app. Body bytes are slices of the read buffer (no
/// copies); a chunked body is handed on as its data, and the handlers re-frame it.
///
/// After a request that does not keep the connection open (`Connection: close`, HTTP/1.0 without
/// keep-alive), later bytes are dropped: nothing pipelined behind it is forwarded.
struct HTTP1RequestDecoder<Part: ScannedRequestPart>: ByteToMessageDecoder {
    typealias InboundOut = Part

    /// Where the decoder is in the byte stream.
    private enum Reading {
        /// Waiting for (the rest of) a head. → body (framed head), head (head without body), finished
        case head
        /// In a `Content-Length` body with `remaining` bytes to go. → head, finished
        case length(remaining: Int)
        /// In a chunked body. → head, finished
        case chunked(ChunkedBodyScanner)
        /// The connection ends after the current request: bytes are dropped.
        case finished
    }

    private var scanner: HTTP1RequestScanner
    private var head = HTTP1RequestHead()
    private var reading = Reading.head
    private var keepAlive = true
    private var slices: [ByteBuffer] = []
    /// Tells the paired ``HTTP1ResponseEncoder`` which answers are to HEAD requests.
    private let pending: PendingRequestMethods

    init(pending: PendingRequestMethods, limits: HTTP1Limits = HTTP1Limits(maxHeadBytes: 64 * 1024, maxFields: 1_000)) {
        self.pending = pending
        scanner = HTTP1RequestScanner(limits: limits)
        slices.reserveCapacity(8)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch reading {
        case .finished:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        case .head:
            let scan = buffer.withUnsafeReadableBytes { scanner.scan($0, into: &head) }
            switch scan {
            case .needMore: return .needMoreData
            case .invalid(let violation): throw violation
            case .complete: break
            }
            let scanned = ScannedRequestHead(bytes: buffer.readSlice(length: head.length)!, scan: head)
            scanner.reset()
            keepAlive = head.keepAlive
            pending.append(head.method.nio)
            context.fireChannelRead(Self.wrapInboundOut(.scannedHead(scanned)))
            switch head.framing {
            case .none: endMessage(context)
            case .length(let n): reading = .length(remaining: n)
            case .chunked: reading = .chunked(ChunkedBodyScanner(limits: scanner.limits))
            }
            return .continue
        case .length(let remaining):
            guard buffer.readableBytes > 0 else { return .needMoreData }
            let n = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: n)!
            context.fireChannelRead(Self.wrapInboundOut(.scannedBody(slice)))
            if n == remaining {
                endMessage(context)
            } else {
                reading = .length(remaining: remaining - n)
            }
            return .continue
        case .chunked(var chunks):
            guard buffer.readableBytes > 0 else { return .needMoreData }
            slices.removeAll(keepingCapacity: true)
            let ended = try chunks.read(&buffer, into: &slices)
            for slice in slices { context.fireChannelRead(Self.wrapInboundOut(.scannedBody(slice))) }
            guard ended else { reading = .chunked(chunks); return .needMoreData }
            endMessage(context)
            return .continue
        }
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A request cut off by the client's close is not completed here: the handler sees the close.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    private mutating func endMessage(_ context: ChannelHandlerContext) {
        reading = keepAlive ? .head : .finished
        context.fireChannelRead(Self.wrapInboundOut(.scannedEnd))
    }

}

/// Scanned heads in NIO's vocabulary.
enum ScannedHeads {
    /// NIO's head for the scanned one.
    static func nioHead(_ head: HTTP1RequestHead, _ bytes: UnsafeRawBufferPointer) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.fields.count)
        for field in head.fields {
            headers.add(name: string(bytes, field.name), value: string(bytes, field.value))
        }
        return HTTPRequestHead(version: head.version == .http11 ? .http1_1 : .http1_0, method: head.method.nio, uri: string(bytes, head.target), headers: headers)
    }

    /// NIO's head for a scanned answer.
    static func nioHead(_ head: HTTP1ResponseHead, _ bytes: UnsafeRawBufferPointer) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.fields.count)
        for field in head.fields {
            headers.add(name: string(bytes, field.name), value: string(bytes, field.value))
        }
        let status = HTTPResponseStatus(statusCode: head.status, reasonPhrase: string(bytes, head.reason))
        return HTTPResponseHead(version: head.version == .http11 ? .http1_1 : .http1_0, status: status, headers: headers)
    }

    @inline(__always) static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}

extension HTTPRequestHead {
    /// NIO's head for a request head the framing scanner read from `bytes`.
    public init(scanned head: HTTP1RequestHead, in bytes: UnsafeRawBufferPointer) {
        self = ScannedHeads.nioHead(head, bytes)
    }
}

extension HTTP1Method {
    /// The same method in NIO's vocabulary.
    var nio: HTTPMethod {
        switch self {
        case .get: .GET
        case .head: .HEAD
        case .post: .POST
        case .put: .PUT
        case .delete: .DELETE
        case .options: .OPTIONS
        case .trace: .TRACE
        case .patch: .PATCH
        case .propfind: .PROPFIND
        case .proppatch: .PROPPATCH
        case .mkcol: .MKCOL
        case .copy: .COPY
        case .move: .MOVE
        case .lock: .LOCK
        case .unlock: .UNLOCK
        case .report: .REPORT
        case .search: .SEARCH
        case .purge: .PURGE
        }
    }
}
