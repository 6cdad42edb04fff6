import HTTPSidecar
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Responses as the scanner frames them on an upstream connection, answering `methods` in order;
/// 1xx heads are skipped (as NIO's decoder drops them); a body delimited by the close ends with the input.
enum OurResponseFramer {
    static func frame(_ input: [UInt8], methods: [HTTP1Method], cuts: [Int]) -> Framing {
        var out = Framing()
        var scanner = HTTP1ResponseScanner()
        var head = HTTP1ResponseHead()
        var buffer: [UInt8] = []
        var phase = Phase.head
        var current: FramedRequest?
        var answered = 0
        var edges = cuts.filter { $0 > 0 && $0 < input.count }.sorted() + [input.count]
        var from = 0
        while !edges.isEmpty {
            let to = edges.removeFirst()
            buffer += input[from..<to]
            from = to
            progress: while true {
                switch phase {
                case .head:
                    guard answered < methods.count, !buffer.isEmpty else { break progress }
                    let scan = buffer.withUnsafeBytes { scanner.scan($0, method: methods[answered], into: &head) }
                    switch scan {
                    case .needMore: break progress
                    case .invalid(let v): out.end = .rejected(v.code + ": " + v.description); return out
                    case .complete:
                        current = buffer.withUnsafeBytes { b in
                            FramedRequest(
                                method: "\(head.status)", target: "",  // the reason phrase is not framing (and NIO keeps only its own)
                                version: head.version == .http11 ? "1.1" : "1.0",
                                fields: head.fields.map { OurFramer.string(b, $0.name) + ": " + OurFramer.string(b, $0.value.lowerBound..<($0.line.upperBound - 2)) },
                                body: [])
                        }
                        buffer.removeFirst(head.length)
                        scanner.reset()
                        if head.isInformational { current = nil; continue progress }
                        switch head.framing {
                        case .none: phase = .finished
                        case .length(let n): phase = .body(.length(n))
                        case .chunked: phase = .body(.chunked(ChunkedBodyScanner()))
                        case .untilClose: phase = .untilClose
                        }
                    }
                case .body(var reader):
                    switch reader.read(&buffer, into: &current!.body) {
                    case .failure(let v): out.end = .rejected(v.code + ": " + v.description); out.partial = current; return out
                    case .success(true): phase = .finished
                    case .success(false): phase = .body(reader); break progress
                    }
                case .untilClose:
                    current!.body += buffer
                    buffer.removeAll()
                    break progress
                case .finished:
                    out.messages.append(current!)
                    current = nil
                    answered += 1
                    phase = .head
                    if !head.keepAlive { out.end = .closed; return out }
                }
            }
        }
        // The input ends: the upstream closed.
        if case .untilClose = phase, let c = current {
            out.messages.append(c)
            out.end = .closed
            return out
        }
        out.partial = current
        return out
    }

    private enum Phase {
        case head, body(BodyReader), untilClose, finished
    }
}

/// llhttp's reading of the same responses, as NIO's `HTTPResponseDecoder` runs it after the requests
/// were written through it (that is how it learns which answer a HEAD).
enum LlhttpResponseFramer {
    static func frame(_ input: [UInt8], methods: [HTTP1Method]) -> Framing {
        var out = Framing()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
        for m in methods {
            let method = HTTPMethod(rawValue: "\(m.name)")
            _ = try? channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/")))
        }
        var error: (any Error)?
        do {
            try channel.writeInbound(ByteBuffer(bytes: input))
        } catch let e {
            error = e
        }
        var current: FramedRequest?
        func drain() {
            while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
                switch part {
                case .head(let h):
                    current = FramedRequest(
                        method: "\(h.status.code)", target: "", version: "\(h.version.major).\(h.version.minor)",
                        fields: h.headers.map { "\($0.name): \($0.value)" }, body: [])
                case .body(let b):
                    current?.body += b.readableBytesView
                case .end:
                    if let c = current { out.messages.append(c) }
                    current = nil
                }
            }
        }
        drain()
        if error == nil {
            // The upstream closes: a body delimited by the close ends here.
            do { try channel.close().wait() } catch let e { error = e }
            drain()
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        out.partial = current
        if let error { out.end = .rejected("\(error)") }
        return out
    }
}

extension HTTP1Corpus {
    /// A sequence of responses to `methods`, valid or nearly so, then mutated or made smuggling-shaped.
    mutating func responses() -> (bytes: [UInt8], methods: [HTTP1Method], cuts: [Int]) {
        var methods: [HTTP1Method] = []
        var bytes: [UInt8] = []
        for _ in 0..<(1 + below(3)) {
            let method: HTTP1Method = chance(15) ? .head : pick([.get, .post, .put, .delete])
            methods.append(method)
            bytes += response(to: method)
        }
        switch below(10) {
        case 0..<3: break
        case 3..<6: mutate(&bytes, times: 1 + below(3))
        default:
            let firstLineEnd = (0..<max(0, bytes.count - 1)).first { bytes[$0] == 0x0D && bytes[$0 + 1] == 0x0A } ?? 0
            bytes.insert(contentsOf: Array((pick(Self.smugglingFields) + "\r\n").utf8), at: min(bytes.count, firstLineEnd + 2))
            if chance(30) { mutate(&bytes, times: 1) }
        }
        let cuts = (0..<below(4)).map { _ in below(bytes.count + 1) }
        return (bytes, methods, cuts)
    }

    mutating func response(to method: HTTP1Method) -> [UInt8] {
        var out = ""
        if chance(5) { out += "HTTP/1.1 100 Continue\r\n\r\n" }
        let status = chance(90) ? pick([200, 200, 201, 204, 304, 404, 500, 302]) : pick([101, 199, 999, 99, 1000])
        let version = chance(95) ? "HTTP/1.1" : pick(["HTTP/1.0", "HTTP/2", "HTTP/1.2", "http/1.1"])
        out += "\(version) \(status)" + (chance(95) ? pick([" OK", " Not Found", " ", " a\tb"]) : pick(["", "  x", " caf\u{e9}"])) + "\r\n"
        for _ in 0..<below(4) { out += pick(Self.names) + ": " + pick(Array(Self.values.prefix(16))) + "\r\n" }
        if chance(10) { out += "Connection: " + pick(["close", "keep-alive", "x"]) + "\r\n" }
        var body = ""
        switch below(5) {
        case 0:
            break  // no framing: until close (unless the status or method has none)
        case 1, 2:
            let n = below(30)
            out += "Content-Length: \(n)\r\n"
            body = String(repeating: "r", count: n)
        default:
            out += "Transfer-Encoding: chunked\r\n"
            body = String(decoding: chunkedBody(), as: UTF8.self)
        }
        let hasBody = !(method == .head || status < 200 || status == 204 || status == 304)
        return Array((out + "\r\n" + (hasBody ? body : "")).utf8)
    }
}
