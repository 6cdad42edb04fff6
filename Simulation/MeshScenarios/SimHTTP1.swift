import MeshSimulator
import HTTPSidecar

/// Real HTTP/1.1 bytes between the simulated sidecar and upstream pods: heads written as text, and
/// read back by the product's own framing scanner (so the scanner runs under every fault the nemesis
/// injects, and a malformed answer is refused exactly as in production).
enum SimHTTP1 {
    /// A simulated server's read loop: `bytes` arrived on stream `s`, whose reader is in `readers`.
    /// Returns the whole requests they complete, in order (each a snapshot of the reader), and the
    /// violation when the bytes are not a request the product's scanner accepts (the stream's reader
    /// is then dropped; the caller closes it). The reader is stored back before the caller acts on
    /// the requests, so an answer that drops the stream is not undone.
    static func serve(_ bytes: [UInt8], on s: StreamID, _ readers: inout [StreamID: RequestReader])
        -> (requests: [RequestReader], invalid: HTTP1Violation?) {
        guard var reader = readers[s] else { return ([], nil) }
        reader.append(bytes)
        var requests: [RequestReader] = []
        while true {
            switch reader.next() {
            case .needMore:
                readers[s] = reader
                return (requests, nil)
            case .invalid(let v):
                readers[s] = nil
                return (requests, v)
            case .request:
                requests.append(reader)
            }
        }
    }

    /// A request head (and its empty body's framing).
    static func request(method: String, target: String, fields: [(String, String)], host: String = "upstream") -> [UInt8] {
        var text = "\(method) \(target) HTTP/1.1\r\nhost: \(host)\r\n"
        for (name, value) in fields { text += "\(name): \(value)\r\n" }
        if method == "POST" || method == "PUT" || method == "PATCH" { text += "content-length: 0\r\n" }
        return Array((text + "\r\n").utf8)
    }

