import Foundation
import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOHTTP1
import Testing

/// The ingress relays the app's answer head from the scanned bytes
/// (``ProxyHeaders/relayedHead(scanned:rules:setting:requestVersion:keepAlive:)``) instead of as NIO's
/// head. Checked against the NIO-head version, written by the production answer writer and compared
/// with the framing NIO's writer gave the NIO head, over generated answers, rules, CORS and rate-limit headers, client versions.
@Suite struct RelayedAnswerTests {
    @Test func theBytesRelayedAreTheAnswerTheHeadersVersionRelayed() throws {
        var gen = SeededRandom(seed: 1130)
        var checked = 0
        for _ in 0..<15_000 {
            let text = Self.randomAnswer(&gen)
            var scanner = HTTP1ResponseScanner()
            var scan = HTTP1ResponseHead()
            let buffer = ByteBuffer(string: text)
            guard buffer.withUnsafeReadableBytes({ scanner.scan($0, method: .get, into: &scan) }) == .complete, !scan.isInformational else { continue }
            let scanned = ScannedResponseHead(bytes: buffer, scan: scan)
            let rules = UpstreamRequestTests.randomRules(&gen)
            let extra = Self.randomExtra(&gen)
            let version: HTTPVersion = gen.next() % 4 == 0 ? .http1_0 : .http1_1
            let keepAlive = gen.next() % 3 != 0
            let answeringHead = gen.next() % 6 == 0

            let (encoded, close) = ProxyHeaders.relayedHead(scanned: scanned, rules: rules, setting: extra, requestVersion: version, keepAlive: keepAlive)
            var (oracle, oracleClose) = Self.relayedHead(scanned.nio, rules: rules, setting: extra, requestVersion: version, keepAlive: keepAlive)
            #expect(close == oracleClose)
            // The framing NIO's writer gave the NIO head.
            let code = Int(oracle.status.code)
            let oracleFraming: String
            if answeringHead || code < 200 || code == 204 || code == 304 {
                oracleFraming = "none"
            } else if oracle.headers.contains(name: "content-length") {
                oracleFraming = "plain"
            } else if oracle.headers["transfer-encoding"].contains(where: { $0.lowercased() == "chunked" }) {
                oracleFraming = "chunked"
            } else if oracle.version == .http1_1 {
                oracle.headers.add(name: "transfer-encoding", value: "chunked")
                oracleFraming = "chunked"
            } else {
                oracleFraming = "plain"
            }
            // The answer writer's output for the relayed head and one body byte.
            var writer = HTTP1ResponseEncoder()
            writer.expectAnswer(toHead: answeringHead)
            var written = ByteBuffer()
            for part in [ClientResponsePart.relayed(encoded), .body(.byteBuffer(ByteBuffer(string: "x")))] {
                writer.encode(part, allocator: ByteBufferAllocator()) { if case .byteBuffer(var b) = $0 { written.writeBuffer(&b) } }
            }
            let writtenText = String(buffer: written)
            let headEnd = try #require(writtenText.range(of: "\r\n\r\n"), "\(text)")
            let body = String(writtenText[headEnd.upperBound...])
            #expect(body == ["none": "", "plain": "x", "chunked": "1\r\nx\r\n"][oracleFraming], "\(text): \(oracleFraming) body written as \(body.debugDescription)")
            var expected = ByteBufferAllocator().buffer(capacity: 256)
            expected.writeHead(oracle)
            #expect(Self.lines(ByteBuffer(string: String(writtenText[..<headEnd.upperBound]))) == Self.lines(expected),
                    "\(text) rules \(rules) extra \(extra)")
            checked += 1
        }
        #expect(checked > 5_000)
    }

    /// The status line, then each field as `name: value` (whitespace around values as written aside).
    static func lines(_ buffer: ByteBuffer) -> [String] {
        String(buffer: buffer).components(separatedBy: "\r\n").filter { !$0.isEmpty }.enumerated().map { i, line in
            guard i > 0, let colon = line.firstIndex(of: ":") else { return line }
            return String(line[..<colon]) + ": " + line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }

    static let statuses = ["200 OK", "200 Fine", "204 No Content", "304 Not Modified", "404 Not Found", "299 Custom Thing", "500 Internal Server Error", "201 "]
    static let names = ["Content-Type", "content-length", "Transfer-Encoding", "Connection", "Keep-Alive", "Vary", "vary", "x-a", "X-B",
                        "Set-Cookie", "Upgrade", "Trailer", "proxy-authenticate", "x-correlation-id", "Access-Control-Allow-Origin"]
    static let values = ["text/plain", "Origin", "Accept-Encoding, origin", "*", "close", "keep-alive, X-B", "x-a", "a=b; Path=/", "", "1 2"]

    static func randomAnswer(_ gen: inout SeededRandom) -> String {
        var text = "\(gen.next() % 5 == 0 ? "HTTP/1.0" : "HTTP/1.1") \(UpstreamRequestTests.pick(statuses, &gen))\r\n"
        var framed = false
        for _ in 0..<Int(gen.next() % 8) {
            let name = UpstreamRequestTests.pick(names, &gen)
            let value: String
            switch name.lowercased() {
            case "content-length":
                if framed { continue }
                framed = true
                value = String(gen.next() % 20)
            case "transfer-encoding":
                if framed { continue }
                framed = true
                value = "chunked"
            default:
                value = UpstreamRequestTests.pick(values, &gen)
            }
            text += "\(name):\(gen.next() % 2 == 0 ? " " : "")\(value)\r\n"
        }
        return text + "\r\n"
    }

    static func randomExtra(_ gen: inout SeededRandom) -> [(String, String)] {
        var extra = [("x-correlation-id", "c0ffee")]
        if gen.next() % 2 == 0 { extra += [("access-control-allow-origin", "https://a.example"), ("vary", gen.next() % 2 == 0 ? "Origin" : "origin")] }
        if gen.next() % 3 == 0 { extra += [("ratelimit-limit", "10"), ("ratelimit-remaining", "9"), ("ratelimit-reset", "1")] }
        return extra
    }

    // The relay as it was written over NIO heads (the oracle).
    /// The head of an upstream's answer as the sidecar relays it downstream: hop-by-hop headers
    /// removed, the configured rules applied, the sidecar's own headers set. An HTTP/1.0 client cannot
    /// read chunked framing, so an answer without a length is sent with an HTTP/1.0 head and delimited
    /// by closing the connection; `closeAfter` tells the caller to close once the answer is out.
    static func relayedHead(_ response: HTTPResponseHead, rules: HeaderRules, setting extra: [(String, String)] = [],
                                   requestVersion: HTTPVersion, keepAlive: Bool) -> (head: HTTPResponseHead, closeAfter: Bool) {
        var headers = response.headers
        headers.reserveCapacity(headers.count + extra.count + 1)
        ProxyHeaders.removeHopByHop(&headers)
        rules.apply(to: &headers)
        for (name, value) in extra {
            // CORS varies on Origin: added to the app's own Vary instead of replacing it.
            if name == "vary", let prior = headers.first(name: "vary") {
                let all = headers["vary"].joined(separator: ", ")
                let listed = all.split(separator: ",").map { $0.trimmingSpaces.lowercased() }
                if !listed.contains("*") && !listed.contains(value.lowercased()) {
                    headers.replaceOrAdd(name: "vary", value: (all.isEmpty ? prior : all) + ", " + value)
                }
                continue
            }
            headers.replaceOrAdd(name: name, value: value)
        }
        let http10 = requestVersion.major == 1 && requestVersion.minor == 0
        let closeAfter = !keepAlive || (http10 && !headers.contains(name: "content-length"))
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        return (HTTPResponseHead(version: http10 ? .http1_0 : .http1_1, status: response.status, headers: headers), closeAfter)
    }
}
