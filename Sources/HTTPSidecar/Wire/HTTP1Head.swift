/// The HTTP versions a relay speaks on either side.
public enum HTTP1Version: Hashable, Sendable {
    case http10
    case http11
}

/// The request methods the relay forwards. A closed list (the common ones and WebDAV's), so that a
/// method name is never something the app's parser reads differently; `CONNECT` is not in it.
public enum HTTP1Method: UInt8, Hashable, Sendable, CaseIterable {
    case get, head, post, put, delete, options, trace, patch
    case propfind, proppatch, mkcol, copy, move, lock, unlock, report, search, purge

    /// The method as it appears on the wire.
    public var name: StaticString {
        switch self {
        case .get: "GET"
        case .head: "HEAD"
        case .post: "POST"
        case .put: "PUT"
        case .delete: "DELETE"
        case .options: "OPTIONS"
        case .trace: "TRACE"
        case .patch: "PATCH"
        case .propfind: "PROPFIND"
        case .proppatch: "PROPPATCH"
        case .mkcol: "MKCOL"
        case .copy: "COPY"
        case .move: "MOVE"
        case .lock: "LOCK"
        case .unlock: "UNLOCK"
        case .report: "REPORT"
        case .search: "SEARCH"
        case .purge: "PURGE"
        }
    }

    /// Whether a request with this method may be sent again after it reached a server (RFC 9110 §9.2.2).
    public var isIdempotent: Bool {
        switch self {
        case .post, .patch, .lock, .unlock, .mkcol, .copy, .move: false
        default: true
        }
    }

    /// The method spelled by `bytes[range]` (case-sensitive, as methods are), or nil.
    static func named(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTP1Method? {
        for method in allCases where Self.equals(bytes, range, method.name) { return method }
        return nil
    }

    @inline(__always) private static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount else { return false }
        let p = name.utf8Start
        var i = 0
        for q in range {
            if bytes[q] != p[i] { return false }
            i += 1
        }
        return true
    }
}

/// One header field line of a scanned head, as byte offsets into the buffer the head was scanned in
/// (so relaying a field costs no allocation): the name, and the value without surrounding whitespace.
public struct HTTP1Field: Hashable, Sendable {
    /// What a relay does with a field.
    public enum Kind: UInt8, Hashable, Sendable {
        /// Forwarded as it came.
        case endToEnd
        /// Meaningful to this connection only (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
        /// `Upgrade`, `Trailer`, and every field `Connection` names): never forwarded.
        case hopByHop
        /// `Content-Length` or `Transfer-Encoding`: replaced by the framing the relay writes.
        case framing
        /// `Host`.
        case host
    }

    public var name: Range<Int>
    public var value: Range<Int>
    public var kind: Kind
    /// The whole line, from the name to the end of its CRLF.
    public var line: Range<Int>
}

/// A request head the scanner accepted.
public struct HTTP1RequestHead: Sendable {
    /// Offset of the request line (empty lines before it are skipped).
    public internal(set) var start = 0
    /// Bytes from the buffer's start through the empty line that ends the head.
    public internal(set) var length = 0
    public internal(set) var method: HTTP1Method = .get
    public internal(set) var target: Range<Int> = 0..<0
    public internal(set) var version: HTTP1Version = .http11
    /// Field lines in order. The array's storage is kept between heads: no allocation per line.
    public internal(set) var fields: [HTTP1Field] = []
    public internal(set) var framing: RequestFraming = .none
    /// Whether the connection stays open after this exchange (`Connection: close`, HTTP/1.0 rules).
    public internal(set) var keepAlive = true
    /// The `Host` value, if any.
    public internal(set) var host: Range<Int>?
    /// `Expect: 100-continue`.
    public internal(set) var expectsContinue = false
    /// The request asked to switch protocols (`Upgrade`): a relay drops the field and answers in HTTP/1.1.
    public internal(set) var asksUpgrade = false

    public init() { fields.reserveCapacity(32) }

    /// The same head holding no more storage than it needs: the field array the scanner reuses is
    /// sized by the largest head it has seen, which a head kept for later must not pin.
    public func compacted() -> HTTP1RequestHead {
        var copy = self
        copy.fields = []
        copy.fields.reserveCapacity(fields.count)
        copy.fields.append(contentsOf: fields)
        return copy
    }

    mutating func clear() {
        start = 0; length = 0; method = .get; target = 0..<0; version = .http11
        fields.removeAll(keepingCapacity: true)
        framing = .none; keepAlive = true; host = nil; expectsContinue = false; asksUpgrade = false
    }
}

/// How a response's body is delimited (RFC 9112 §6.3).
public enum ResponseFraming: Hashable, Sendable {
    /// No body (HEAD, 1xx, 204, 304).
    case none
    case length(Int)
    case chunked
    /// Until the server closes the connection.
    case untilClose
}

/// A response head the scanner accepted.
public struct HTTP1ResponseHead: Sendable {
    public internal(set) var length = 0
    public internal(set) var version: HTTP1Version = .http11
    public internal(set) var status = 200
    public internal(set) var reason: Range<Int> = 0..<0
    public internal(set) var fields: [HTTP1Field] = []
    public internal(set) var framing: ResponseFraming = .none
    public internal(set) var keepAlive = true

    public init() { fields.reserveCapacity(32) }

    /// A 1xx head: another head follows it for the same request.
    public var isInformational: Bool { status < 200 }

    mutating func clear() {
        length = 0; version = .http11; status = 200; reason = 0..<0
        fields.removeAll(keepingCapacity: true)
        framing = .none; keepAlive = true
    }
}

/// Limits the scanner enforces while reading a head.
public struct HTTP1Limits: Hashable, Sendable {
    /// Bytes of a head (or of a chunked body's trailer section), CRLFs included.
    public var maxHeadBytes: Int
    /// Header field lines in a head (or trailer lines in a trailer section).
    public var maxFields: Int

    public init(maxHeadBytes: Int = 64 * 1024, maxFields: Int = 100) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFields = maxFields
    }
}

/// The result of offering bytes to a head scanner.
public enum HTTP1HeadScan: Hashable, Sendable {
    /// The head is not complete yet: call again with the same bytes and more.
    case needMore
    /// The head is complete; its length is in the head.
    case complete
    /// The bytes cannot be a head: answer (or fail the upstream) and close.
    case invalid(HTTP1Violation)
}
