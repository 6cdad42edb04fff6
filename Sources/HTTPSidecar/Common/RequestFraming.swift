/// How a request's body is delimited on the wire (RFC 9112 §6), decided once from the fields the
/// client sent and then set explicitly on the relayed request, so the bytes the sidecar forwards
/// always carry framing that matches them: a `Connection` header naming `Content-Length`, or a
/// method the encoder thinks "unlikely" to have a body, can never leave a body unframed.
public enum RequestFraming: Hashable, Sendable {
    /// No body.
    case none
    /// `Content-Length: n`.
    case length(Int)
    /// `Transfer-Encoding: chunked`.
    case chunked

    /// Why the framing of a request cannot be relayed safely (answered with 400 and a close).
    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        case conflictingLengths
        case badLength
        case lengthAndChunked
        case unsupportedTransferCoding
        case traceWithBody

        public var code: String {
            switch self {
            case .traceWithBody: "trace_with_body"
            default: "bad_framing"
            }
        }

        public var description: String {
            switch self {
            case .conflictingLengths: "Content-Length fields disagree"
            case .badLength: "Content-Length is not a number"
            case .lengthAndChunked: "both Content-Length and Transfer-Encoding"
            case .unsupportedTransferCoding: "a transfer coding other than a final chunked"
            case .traceWithBody: "a TRACE request may not carry a body"
            }
        }
    }

    /// The framing of a request with these `Content-Length` and `Transfer-Encoding` values.
    public static func of(method: String, contentLength: [String], transferEncoding: [String]) -> Result<RequestFraming, Problem> {
        let framing: RequestFraming
        if !transferEncoding.isEmpty {
            guard contentLength.isEmpty else { return .failure(.lengthAndChunked) }
            let codings = transferEncoding.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces.lowercased() }
            guard codings.last == "chunked", codings.filter({ $0 == "chunked" }).count == 1 else { return .failure(.unsupportedTransferCoding) }
            framing = .chunked
        } else if !contentLength.isEmpty {
            let values = contentLength.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { $0.trimmingSpaces }
            guard values.allSatisfy({ $0 == values[0] }) else { return .failure(.conflictingLengths) }
            let text = values[0]
            guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(text) else {
                return .failure(.badLength)
            }
            framing = .length(n)
        } else {
            framing = .none
        }
        if method.uppercased() == "TRACE", framing.hasBody { return .failure(.traceWithBody) }
        return .success(framing)
    }

    /// Whether body bytes follow the head.
    public var hasBody: Bool {
        switch self {
        case .none, .length(0): false
        default: true
        }
    }

    /// The framing field to set on the relayed head (after removing any the client sent); methods
    /// that normally carry a body get `Content-Length: 0` rather than nothing.
    public func field(method: String) -> (name: String, value: String)? {
        switch self {
        case .length(let n): return ("content-length", String(n))
        case .chunked: return ("transfer-encoding", "chunked")
        case .none:
            switch method.uppercased() {
            case "POST", "PUT", "PATCH": return ("content-length", "0")
            default: return nil
            }
        }
    }
}

/// Checks for values that are written into header fields.
public enum HeaderValue {
    /// Whether `value` can go into a header field as it is: no CR, LF, NUL or other control
    /// character but horizontal tab (RFC 9110 §5.5). Anything built from request data is checked.
    public static func isSafe(_ value: some StringProtocol) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    /// `text` made fit for the inside of a quoted-string: only visible ASCII and spaces are kept,
    /// `"` and `\` are dropped, and it is cut at `limit` bytes. For diagnostics in headers such as
    /// `WWW-Authenticate`, where untrusted text must never add lines or change the field's meaning.
    public static func quotable(_ text: String, limit: Int = 120) -> String {
        var out: [UInt8] = []
        for b in text.utf8 where b >= 0x20 && b < 0x7F && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") {
            out.append(b)
            if out.count >= limit { break }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `value` is a reasonable correlation or request id to echo back: 1 to 128 bytes of
    /// letters, digits and `-_.:`.
    public static func isPlainId(_ value: String) -> Bool {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= 128 else { return false }
        return bytes.allSatisfy { RequestTarget.isUnreserved($0) || $0 == UInt8(ascii: ":") }
    }
}

extension StringProtocol {
    /// The text without the spaces and tabs (HTTP's optional whitespace) at either end; no Foundation
    /// bridging, which cost three allocations per call.
    public var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
