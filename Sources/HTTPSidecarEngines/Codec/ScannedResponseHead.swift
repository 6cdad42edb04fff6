import HTTPSidecar
import NIOCore
import NIOHTTP1

/// An upstream's answer head as the framing scanner read it: its bytes and where each piece is.
/// The ingress and the egress relay it from these bytes (``ProxyHeaders/relayedHead(scanned:rules:setting:requestVersion:keepAlive:)``);
/// the fetchers read it as NIO's head (``nio``).
public final class ScannedResponseHead: Sendable {
    /// The head's bytes, from the status line through the empty line. Offsets in ``scan`` count
    /// from its reader index.
    public let bytes: ByteBuffer
    public let scan: HTTP1ResponseHead

    public init(bytes: ByteBuffer, scan: HTTP1ResponseHead) {
        self.bytes = bytes
        self.scan = scan
    }

    public var status: Int { scan.status }

    /// The first value of the field `name` (any case), or nil.
    public func first(_ name: String) -> String? {
        bytes.withUnsafeReadableBytes { raw in
            for field in scan.fields where RelayedFields.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: raw[field.name]), name.utf8) {
                return String(decoding: UnsafeRawBufferPointer(rebasing: raw[field.value]), as: UTF8.self)
            }
            return nil
        }
    }

    /// The status with its reason phrase as NIO words it (the app's phrase for a code NIO does not know).
    public var nioStatus: HTTPResponseStatus {
        HTTPResponseStatus(statusCode: scan.status, reasonPhrase: bytes.withUnsafeReadableBytes { ScannedHeads.string($0, scan.reason) })
    }

    /// The same head as NIO's `HTTPResponseHead` (every field a string pair).
    public var nio: HTTPResponseHead {
        bytes.withUnsafeReadableBytes { ScannedHeads.nioHead(scan, $0) }
    }
}

/// An answer head encoded for a client, without the empty line that ends it: the answer writer
/// (``HTTP1ResponseEncoder``) adds the framing it needs (``FramingUnlessHead``) and the empty line.
public struct EncodedResponseHead: Sendable {
    /// The status line and the field lines.
    public var bytes: ByteBuffer
    public var status: Int
    public var version: HTTPVersion
    /// Whether the fields carry a `Content-Length`.
    public var hasLength: Bool
    /// Whether the fields carry `Transfer-Encoding: chunked`.
    public var chunked: Bool

    /// How the body of an answer with this head is written.
    public enum BodyFraming: Hashable, Sendable {
        /// No body bytes at all (an answer to HEAD; 1xx, 204, 304).
        case none
        /// As they come (a length, or the close).
        case plain
        /// In chunks; `addField` when the head does not say so yet and the encoder must add
        /// `Transfer-Encoding: chunked`.
        case chunked(addField: Bool)
    }

    /// The framing of the answer unless it answers a HEAD request (which the writer alone knows): a
    /// head without a length is sent chunked to an HTTP/1.1 client and delimited by the close for
    /// HTTP/1.0.
    var framingUnlessHead: FramingUnlessHead {
        if status < 200 || status == 204 || status == 304 { return .none }
        if hasLength { return .plain }
        if chunked { return .chunked }
        // ci/mutants: answer-unframed (the next line)
        return version == .http1_1 ? .addChunked : .plain
    }

    /// ``BodyFraming`` before the writer knows whether the request was a HEAD (one byte: the answer
    /// parts stay small).
    public enum FramingUnlessHead: UInt8, Sendable {
        case none, plain, chunked, addChunked

        public func framing(answeringHead: Bool) -> BodyFraming {
            if answeringHead { return .none }
            switch self {
            case .none: return .none
            case .plain: return .plain
            case .chunked: return .chunked(addField: false)
            case .addChunked: return .chunked(addField: true)
            }
        }
    }
}

extension ProxyHeaders {
    /// The head of an upstream's answer as the ingress relays it, written from the scanned bytes
    /// (a field that passes unchanged is copied as the app sent it): hop-by-hop headers removed,
    /// the configured rules applied, the sidecar's own headers set (CORS's `Vary` joins the app's).
    /// An HTTP/1.0 client cannot read chunked framing, so an answer without a length goes out with
    /// an HTTP/1.0 head and is delimited by the close. A test compares it with the same edits on
    /// NIO's head; `closeAfter` tells the caller to close once the answer is out.
    public static func relayedHead(scanned response: ScannedResponseHead, rules: HeaderRules, setting extra: [(String, String)] = [],
                                   requestVersion: HTTPVersion, keepAlive: Bool) -> (head: EncodedResponseHead, closeAfter: Bool) {
        response.bytes.withUnsafeReadableBytes { raw in
            var fields = RelayedFields(raw, fields: response.scan.fields, room: extra.count + 2)
            // ci/mutants: answer-keeps-hop-by-hop (the next line)
            fields.removeHopByHop()
            fields.apply(rules)
            for (name, value) in extra {
                // CORS varies on Origin: added to the app's own Vary instead of replacing it.
                if name == "vary", let prior = fields.first("vary") {
                    let all = fields.all("vary").joined(separator: ", ")
                    let listed = all.split(separator: ",").map { $0.trimmingSpaces.lowercased() }
                    if !listed.contains("*") && !listed.contains(value.lowercased()) {
                        fields.replaceOrAdd("vary", (all.isEmpty ? prior : all) + ", " + value)
                    }
                    continue
                }
                fields.replaceOrAdd(name, value)
            }
            let http10 = requestVersion.major == 1 && requestVersion.minor == 0
            let hasLength = fields.contains("content-length")
            let closeAfter = !keepAlive || (http10 && !hasLength)
            if closeAfter { fields.replaceOrAdd("connection", "close") }
            let chunked = fields.all("transfer-encoding").contains { $0.lowercased() == "chunked" }

            let status = response.scan.status
            let reason = response.nioStatus.reasonPhrase
            var out = ByteBufferAllocator().buffer(capacity: 13 + reason.utf8.count + fields.writtenLength + 32)
            out.writeStaticString(http10 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.writeInteger(UInt8(truncatingIfNeeded: 0x30 + status / 100 % 10))
            out.writeInteger(UInt8(truncatingIfNeeded: 0x30 + status / 10 % 10))
            out.writeInteger(UInt8(truncatingIfNeeded: 0x30 + status % 10))
            out.writeStaticString(" ")
            out.writeString(reason)
            out.writeStaticString("\r\n")
            fields.write(into: &out)
            let head = EncodedResponseHead(bytes: out, status: status, version: http10 ? .http1_0 : .http1_1, hasLength: hasLength, chunked: chunked)
            return (head, closeAfter)
        }
    }
}
