import HTTPSidecar
import NIOCore
import NIOHTTP1

/// A client request as the sidecars read it: the head as scanned bytes, body bytes without framing.
/// Small enough (9 bytes) for a switch over it to cost nothing.
public enum ClientRequestPart {
    case head(ScannedRequestHead)
    case body(ByteBuffer)
    case end
}

/// Reads client requests out of the bytes a connection receives, with the sidecar's own framing
/// scanner (``HTTP1RequestScanner``) instead of llhttp, so everything the scanner refuses (see its
/// rules) is answered 400/431/501/505 and the connection closed before any byte reaches the app.
/// Body bytes are slices of the read buffer (no copies); a chunked body is handed on as its data,
/// and the handlers re-frame it.
///
/// Not a pipeline stage: the connection's ``ClientCodec`` (in its engine) calls ``next(_:)`` on the
/// bytes it read, so a request costs no message hops between handlers.
///
/// After a request that does not keep the connection open (`Connection: close`, HTTP/1.0 without
/// keep-alive), later bytes are dropped: nothing pipelined behind it is forwarded.
struct HTTP1RequestDecoder {
    /// Where the decoder is in the byte stream.
    private enum Reading {
        /// Waiting for (the rest of) a head. → body (framed head), end (head without body), finished
        case head
        /// In a `Content-Length` body with `remaining` bytes to go. → end
        case length(remaining: Int)
        /// In a chunked body (read by ``chunks``). → head, finished
        case chunked
        /// The message is complete: its end is the next part. → head, finished
        case end
        /// The connection ends after the current request: bytes are dropped.
        case finished
    }

    private var scanner: HTTP1RequestScanner
    private var head = HTTP1RequestHead()
    private var reading = Reading.head
    private var keepAlive = true
    private var chunks = ChunkedBodyReader()

    init(limits: HTTP1Limits = HTTP1Limits(maxHeadBytes: 64 * 1024, maxFields: 1_000)) {
        scanner = HTTP1RequestScanner(limits: limits)
    }

    /// The next part `buffer` holds (its bytes consumed), or nil when more bytes are needed. Throws
    /// the scanner's ``HTTP1Violation`` for a request it refuses; the connection must close then.
    mutating func next(_ buffer: inout ByteBuffer) throws -> ClientRequestPart? {
        switch reading {
        case .finished:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return nil
        case .end:
            reading = keepAlive ? .head : .finished
            return .end
        case .head:
            guard buffer.readableBytes > 0 else { return nil }
            let scan = buffer.withUnsafeReadableBytes { scanner.scan($0, into: &head) }
            switch scan {
            case .needMore: return nil
            case .invalid(let violation): throw violation
            case .complete: break
            }
            let scanned = ScannedRequestHead(bytes: buffer.readSlice(length: head.length)!, scan: head)
            scanner.reset()
            keepAlive = head.keepAlive
            switch head.framing {
            case .none: reading = .end
            case .length(let n): reading = .length(remaining: n)
            case .chunked:
                chunks.start(limits: scanner.limits)
                reading = .chunked
            }
            return .head(scanned)
        case .length(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let n = min(remaining, buffer.readableBytes)
            reading = n == remaining ? .end : .length(remaining: remaining - n)
            return .body(buffer.readSlice(length: n)!)
        case .chunked:
            switch try chunks.next(&buffer) {
            case .data(let slice)?: return .body(slice)
            case .end?:
                reading = keepAlive ? .head : .finished
                return .end
            case nil: return nil
            }
        }
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
    public var nio: HTTPMethod {
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
