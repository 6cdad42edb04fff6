/// The response side of the framing scanner: reads a status line and the fields that decide how the
/// body is delimited (RFC 9112 §6.3), with the same fail-closed rules as requests. An upstream answer
/// it refuses is a 502 to the client and a closed upstream connection, never a relayed guess.
public struct HTTP1ResponseScanner: Sendable {
    public var limits: HTTP1Limits
    private var finder = HTTP1HeadFinder()

    public init(limits: HTTP1Limits = HTTP1Limits()) {
        self.limits = limits
    }

    public mutating func reset() { finder.reset() }

    /// Continues scanning the head at the start of `bytes`, the answer to a `method` request.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer, method: HTTP1Method, into head: inout HTTP1ResponseHead) -> HTTP1HeadScan {
        switch finder.find(bytes, limit: limits.maxHeadBytes, skipLeadingEmptyLines: false) {
        case .needMore: return .needMore
        case .invalid(let v): return .invalid(v)
        case .head(_, let end):
            head.clear()
            if let v = Self.parse(bytes, end: end, method: method, limits: limits, into: &head) { return .invalid(v) }
            return .complete
        }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, end: Int, method: HTTP1Method, limits: HTTP1Limits, into head: inout HTTP1ResponseHead) -> HTTP1Violation? {
        head.length = end
        guard let version = HTTP1RequestScanner.version(bytes, 0) else { return .badStatusLine }
        head.version = version
        var p = 8
        guard bytes[p] == HTTP1Byte.sp else { return .badStatusLine }
        p += 1
        var status = 0
        for _ in 0..<3 {
            let b = bytes[p]
            guard b >= 0x30, b <= 0x39 else { return .badStatusLine }
            status = status * 10 + Int(b - 0x30)
            p += 1
        }
        guard status >= 100, status != 101 else { return .badStatusLine }  // no protocol switch is ever asked for
        head.status = status
        if bytes[p] == HTTP1Byte.sp {
            p += 1
            let reasonStart = p
            while bytes[p] != HTTP1Byte.cr {
                guard HTTP1Byte.isFieldValue(bytes[p]) else { return .badStatusLine }
                p += 1
            }
            head.reason = reasonStart..<p
        }
        guard bytes[p] == HTTP1Byte.cr else { return .badStatusLine }
        p += 2
        let c: HTTP1FieldLines.Classified
        switch HTTP1FieldLines.readAndClassify(bytes, from: p, end: end, version: version, limits: limits, into: &head.fields) {
        case .failure(let v): return v
        case .success(let classified): c = classified
        }
        head.keepAlive = !c.close && (version == .http11 || c.keepAlive)
        if status < 200 {
            // An interim answer: another head follows on the same connection, so it can neither
            // close it nor carry framing (parsers disagree on what either would mean).
            guard version == .http11, !c.close, !c.chunked, c.contentLength == nil else { return .badStatusLine }
        }
        if method == .head || status < 200 || status == 204 || status == 304 {
            head.framing = .none
        } else if c.chunked {
            head.framing = .chunked
        } else if let n = c.contentLength {
            head.framing = n == 0 ? .none : .length(n)
        } else {
            head.framing = .untilClose
            head.keepAlive = false
        }
        return nil
    }
}
