/// Generates the differential test's inputs from a seed: well-formed requests (pipelined, with
/// every framing), the same mutated byte by byte, and smuggling-shaped variants (the field spellings
/// and line endings that desynchronize parsers). The same seed gives the same inputs.
struct HTTP1Corpus {
    private var state: UInt64

    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    /// SplitMix64.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ xs: [T]) -> T { xs[below(xs.count)] }

    /// The next input and the cuts to feed it to our scanner in pieces.
    mutating func input() -> (bytes: [UInt8], cuts: [Int]) {
        var bytes: [UInt8] = []
        for _ in 0..<(1 + below(3)) { bytes += request() }
        switch below(10) {
        case 0..<3: break
        case 3..<6: mutate(&bytes, times: 1 + below(3))
        default: smuggle(&bytes)
        }
        let cuts = (0..<below(4)).map { _ in below(bytes.count + 1) }
        return (bytes, cuts)
    }

    static let methods = ["GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "PROPFIND", "PURGE", "CONNECT",
                          "get", "FOO", "M-SEARCH", "QUERY", "SEARCH", "LOCK", "MKCOL", "REPORT", "COPY", "MOVE", "UNLOCK", "PROPPATCH"]
    static let targets = ["/", "/a/b?x=1", "/%2e%2E/x", "*", "http://h.example/p?q", "https://h:8443/", "/a b", "/\u{7f}", "//x",
                          "h.example:443", "/?a=%zz", "/path;p=1", "/" + String(repeating: "a", count: 300), "HTTP://H/x"]
    static let versions = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "http/1.1", "HTTP/1.10"]
    static let names = ["Accept", "User-Agent", "X-Request-Id", "Cookie", "Content-Type", "Expect", "TE", "Upgrade", "Keep-Alive",
                        "Trailer", "Via", "X-Forwarded-For", "Proxy-Connection", "Authorization", "A", "x-a_b", "X~"]
    static let values = ["*/*", "curl/8.5", "abc-123", "a=b; c=d", "application/json", "100-continue", "trailers", "websocket", "timeout=5",
                         "X-T", "1.1 proxy", "1.2.3.4", "keep-alive", "Bearer x.y.z", "", "  spaced  ", "\t", "a\u{7f}b", "caf\u{e9}"]

    /// A request that is valid, or nearly so (some choices are deliberately unusual).
    mutating func request() -> [UInt8] {
        let method = chance(95) ? pick(Array(Self.methods.prefix(11))) : pick(Self.methods)
        let target = chance(95) ? pick(Array(Self.targets.prefix(3))) : pick(Self.targets)
        let version = chance(97) ? "HTTP/1.1" : pick(Self.versions)
        var lines = ["\(method) \(target) \(version)"]
        if chance(98) { lines.append("Host: " + (chance(97) ? pick(["h.example", "h.example:8080", "[::1]:80", "10.0.0.1"]) : pick(["", "a b", "h/x"]))) }
        for _ in 0..<below(5) { lines.append(pick(Self.names) + ": " + (chance(95) ? pick(Array(Self.values.prefix(16))) : pick(Self.values))) }
        if chance(15) { lines.append("Connection: " + pick(["close", "keep-alive", "Upgrade", "close, te", "TE", "x, y", "Content-Length", "transfer-encoding", "keep-alive, close"])) }
        var body: [UInt8] = []
        switch below(4) {
        case 0: break
        case 1:
            let n = below(40)
            lines.append("Content-Length: \(n)")
            body = Array(repeating: UInt8(ascii: "b"), count: n)
        case 2:
            lines.append("Transfer-Encoding: chunked")
            body = chunkedBody()
        default:
            if chance(50) { lines.append("Content-Length: 0") }
        }
        if chance(10) { lines.insert("", at: 0) }  // an empty line before the request line
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body
    }

    mutating func chunkedBody() -> [UInt8] {
        var out = ""
        for _ in 0..<below(4) {
            let n = 1 + below(20)
            let size = chance(20) ? String(n, radix: 16, uppercase: true) : String(n, radix: 16)
            let ext = chance(10) ? pick([";a=b", ";x", ";a=\"q\"", " ;a", ";a b"]) : ""
            out += (chance(5) ? "0" : "") + size + ext + "\r\n" + String(repeating: "c", count: n) + "\r\n"
        }
        out += "0" + (chance(5) ? ";e" : "") + "\r\n"
        if chance(10) { out += pick(["X-T: 1\r\n", "Bad Trailer: x\r\n", " folded\r\n", "X-T: a\u{1}b\r\n"]) }
        return Array((out + "\r\n").utf8)
    }

    static let interesting: [UInt8] = [0x0D, 0x0A, 0x00, 0x20, 0x09, 0x3A, 0x2C, 0x3B, 0x7F, 0x80, 0xFF, 0x30, 0x31, 0x61, 0x46, 0x0B, 0x0C, 0x22, 0x2F]

    /// Byte-level mutations: replace, insert, delete, duplicate a span, cut the end.
    mutating func mutate(_ bytes: inout [UInt8], times: Int) {
        for _ in 0..<times where !bytes.isEmpty {
            let at = below(bytes.count)
            switch below(6) {
            case 0: bytes[at] = pick(Self.interesting)
            case 1: bytes.insert(pick(Self.interesting), at: at)
            case 2: bytes.remove(at: at)
            case 3:
                let end = min(bytes.count, at + 1 + below(12))
                bytes.insert(contentsOf: bytes[at..<end], at: end)
            case 4: bytes.removeLast(min(bytes.count, 1 + below(8)))
            default: bytes[at] = UInt8(truncatingIfNeeded: next())
            }
        }
    }

    static let smugglingFields = [
        "Transfer-Encoding: chunked", "Transfer-Encoding : chunked", "Transfer-Encoding:\tchunked", "Transfer-Encoding: xchunked",
        "Transfer-Encoding: chunked, identity", "Transfer-Encoding: identity, chunked", "Transfer-Encoding: chunked\r\n\tx",
        "Transfer-Encoding:\r\n chunked", "Transfer-encoding: CHUNKED", " Transfer-Encoding: chunked", "Transfer-Encoding: \"chunked\"",
        "Transfer-Encoding: chunked ", "Transfer_Encoding: chunked", "Transfer-Encoding\u{0}: chunked", "X: y\nTransfer-Encoding: chunked",
        "Content-Length: 5", "Content-Length: 0", "Content-Length: 5, 5", "Content-Length: +5", "Content-Length: 05", "Content-Length:  5 ",
        "Content-Length: 5\r\nContent-Length: 6", "Content-Length: 0x5", "Content-Length: 99999999999999999999", "Content-Length: 5 5",
        "Connection: Content-Length", "Connection: close, Transfer-Encoding", "Connection: host", "Host: a\r\nHost: b",
        "X: a\rb", "X: a\u{0}b", "X:\u{b}y", "\u{1}X: y", "X : y",
    ]

    /// Puts one smuggling-shaped field line into the first message's head, and sometimes a body
    /// shaped for the other reading.
    mutating func smuggle(_ bytes: inout [UInt8]) {
        let firstLineEnd = (0..<max(0, bytes.count - 1)).first { bytes[$0] == 0x0D && bytes[$0 + 1] == 0x0A } ?? 0
        let field = Array((pick(Self.smugglingFields) + "\r\n").utf8)
        bytes.insert(contentsOf: field, at: min(bytes.count, firstLineEnd + 2))
        if chance(40) { bytes += Array(pick(["5\r\nhello\r\n0\r\n\r\n", "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n", "hello", "G"]).utf8) }
        if chance(20) { mutate(&bytes, times: 1) }
        if chance(15) {
            // Line endings: a bare LF or a bare CR somewhere.
            if let at = (0..<bytes.count).filter({ bytes[$0] == 0x0D }).randomElement(using: &self) {
                if chance(50) { bytes.remove(at: at) } else { bytes[at + 1 < bytes.count ? at + 1 : at] = 0x20 }
            }
        }
    }
}

extension HTTP1Corpus: RandomNumberGenerator {}
