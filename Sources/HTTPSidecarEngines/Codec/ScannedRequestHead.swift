import HTTPSidecar
import NIOCore
import NIOHTTP1

/// A request head as the framing scanner read it: its bytes and where each piece is. Nothing is
/// decoded up front; a field becomes a string only when a decision reads it, and the head the app
/// gets is written from these bytes (``IngressAdmission``), so relaying a header line costs no
/// allocation. A class: a request part carries it as a reference.
public final class ScannedRequestHead: Sendable {
    /// The head's bytes, from the request line (or the empty lines before it) through the empty
    /// line that ends it. The offsets in ``scan`` count from its reader index.
    public let bytes: ByteBuffer
    /// What the scanner found.
    public let scan: HTTP1RequestHead

    public init(bytes: ByteBuffer, scan: HTTP1RequestHead) {
        self.bytes = bytes
        self.scan = scan
    }

    /// Scans a whole head (and nothing after it) from `bytes`: the head, or why the scanner refused
    /// it; nil when the bytes end before the head does.
    public static func scanning(_ bytes: ByteBuffer, limits: HTTP1Limits = HTTP1Limits()) -> Result<ScannedRequestHead, HTTP1Violation>? {
        var scanner = HTTP1RequestScanner(limits: limits)
        var head = HTTP1RequestHead()
        switch bytes.withUnsafeReadableBytes({ scanner.scan($0, into: &head) }) {
        case .needMore: return nil
        case .invalid(let violation): return .failure(violation)
        case .complete: return .success(ScannedRequestHead(bytes: bytes.getSlice(at: bytes.readerIndex, length: head.length)!, scan: head))
        }
    }

    /// A copy that holds only its own bytes and fields: a head kept for later (queued behind a
    /// request being answered) must not pin the read buffer it was sliced from, nor the scanner's
    /// field array sized by the largest head seen.
    public func compacted() -> ScannedRequestHead {
        ScannedRequestHead(bytes: ByteBuffer(bytes: bytes.readableBytesView), scan: scan.compacted())
    }

    public var method: HTTP1Method { scan.method }

    /// The version in NIO's vocabulary.
    public var version: HTTPVersion { scan.version == .http11 ? .http1_1 : .http1_0 }

    /// The request-target as sent.
    public var target: String { string(scan.target) }

    /// Header field lines.
    public var fieldCount: Int { scan.fields.count }

    /// The first value of the field `name` (any case), or nil.
    public func first(_ name: String) -> String? {
        bytes.withUnsafeReadableBytes { raw in
            for field in scan.fields where RelayedFields.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: raw[field.name]), name.utf8) {
                return String(decoding: UnsafeRawBufferPointer(rebasing: raw[field.value]), as: UTF8.self)
            }
            return nil
        }
    }

    /// Every value of the field `name` (any case), in order.
    public func values(_ name: String) -> [String] {
        bytes.withUnsafeReadableBytes { raw in
            scan.fields.filter { RelayedFields.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: raw[$0.name]), name.utf8) }
                .map { String(decoding: UnsafeRawBufferPointer(rebasing: raw[$0.value]), as: UTF8.self) }
        }
    }

    /// The same head as NIO's `HTTPRequestHead` (every field a string pair).
    public var nio: HTTPRequestHead {
        bytes.withUnsafeReadableBytes { HTTPRequestHead(scanned: scan, in: $0) }
    }

    private func string(_ range: Range<Int>) -> String {
        bytes.withUnsafeReadableBytes { String(decoding: UnsafeRawBufferPointer(rebasing: $0[range]), as: UTF8.self) }
    }
}

/// A request head encoded for an upstream, with what the connection needs to know about it.
public struct EncodedRequestHead: Sendable {
    /// What the connection must know of a head besides its bytes (one byte: the request parts stay small).
    public enum Kind: UInt8, Sendable {
        case plain
        /// The body follows in chunks.
        case chunked
        /// A HEAD request: its answer has no body, whatever its fields say.
        case headMethod
    }

    /// What the connection must know of this head.
    public var kind: Kind { method == .head ? .headMethod : chunked ? .chunked : .plain }

    /// The request line, the field lines and the empty line.
    public var bytes: ByteBuffer
    public var method: HTTP1Method
    /// Whether the body is sent chunked (the encoder frames each part).
    public var chunked: Bool

    public init(bytes: ByteBuffer, method: HTTP1Method, chunked: Bool) {
        self.bytes = bytes
        self.method = method
        self.chunked = chunked
    }

    /// `head` as written on the wire (the egress and the fetchers build NIO heads). Framing as NIO's
    /// encoder sets it: a method that carries a body (POST, PUT, PATCH) without a length is sent
    /// chunked; a TRACE carries none.
    public init(_ head: HTTPRequestHead) {
        var head = head
        switch head.method {
        case .TRACE:
            head.headers.remove(name: "content-length")
            head.headers.remove(name: "transfer-encoding")
        case .POST, .PUT, .PATCH:
            if !head.headers.contains(name: "content-length") { head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked") }
        default:
            break
        }
        var out = ByteBufferAllocator().buffer(capacity: 256)
        out.writeString(head.method.rawValue)
        out.writeStaticString(" ")
        out.writeString(head.uri)
        out.writeStaticString(head.version == .http1_0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n")
        for (name, value) in head.headers {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        bytes = out
        method = HTTP1Method.allCases.first { $0.text == head.method.rawValue } ?? .get
        chunked = head.headers["transfer-encoding"].contains { $0.lowercased() == "chunked" }
    }
}

extension HTTP1Method {
    /// The method as a string.
    public var text: String { String(decoding: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), as: UTF8.self) }
}