    /// A response with a small body.
    static func response(status: Int, fields: [(String, String)], body: String = "") -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(status < 400 ? "OK" : "Error")\r\n"
        for (name, value) in fields { text += "\(name): \(value)\r\n" }
        text += "content-length: \(body.utf8.count)\r\n\r\n" + body
        return Array(text.utf8)
    }

    /// An answer whose body is sent chunked (in two chunks when it has two bytes or more).
    static func chunkedResponse(status: Int, fields: [(String, String)], body: String) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(status < 400 ? "OK" : "Error")\r\n"
        for (name, value) in fields { text += "\(name): \(value)\r\n" }
        text += "transfer-encoding: chunked\r\n\r\n"
        let bytes = Array(body.utf8)
        let half = bytes.count / 2
        var out = Array(text.utf8)
        for part in [bytes[..<half], bytes[half...]] where !part.isEmpty {
            out += Array((String(part.count, radix: 16) + "\r\n").utf8) + part + Array("\r\n".utf8)
        }
        return out + Array("0\r\n\r\n".utf8)
    }

    /// The value of field `name` (lower-case) in a scanned head's fields.
    static func field(_ name: String, _ fields: [HTTP1Field], in bytes: [UInt8]) -> String? {
        for f in fields where String(decoding: bytes[f.name], as: UTF8.self).lowercased() == name {
            return String(decoding: bytes[f.value], as: UTF8.self)
        }
        return nil
    }

    /// Reads one answer at a time from a connection's byte stream, as the NIO upstream decoder does:
    /// a head through the scanner, then the body by the framing the scanner decided (`Content-Length`
    /// or chunked). Bytes after an answer stay buffered: a relay that framed an answer wrongly would
    /// read them as the next one.
    struct ResponseReader {
        private var scanner = HTTP1ResponseScanner()
        private(set) var head = HTTP1ResponseHead()
        private(set) var headBytes: [UInt8] = []
        /// The body of the answer being read (its data, unframed).
        private(set) var bodyBytes: [UInt8] = []
        private var buffer: [UInt8] = []
        private enum Body { case length(Int), chunked(ChunkedBodyScanner) }
        private var body: Body?

        enum Step {
            case needMore
            /// The head was read; `done` when its body ended too.
            case head(done: Bool)
            /// The body of a head read earlier ended.
            case done
            case invalid(HTTP1Violation)
        }

        /// Bytes received and not yet part of an answer.
        var hasLeftover: Bool { !buffer.isEmpty }

        /// Adds bytes; returns `.head` once when the head is read, `.done` when its body ends later.
        mutating func read(_ bytes: [UInt8], method: HTTP1Method) -> Step {
            buffer += bytes
            if body == nil {
                guard !buffer.isEmpty else { return .needMore }
                let scan = buffer.withUnsafeBytes { scanner.scan($0, method: method, into: &head) }
                switch scan {
                case .needMore: return .needMore
                case .invalid(let v): return .invalid(v)
                case .complete:
                    headBytes = Array(buffer[0..<head.length])
                    bodyBytes = []
                    buffer.removeFirst(head.length)
                    scanner.reset()
                    if head.isInformational { return read([], method: method) }
                    switch head.framing {
                    case .length(let n): body = .length(n)
                    case .chunked: body = .chunked(ChunkedBodyScanner())
                    case .none, .untilClose: body = .length(0)  // the simulated pods always frame their answers
                    }
                    switch bodyStep() {
                    case .invalid(let v): return .invalid(v)
                    case .done: return .head(done: true)
                    default: return .head(done: false)
                    }
                }
            }
            return bodyStep()
        }

        private mutating func bodyStep() -> Step {
            switch body {
            case .length(let left):
                let take = min(left, buffer.count)
                bodyBytes += buffer[0..<take]
                buffer.removeFirst(take)
                guard take == left else { body = .length(left - take); return .needMore }
                body = nil
                return .done
            case .chunked(var chunks):
                var data: [UInt8] = []
                let step = buffer.withUnsafeBytes { raw in chunks.scan(raw) { data += raw[$0] } }
                bodyBytes += data
                switch step {
                case .needMore: buffer.removeAll(); body = .chunked(chunks); return .needMore
                case .invalid(let v): return .invalid(v)
                case .done(let consumed): buffer.removeFirst(consumed); body = nil; return .done
                }
            case nil:
                return .needMore
            }
        }

        var status: Int { head.status }
        func field(_ name: String) -> String? { SimHTTP1.field(name, head.fields, in: headBytes) }
    }

    /// Reads whole requests, one at a time, from a connection's byte stream with the product's
    /// scanner: the head, then the body by its framing (its data, unframed). Bytes after a request
    /// stay buffered for the next one.
    struct RequestReader {
        private var scanner = HTTP1RequestScanner()
        private(set) var head = HTTP1RequestHead()
        private(set) var headBytes: [UInt8] = []
        private(set) var body: [UInt8] = []
        private var buffer: [UInt8] = []

        enum Step {
            case needMore
            /// A whole request: ``head``, ``headBytes`` and ``body`` describe it.
            case request
            case invalid(HTTP1Violation)
        }

        mutating func append(_ bytes: [UInt8]) { buffer += bytes }

        /// The next whole request, if the buffer holds one.
        mutating func next() -> Step {
            guard !buffer.isEmpty else { return .needMore }
            var probe = head
            let scan = buffer.withUnsafeBytes { scanner.scan($0, into: &probe) }
            switch scan {
            case .needMore: return .needMore
            case .invalid(let v): return .invalid(v)
            case .complete: break
            }
            var data: [UInt8] = []
            var consumed = probe.length
            switch probe.framing {
            case .none:
                break
            case .length(let n):
                guard buffer.count >= probe.length + n else { scanner.reset(); return .needMore }
                data = Array(buffer[probe.length..<probe.length + n])
                consumed += n
            case .chunked:
                var chunks = ChunkedBodyScanner()
                let rest = Array(buffer[probe.length...])
                switch rest.withUnsafeBytes({ raw in chunks.scan(raw) { data += raw[$0] } }) {
                case .needMore: scanner.reset(); return .needMore
                case .invalid(let v): return .invalid(v)
                case .done(let n): consumed += n
                }
            }
            head = probe
            headBytes = Array(buffer[0..<probe.length])
            body = data
            buffer.removeFirst(consumed)
            scanner.reset()
            return .request
        }

        func field(_ name: String) -> String? { SimHTTP1.field(name, head.fields, in: headBytes) }
        var target: String { String(decoding: headBytes[head.target], as: UTF8.self) }
    }
}
