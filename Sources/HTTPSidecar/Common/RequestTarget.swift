/// The request-target of an HTTP/1.1 request reduced to the one path that policy is matched on and
/// that the upstream is sent (so what the policy saw is what the app gets).
///
/// Normalization (RFC 3986 §6.2.2 and §5.2.4, in the spirit of Envoy's `normalize_path`,
/// `merge_slashes` and `path_with_escaped_slashes_action`):
/// - absolute form (`http://host/p`) is reduced to origin form (`/p`), its authority kept apart;
/// - percent-encoded unreserved characters are decoded (`%61` → `a`), other escapes have their hex
///   upper-cased (`%2f` → `%2F`); a malformed escape is refused;
/// - encoded separators and dots (`%2F`, `%5C`, `%2E`) follow ``EscapedSeparators`` (refused by default);
/// - runs of slashes are merged, `.` and `..` segments removed (never above the root);
/// - the query is kept as it came; a fragment, a raw backslash, a control, a space or a non-ASCII
///   byte in the path is refused, and so is a dot segment with path parameters (`..;x`), which
///   servers that strip parameters read as `..`.
public struct RequestTarget: Sendable, Hashable {
    /// What to do with `%2F`, `%5C` and `%2E` in a path.
    public enum EscapedSeparators: String, Sendable, Hashable, CaseIterable {
        /// Refuse the request (400): the default, since an app that decodes them would see another path.
        case reject
        /// Decode them (`%2F` and `%5C` as `/`, `%2E` as `.`) and then normalize.
        case decode
        /// Leave them encoded: the policy and the app both see one segment containing them.
        case keep
    }

    /// What to do with path parameters (`/admin;jsessionid=1/users`): servlet stacks (Tomcat,
    /// Jetty) drop them before routing, so a policy that sees them sees another path than the app.
    public enum PathParameters: String, Sendable, Hashable, CaseIterable {
        /// Drop them from each segment: the policy and the app both see `/admin/users` (the default).
        case strip
        /// Refuse the request (400).
        case reject
        /// Leave them: only for apps that give `;` no meaning.
        case keep
    }

    /// Why a request-target was refused.
    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        case malformed(String)
        case escapedSeparator
        case pathParameters

