import HTTPSidecar
import Testing

/// The framing scanner's own rules (its agreement with llhttp is `HTTP1DifferentialTests`).
@Suite struct HTTP1ScannerTests {
    private func scanRequest(_ text: String, limits: HTTP1Limits = HTTP1Limits()) -> (HTTP1HeadScan, HTTP1RequestHead, [UInt8]) {
        let bytes = Array(text.utf8)
        var scanner = HTTP1RequestScanner(limits: limits)
        var head = HTTP1RequestHead()
        let result = bytes.withUnsafeBytes { scanner.scan($0, into: &head) }
        return (result, head, bytes)
    }

    private func text(_ bytes: [UInt8], _ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }

    @Test func readsTheRequestLineAndLeavesFieldsAsOffsets() {
        let (result, head, bytes) = scanRequest("\r\nPOST /a?b=1 HTTP/1.1\r\nHost: h:80\r\nX-A:  v w \r\nContent-Length: 3\r\n\r\nabc")
        #expect(result == .complete)
        #expect(head.start == 2)
        #expect(head.length == bytes.count - 3)
        #expect(head.method == .post)
        #expect(text(bytes, head.target) == "/a?b=1")
        #expect(head.version == .http11)
        #expect(head.framing == .length(3))
        #expect(head.host.map { text(bytes, $0) } == "h:80")
        #expect(head.fields.map { text(bytes, $0.name) } == ["Host", "X-A", "Content-Length"])
        #expect(head.fields.map { text(bytes, $0.value) } == ["h:80", "v w", "3"])
        #expect(head.fields.map(\.kind) == [.host, .endToEnd, .framing])
        #expect(text(bytes, head.fields[1].line) == "X-A:  v w \r\n")
        #expect(head.keepAlive)
    }

