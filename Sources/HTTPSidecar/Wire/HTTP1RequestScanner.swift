/// A strict HTTP/1.1 request-head scanner for a relay (RFC 9112): it reads the request line and the
/// fields that decide framing, routing and hop-by-hop handling, and leaves every other field as byte
/// offsets to forward unchanged. It fails closed: anything two parsers could read two ways (bare
/// CR or LF, obs-fold, whitespace before a colon, repeated or malformed `Content-Length`, any
/// `Transfer-Encoding` but a single `chunked`, both of them, `Connection` naming a framing field,
/// controls, non-ASCII) is refused, so a request it accepts frames the same in any compliant parser
/// behind it. Proven against llhttp by a differential test (see `docs/architecture.md`).
///
/// Use: keep the bytes of the message being read in one buffer from its first byte; call
/// `scan(_:into:)` each time bytes arrive until it says `.complete` or `.invalid`; then `reset()`
/// before the next message.
public struct HTTP1RequestScanner: Sendable {
    public var limits: HTTP1Limits
    private var finder = HTTP1HeadFinder()

    public init(limits: HTTP1Limits = HTTP1Limits()) {
        self.limits = limits
    }

    /// Forgets the message scanned so far (call after a head completed, before the next one).
    public mutating func reset() { finder.reset() }

    /// Continues scanning the head at the start of `bytes`.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer, into head: inout HTTP1RequestHead) -> HTTP1HeadScan {
        switch finder.find(bytes, limit: limits.maxHeadBytes, skipLeadingEmptyLines: true) {
        case .needMore: return .needMore
        case .invalid(let v): return .invalid(v)
        case .head(let start, let end):
            head.clear()
            if let v = Self.parse(bytes, start: start, end: end, limits: limits, into: &head) { return .invalid(v) }
            return .complete
        }
    }

    /// Parses a complete head whose line endings were checked.
    static func parse(_ bytes: UnsafeRawBufferPointer, start: Int, end: Int, limits: HTTP1Limits, into head: inout HTTP1RequestHead) -> HTTP1Violation? {
        head.start = start
        head.length = end
        // method SP
        var p = start
        while HTTP1Byte.isToken(bytes[p]) { p += 1 }
        guard p > start, bytes[p] == HTTP1Byte.sp else { return HTTP1FieldLines.isControl(bytes[p]) && bytes[p] != HTTP1Byte.cr ? .controlByte : .badRequestLine }
        guard let method = HTTP1Method.named(bytes, start..<p) else { return .unsupportedMethod }
        head.method = method
        p += 1
        // request-target SP
        let targetStart = p
        while HTTP1Byte.isTarget(bytes[p]) { p += 1 }
        guard p > targetStart, bytes[p] == HTTP1Byte.sp else {
            return bytes[p] == HTTP1Byte.sp || bytes[p] == HTTP1Byte.cr ? .badRequestLine : .badTarget
        }
        head.target = targetStart..<p
        guard isTargetForm(bytes, head.target, method: method) else { return .badTarget }
        p += 1
        // HTTP-version CRLF
        guard let version = version(bytes, p) else {
            return looksLikeVersion(bytes, p) ? .unsupportedVersion : .badRequestLine
        }
        head.version = version
        p += 8
        guard bytes[p] == HTTP1Byte.cr else { return .badRequestLine }
        p += 2
        let c: HTTP1FieldLines.Classified
        switch HTTP1FieldLines.readAndClassify(bytes, from: p, end: end, version: version, limits: limits, into: &head.fields) {
        case .failure(let v): return v
        case .success(let classified): c = classified
        }
        if c.chunked {
            head.framing = .chunked
        } else if let n = c.contentLength {
            head.framing = n == 0 ? .none : .length(n)
        }
        if version == .http11, c.host == nil { return .badHost }
        head.host = c.host
        head.keepAlive = !c.close && (version == .http11 || c.keepAlive)
        head.expectsContinue = c.expectsContinue
        head.asksUpgrade = c.upgrade
        return nil
    }

    /// `HTTP/1.1` or `HTTP/1.0` at `p`.
    static func version(_ bytes: UnsafeRawBufferPointer, _ p: Int) -> HTTP1Version? {
        guard p + 8 <= bytes.count, bytes[p] == UInt8(ascii: "H"), bytes[p + 1] == UInt8(ascii: "T"), bytes[p + 2] == UInt8(ascii: "T"),
              bytes[p + 3] == UInt8(ascii: "P"), bytes[p + 4] == UInt8(ascii: "/"), bytes[p + 5] == UInt8(ascii: "1"),
              bytes[p + 6] == UInt8(ascii: ".") else { return nil }
        switch bytes[p + 7] {
        case UInt8(ascii: "1"): return .http11
        case UInt8(ascii: "0"): return .http10
        default: return nil
        }
    }

    /// `HTTP/d.d` at `p`, whatever the digits.
    static func looksLikeVersion(_ bytes: UnsafeRawBufferPointer, _ p: Int) -> Bool {
        guard p + 8 <= bytes.count else { return false }
        let prefix: [UInt8] = Array("HTTP/".utf8)
        for (i, b) in prefix.enumerated() where bytes[p + i] != b { return false }
        return (0x30...0x39).contains(bytes[p + 5]) && bytes[p + 6] == UInt8(ascii: ".") && (0x30...0x39).contains(bytes[p + 7])
    }

    /// Origin form (`/…`), absolute form (`http://…`, `https://…`), or `*` for OPTIONS only.
    static func isTargetForm(_ bytes: UnsafeRawBufferPointer, _ target: Range<Int>, method: HTTP1Method) -> Bool {
        let first = bytes[target.lowerBound]
        if first == UInt8(ascii: "/") { return true }
        if first == UInt8(ascii: "*") { return target.count == 1 && method == .options }
        let http = target.lowerBound..<min(target.lowerBound + 7, target.upperBound)
        let https = target.lowerBound..<min(target.lowerBound + 8, target.upperBound)
        let authorityStart: Int
        if HTTP1Byte.equalsIgnoringCase(bytes, http, "http://") {
            authorityStart = http.upperBound
        } else if HTTP1Byte.equalsIgnoringCase(bytes, https, "https://") {
            authorityStart = https.upperBound
        } else {
            return false
        }
        // The authority, up to the path or query: a host and port only (no userinfo).
        var end = authorityStart
        while end < target.upperBound, bytes[end] != UInt8(ascii: "/"), bytes[end] != UInt8(ascii: "?") { end += 1 }
        return HTTP1FieldLines.isHost(bytes, authorityStart..<end)
    }
}