        public var description: String {
            switch self {
            case .malformed(let why): "malformed request target: \(why)"
            case .escapedSeparator: "the path contains an encoded slash, backslash or dot (%2F, %5C, %2E)"
            case .pathParameters: "the path contains path parameters (;)"
            }
        }
    }

    /// The normalized path, starting with `/` (or `*` for `OPTIONS *`).
    public var path: String
    /// The query without its `?`, as received.
    public var query: String?
    /// The authority of an absolute-form target (it replaces `Host`, RFC 9112 §3.2.2).
    public var authority: String?

    /// The origin-form target to send upstream: the normalized path and the query.
    public var originForm: String { query.map { path + "?" + $0 } ?? path }

    /// Normalizes `target`, or says why it cannot be sent on.
    public static func normalize(_ target: String, escaped: EscapedSeparators = .reject,
                                 parameters: PathParameters = .strip) -> Result<RequestTarget, Problem> {
        if let normal = alreadyNormal(target) { return .success(normal) }
        return normalizeStepByStep(target, escaped: escaped, parameters: parameters)
    }

    /// The target as it is, when normalizing would not change it: origin form, only plain bytes
    /// (no escape, backslash, fragment, control, space or `;`), no empty segment (`//`) and no segment
    /// starting with a dot (so no dot segment). Most requests are like
    /// this; they skip the copies the general steps make. A test checks it against those steps.
    static func alreadyNormal(_ target: String) -> RequestTarget? {
        let utf8 = target.utf8
        guard utf8.first == UInt8(ascii: "/") else { return nil }
        var previous: UInt8 = 0
        var queryMark: String.UTF8View.Index?
        for i in utf8.indices {
            let b = utf8[i]
            if b == UInt8(ascii: "?") { queryMark = i; break }
            guard b > 0x20, b < 0x7F, b != UInt8(ascii: "%"), b != UInt8(ascii: "\\"), b != UInt8(ascii: "#"), b != UInt8(ascii: ";") else { return nil }
            if previous == UInt8(ascii: "/") && (b == UInt8(ascii: "/") || b == UInt8(ascii: ".")) { return nil }
            previous = b
        }
        guard let mark = queryMark else { return RequestTarget(path: target, query: nil, authority: nil) }
        let rest = utf8[utf8.index(after: mark)...]
        guard rest.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }) else { return nil }
        return RequestTarget(path: String(target[..<mark]), query: String(target[utf8.index(after: mark)...]), authority: nil)
    }

    /// Normalizes `target` step by step (see the type's summary).
    static func normalizeStepByStep(_ target: String, escaped: EscapedSeparators, parameters: PathParameters = .strip) -> Result<RequestTarget, Problem> {
        let bytes = Array(target.utf8)
        if bytes == [UInt8(ascii: "*")] { return .success(RequestTarget(path: "*", query: nil, authority: nil)) }
        var start = 0
        var authority: String?
        if bytes.first != UInt8(ascii: "/") {
            guard let schemeEnd = Self.absoluteFormSchemeEnd(bytes) else { return .failure(.malformed("expected a path or an absolute http(s) URL")) }
            var i = schemeEnd
            while i < bytes.count, bytes[i] != UInt8(ascii: "/"), bytes[i] != UInt8(ascii: "?") { i += 1 }
            let host = bytes[schemeEnd..<i]
            guard !host.isEmpty, !host.contains(UInt8(ascii: "@")), host.allSatisfy(Self.isAuthorityByte) else {
                return .failure(.malformed("bad authority"))
            }
            authority = String(decoding: host, as: UTF8.self)
            start = i
        }
        var end = bytes.count
        var query: String?
        if let q = bytes[start...].firstIndex(of: UInt8(ascii: "?")) {
            end = q
            let rest = bytes[(q + 1)...]
            guard !rest.contains(UInt8(ascii: "#")), rest.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return .failure(.malformed("bad query")) }
            query = String(decoding: rest, as: UTF8.self)
        }
        switch normalizePath(bytes[start..<end], escaped: escaped, parameters: parameters) {
        case .success(let path): return .success(RequestTarget(path: path, query: query, authority: authority))
        case .failure(let problem): return .failure(problem)
        }
    }

    /// Whether `path` is under `prefix` on a segment boundary: `/public` covers `/public` and
    /// `/public/x`, never `/publicX`; a prefix ending in `/` covers what follows it. Letters compare
    /// without case unless `exactCase` (apps that route case-insensitively read `/ADMIN` as `/admin`,
    /// so a policy on `/admin` must cover it).
    public static func path(_ path: String, isUnder prefix: String, exactCase: Bool = false) -> Bool {
        let p = path.utf8, q = prefix.utf8
        guard p.count >= q.count else { return false }
        var i = p.startIndex
        for c in q {
            let b = p[i]
            // ci/mutants: policy-case-sensitive (the next line)
            guard b == c || (!exactCase && asciiLower(b) == asciiLower(c)) else { return false }
            i = p.index(after: i)
        }
        if prefix.hasSuffix("/") || i == p.endIndex { return true }
        return p[i] == UInt8(ascii: "/")
    }

    @inline(__always) static func asciiLower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    // MARK: Steps

    /// The index after `http://` or `https://` (any case), or nil.
    private static func absoluteFormSchemeEnd(_ bytes: [UInt8]) -> Int? {
        for scheme in ["http://", "https://"] {
            let s = Array(scheme.utf8)
            guard bytes.count >= s.count else { continue }
            if zip(bytes.prefix(s.count), s).allSatisfy({ ($0 | 0x20) == $1 || $0 == $1 }) { return s.count }
        }
        return nil
    }

    private static func isAuthorityByte(_ b: UInt8) -> Bool {
        isUnreserved(b) || b == UInt8(ascii: ":") || b == UInt8(ascii: "[") || b == UInt8(ascii: "]") || isSubDelim(b) || b == UInt8(ascii: "%")
    }

    static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }

    static func isSubDelim(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="): true
        default: false
        }
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Decodes what may be decoded, then merges slashes and removes dot segments.
    private static func normalizePath(_ raw: ArraySlice<UInt8>, escaped: EscapedSeparators, parameters: PathParameters) -> Result<String, Problem> {
        if raw.isEmpty { return .success("/") }
        // Pass 1: escapes, byte classes. Output bytes; `/` here is always a real separator.
        var decoded: [UInt8] = []
        decoded.reserveCapacity(raw.count)
        var i = raw.startIndex
        while i < raw.endIndex {
            let b = raw[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < raw.endIndex, let hi = hexValue(raw[i + 1]), let lo = hexValue(raw[i + 2]) else {
                    return .failure(.malformed("bad percent-encoding"))
                }
                let value = hi << 4 | lo
                // %00 and the other controls: cut at NUL or read as line ends by the app's stack.
                guard value >= 0x20, value != 0x7F else { return .failure(.malformed("an encoded control character (%00-%1F, %7F)")) }
                switch value {
                case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "."):
                    switch escaped {
                    case .reject: return .failure(.escapedSeparator)
                    case .decode: decoded.append(value == UInt8(ascii: ".") ? value : UInt8(ascii: "/"))
                    case .keep: decoded += [UInt8(ascii: "%"), hexDigits[Int(hi)], hexDigits[Int(lo)]]
                    }
                default:
                    if isUnreserved(value) {
                        decoded.append(value)
                    } else {
                        decoded += [UInt8(ascii: "%"), hexDigits[Int(hi)], hexDigits[Int(lo)]]
                    }
                }
                i += 3
                continue
            }
            guard b > 0x20, b < 0x7F, b != UInt8(ascii: "\\"), b != UInt8(ascii: "#") else {
                return .failure(.malformed(b == UInt8(ascii: "\\") ? "a backslash in the path" : "a byte not allowed in a path"))
            }
            decoded.append(b)
            i += 1
        }
        // Pass 2: segments; empty ones (merged slashes) and `.` dropped, `..` pops.
        var segments: [ArraySlice<UInt8>] = []
        let parts = decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var trailingSlash = decoded.last == UInt8(ascii: "/")
        for (n, whole) in parts.enumerated() {
            let last = n == parts.count - 1
            var segment = whole
            if let semicolon = segment.firstIndex(of: UInt8(ascii: ";")) {
                let name = segment[..<semicolon]
                // `..;x` and `.;x`: dot segments to servers that strip path parameters (Tomcat, Jetty).
                if name.elementsEqual([UInt8(ascii: ".")]) || name.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                    return .failure(.malformed("a dot segment with path parameters"))
                }
                switch parameters {
                // ci/mutants: path-parameters-kept (the next line)
                case .strip: segment = name
                case .reject: return .failure(.pathParameters)
                case .keep: break
                }
            }
            if segment.isEmpty { continue }
            if segment.elementsEqual([UInt8(ascii: ".")]) {
                if last { trailingSlash = true }
                continue
            }
            if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                _ = segments.popLast()
                if last { trailingSlash = true }
                continue
            }
            segments.append(segment)
        }
        var out: [UInt8] = [UInt8(ascii: "/")]
        for (n, segment) in segments.enumerated() {
            if n > 0 { out.append(UInt8(ascii: "/")) }
            out += segment
        }
        if trailingSlash && !segments.isEmpty { out.append(UInt8(ascii: "/")) }
        return .success(String(decoding: out, as: UTF8.self))
    }
}