    @Test func connectionOptionsAreHopByHopAndDecideKeepAlive() {
        let (result, head, _) = scanRequest("GET / HTTP/1.1\r\nHost: h\r\nX-Secret: 1\r\nConnection: close , x-secret\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\n\r\n")
        #expect(result == .complete)
        #expect(head.fields.map(\.kind) == [.host, .hopByHop, .hopByHop, .hopByHop, .hopByHop, .hopByHop])
        #expect(!head.keepAlive)
        #expect(head.asksUpgrade)
        let (_, old, _) = scanRequest("GET / HTTP/1.0\r\n\r\n")
        #expect(!old.keepAlive)
        let (_, oldKept, _) = scanRequest("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        #expect(oldKept.keepAlive)
    }

    @Test func refusesWhatTwoParsersCouldReadTwoWays() {
        let cases: [(String, HTTP1Violation)] = [
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", .lengthAndTransferEncoding),
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 \r\n\r\n", .badContentLength),
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", .badContentLength),
            ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .badTransferEncoding),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\n\r\n", .connectionNamesFraming),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n  2\r\n\r\n", .obsoleteLineFolding),
            ("GET / HTTP/1.1\r\nHost: h\r\nX : 1\r\n\r\n", .badFieldLine),
            ("GET / HTTP/1.1\nHost: h\r\n\r\n", .bareLineEnding),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", .bareLineEnding),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n", .controlByte),
            ("GET / HTTP/1.1\r\n\r\n", .badHost),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", .badHost),
            ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", .unsupportedMethod),
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", .unsupportedVersion),
            ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", .badTarget),
            ("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", .badTarget),
            ("GET /a\u{7f} HTTP/1.1\r\nHost: h\r\n\r\n", .badTarget),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .badTransferEncoding),
        ]
        for (input, violation) in cases {
            let (result, _, _) = scanRequest(input)
            #expect(result == .invalid(violation), "\(input.debugDescription)")
        }
    }

    @Test func enforcesHeadLimits() {
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 200) + "\r\n\r\n"
        #expect(scanRequest(big, limits: HTTP1Limits(maxHeadBytes: 100)).0 == .invalid(.headTooLarge))
        // Too large is known before the head ends.
        #expect(scanRequest(String(big.prefix(150)), limits: HTTP1Limits(maxHeadBytes: 100)).0 == .invalid(.headTooLarge))
        let many = "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X: 1\r\n", count: 5) + "\r\n"
        #expect(scanRequest(many, limits: HTTP1Limits(maxFields: 5)).0 == .invalid(.tooManyFields))
        #expect(scanRequest(many, limits: HTTP1Limits(maxFields: 6)).0 == .complete)
        #expect(HTTP1Violation.headTooLarge.status == 431)
    }

    @Test func resumesWhereItStopped() {
        let bytes = Array("GET /x HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        var scanner = HTTP1RequestScanner()
        var head = HTTP1RequestHead()
        for end in 1..<bytes.count {
            let partial = Array(bytes[0..<end])
            #expect(partial.withUnsafeBytes { scanner.scan($0, into: &head) } == .needMore)
        }
        #expect(bytes.withUnsafeBytes { scanner.scan($0, into: &head) } == .complete)
        #expect(head.length == bytes.count)
    }

    @Test func chunkedBodiesYieldTheirDataAndEnd() {
        let body = Array("5;a=b;c\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT".utf8)
        // In one piece, and a byte at a time.
        for pieceSize in [body.count, 1] {
            var scanner = ChunkedBodyScanner()
            var data: [UInt8] = []
            var consumedTotal = 0
            var ended = false
            var at = 0
            while at < body.count, !ended {
                let piece = Array(body[at..<min(body.count, at + pieceSize)])
                switch piece.withUnsafeBytes({ b in scanner.scan(b) { data += b[$0] } }) {
                case .needMore: consumedTotal += piece.count
                case .done(let consumed): consumedTotal += consumed; ended = true
                case .invalid(let v): Issue.record("refused: \(v)"); return
                }
                at += pieceSize
            }
            #expect(String(decoding: data, as: UTF8.self) == "hello0123456789")
            #expect(consumedTotal == body.count - 4)
        }
        for bad in ["5 \r\nhello\r\n", "5;\r\n", "5;a=\r\n", "5\r\nhelloX", "10000000000000000\r\n", "0\r\nX : 1\r\n\r\n", "0\r\n x\r\n"] {
            var scanner = ChunkedBodyScanner()
            let step = Array(bad.utf8).withUnsafeBytes { scanner.scan($0) { _ in } }
            guard case .invalid = step else { Issue.record("\(bad.debugDescription) accepted: \(step)"); continue }
        }
    }

    /// Issue 22: chunk extensions were unbounded (4 GB streamed past the body limit in 10 s); a
    /// body's extension bytes together stop at the head limit, spread over many chunks or not.
    @Test func chunkExtensionsAreBoundedPerBody() {
        let limits = HTTP1Limits(maxHeadBytes: 1024)
        let oneLong = "1;" + String(repeating: "x", count: 2000) + "\r\na\r\n"
        let manyShort = String(repeating: "1;" + String(repeating: "y", count: 100) + "\r\na\r\n", count: 20)
        for body in [oneLong, manyShort] {
            var scanner = ChunkedBodyScanner(limits: limits)
            #expect(Array(body.utf8).withUnsafeBytes { scanner.scan($0) { _ in } } == .invalid(.badChunkSize))
        }
        var scanner = ChunkedBodyScanner(limits: limits)
        let withinLimit = String(repeating: "1;" + String(repeating: "y", count: 100) + "\r\na\r\n", count: 5) + "0\r\n\r\n"
        guard case .done = Array(withinLimit.utf8).withUnsafeBytes({ scanner.scan($0) { _ in } }) else {
            Issue.record("extensions within the limit refused"); return
        }
    }

    private func scanResponse(_ text: String, method: HTTP1Method = .get) -> (HTTP1HeadScan, HTTP1ResponseHead) {
        var scanner = HTTP1ResponseScanner()
        var head = HTTP1ResponseHead()
        let result = Array(text.utf8).withUnsafeBytes { scanner.scan($0, method: method, into: &head) }
        return (result, head)
    }

    @Test func responseFramingFollowsRFC9112() {
        #expect(scanResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").1.framing == .length(5))
        #expect(scanResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method: .head).1.framing == .none)
        #expect(scanResponse("HTTP/1.1 204 No Content\r\n\r\n").1.framing == .none)
        #expect(scanResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").1.framing == .none)
        #expect(scanResponse("HTTP/1.1 100 Continue\r\n\r\n").1.isInformational)
        #expect(scanResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").1.framing == .chunked)
        let untilClose = scanResponse("HTTP/1.1 200\r\n\r\n").1
        #expect(untilClose.framing == .untilClose && !untilClose.keepAlive)
        #expect(!scanResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").1.keepAlive)
        #expect(scanResponse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").0 == .invalid(.lengthAndTransferEncoding))
        #expect(scanResponse("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").0 == .invalid(.badTransferEncoding))
        #expect(scanResponse("HTTP/1.1 101 Switching Protocols\r\n\r\n").0 == .invalid(.badStatusLine))
        #expect(scanResponse("HTTP/1.1 20 OK\r\n\r\n").0 == .invalid(.badStatusLine))
        #expect(scanResponse("\r\nHTTP/1.1 200 OK\r\n\r\n").0 == .invalid(.badStatusLine))
        #expect(scanResponse("HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n").0 == .invalid(.bareLineEnding))
    }
}
