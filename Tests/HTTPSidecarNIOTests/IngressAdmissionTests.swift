import Foundation
import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOHTTP1
import Testing

/// The head-time decision without a channel: what the NIO handler and the simulated pod both call.
@Suite struct IngressAdmissionTests {
    private func head(_ uri: String, _ fields: [(String, String)] = []) -> ScannedRequestHead {
        scanned("GET \(uri) HTTP/1.1\r\n" + ([("host", "app")] + fields).map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n")
    }

    @Test func correlationIdsAre32LowerCaseHexDigitsWithTheirLeadingZeros() {
        var random = SeededRandom(seed: 7)
        var check = SeededRandom(seed: 7)
        for _ in 0..<1_000 {
            let id = IngressAdmission.newCorrelationId(&random)
            let (a, b) = (check.next(), check.next())
            let pad = { (s: String) in String(repeating: "0", count: 16 - s.count) + s }
            #expect(id == pad(String(a, radix: 16)) + pad(String(b, radix: 16)))
        }
    }

    @Test func policyIsMatchedOnTheNormalizedPathAndTheAppGetsThatPath() throws {
        var config = IngressConfig()
        config.ipFilter = IPFilter(allow: [CIDR("10.0.0.0/8")!])
        config.routes = [IngressRoute(prefix: "/", middleware: []), IngressRoute(prefix: "/admin", middleware: [.ipFilter])]
        let policy = try IngressPolicy(config: config, hashSeed: 1)
        var random = SeededRandom(seed: 1)
        guard case .refuse(let e, _) = IngressAdmission.decide(head("/public/../admin/a"), client: "192.0.2.1", scheme: "http", policy: policy,
                                                               now: .zero, random: &random) else {
            Issue.record("a dot-segment spelling of /admin was admitted")
            return
        }
        #expect(e.code == "ip_denied")
        guard case .admit(let admitted) = IngressAdmission.decide(head("//public/./a?q", [("connection", "keep-alive, x-drop"), ("x-drop", "1")]),
                                                                  client: "192.0.2.1", scheme: "http", policy: policy, now: .zero, random: &random) else {
            Issue.record("an open path was refused")
            return
        }
        let upstream = decoded(admitted.upstreamHead)
        #expect(upstream.uri == "/public/a?q")
        #expect(upstream.headers["x-drop"].isEmpty, "a field Connection names is hop-by-hop")
        #expect(upstream.headers["connection"].isEmpty)
    }
}

/// A head scanned from `text` (which must be one whole, valid head).
func scanned(_ text: String) -> ScannedRequestHead {
    guard case .success(let head) = ScannedRequestHead.scanning(ByteBuffer(string: text)) else { fatalError("not a valid head: \(text)") }
    return head
}

/// An encoded head read back as NIO's, line by line (not through the scanner: a test may build a
/// head it would refuse, such as two `Host` fields from a rename).
func decoded(_ head: EncodedRequestHead) -> HTTPRequestHead {
    let text = String(buffer: head.bytes)
    precondition(text.hasSuffix("\r\n\r\n"), "an encoded head ends with an empty line")
    var lines = String(text.utf8.dropLast(4))!.components(separatedBy: "\r\n")
    let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
    precondition(requestLine.count == 3)
    var headers = HTTPHeaders()
    for line in lines {
        let colon = line.firstIndex(of: ":")!
        headers.add(name: String(line[..<colon]), value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    let version: HTTPVersion = requestLine[2] == "HTTP/1.0" ? .http1_0 : .http1_1
    return HTTPRequestHead(version: version, method: HTTPMethod(rawValue: String(requestLine[0])), uri: String(requestLine[1]), headers: headers)
}

/// Connection tokens read without arrays, the same way NIO reads them.
@Suite struct ConnectionTokenTests {
    @Test func theScannersKeepAliveAgreesWithNIOOnEverySpelling() {
        let values = ["", "close", "Close", " close ", "keep-alive", "Keep-Alive, Upgrade", "upgrade,close", ",,close,,", "x, \tclose\t", "closed", "keep-alive2", "te"]
        for version in [HTTPVersion.http1_0, .http1_1] {
            for value in values {
                let headers = value.isEmpty ? HTTPHeaders() : HTTPHeaders([("connection", value)])
                let nio = HTTPRequestHead(version: version, method: .GET, uri: "/", headers: headers).isKeepAlive
                let text = "GET / HTTP/1.\(version.minor)\r\nhost: a\r\n" + (value.isEmpty ? "" : "connection: \(value)\r\n") + "\r\n"
                #expect(scanned(text).scan.keepAlive == nio, "\(version) Connection: \(value)")
            }
        }
    }

    @Test func tokensAreTrimmedAndEmptyOnesKept() {
        var seen: [String] = []
        ProxyHeaders.forEachToken(" a ,b,\t, c\t") { seen.append(String(decoding: $0, as: UTF8.self)) }
        #expect(seen == ["a", "b", "", "c"])
    }
}
