import Foundation
import HTTPSidecar
import Testing

/// The framing scanner against llhttp (NIO's `HTTPRequestDecoder` and `HTTPResponseDecoder`): every
/// input must be framed identically by both, or refused by ours. `HTTP1_DIFF_INPUTS` sets the
/// generated request corpus size (CI runs half a million from a new seed every run: `ci/diff-http1`), `HTTP1_DIFF_RESPONSES` the
/// response corpus size, `HTTP1_DIFF_SEED` their seed.
@Suite struct HTTP1DifferentialTests {
    /// Known request-smuggling and desync payloads, each of which ours must refuse.
    static let smuggling: [(name: String, input: String)] = [
        ("CL.TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED"),
        ("TE.CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
        ("TE.TE space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"),
        ("TE.TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("TE.TE two fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
        ("TE.TE list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
        ("TE.TE obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
        ("TE.TE leading space", "POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("TE.TE quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"),
        ("TE.TE vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\u{b}chunked\r\n\r\n0\r\n\r\n"),
        ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("CL.CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"),
        ("CL plus sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"),
        ("CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"),
        ("CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\nhello"),
        ("bare LF line", "GET / HTTP/1.1\nHost: a\n\n"),
        ("bare LF in a field", "GET / HTTP/1.1\r\nHost: a\r\nX: y\nTransfer-Encoding: chunked\r\n\r\n"),
        ("bare CR", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"),
        ("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n"),
        ("NUL in a name", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\u{0}: chunked\r\n\r\n"),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
        ("chunk extension with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a\r\nhello\r\n0\r\n\r\n"),
        ("chunk extension quoted CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"\r\n\"\r\nhello\r\n0\r\n\r\n"),
        ("oversized chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"),
        ("chunk size with a sign", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
        ("chunk data too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"),
        ("chunk bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
        ("Connection names Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"),
        ("Connection names Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nConnection: close, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("Connection names Host", "GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n"),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("no Host", "GET / HTTP/1.1\r\n\r\n"),
        ("space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
        ("HTTP/0.9 style", "GET /\r\n\r\n"),
        ("HTTP/2.0 version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("trailer with a space in the name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n"),
        ("non-ASCII in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\u{e9}\r\n\r\n"),
    ]

    @Test func refusesEveryKnownSmugglingPayload() {
        for (name, input) in Self.smuggling {
            let bytes = Array(input.utf8)
            let ours = OurFramer.frame(bytes, cuts: [])
            guard case .rejected = ours.end else {
                Issue.record("\(name): ours did not refuse it (\(ours))")
                continue
            }
            // Refused without forwarding a whole message (a body-level refusal follows a head).
            #expect(ours.messages.isEmpty, "\(name): forwarded \(ours.messages)")
            if let why = differentialMismatch(ours: ours, llhttp: LlhttpFramer.frame(bytes)) { Issue.record("\(name): \(why)") }
        }
    }

    @Test func framesOrdinaryRequestsLikeLlhttp() {
        let inputs = [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "\r\nGET /x?y=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Empty:\r\nX-Pad:  v  \r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\nGET /not-read HTTP/1.0\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /again HTTP/1.0\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://h.example/p HTTP/1.1\r\nHost: h.example\r\n\r\n",
        ]
        for input in inputs {
            let bytes = Array(input.utf8)
            let ours = OurFramer.frame(bytes, cuts: [])
            #expect(ours.messages.count >= 1, "\(input.debugDescription): \(ours)")
            if case .rejected(let why) = ours.end { Issue.record("\(input.debugDescription) refused: \(why)") }
            if let why = differentialMismatch(ours: ours, llhttp: LlhttpFramer.frame(bytes)) { Issue.record("\(input.debugDescription): \(why)") }
            // Fed a byte at a time, the result is the same.
            let trickled = OurFramer.frame(bytes, cuts: Array(1..<bytes.count))
            #expect(trickled.messages == ours.messages)
        }
    }

    @Test func generatedCorpusAgreesWithLlhttp() {
        let env = ProcessInfo.processInfo.environment
        let count = env["HTTP1_DIFF_INPUTS"].flatMap(Int.init) ?? 20_000
        let seed = env["HTTP1_DIFF_SEED"].flatMap(UInt64.init) ?? 1
        var corpus = HTTP1Corpus(seed: seed)
        var bothFramed = 0, oursRefused = 0, bothRefused = 0, mismatches = 0
        var oursOnlyReasons: [String: Int] = [:]
        for i in 0..<count {
            let (bytes, cuts) = corpus.input()
            let ours = OurFramer.frame(bytes, cuts: cuts)
            let theirs = LlhttpFramer.frame(bytes)
            if let why = differentialMismatch(ours: ours, llhttp: theirs) {
                mismatches += 1
                if mismatches <= 10 {
                    Issue.record("input \(i) (seed \(seed)) \(String(decoding: bytes, as: UTF8.self).debugDescription): \(why)")
                }
                continue
            }
            switch (ours.end, theirs.end) {
            case (.rejected, .rejected): bothRefused += 1
            case (.rejected(let why), _):
                oursRefused += 1
                oursOnlyReasons[why, default: 0] += 1
            default: bothFramed += 1
            }
        }
        print("http1-differential: seed \(seed), \(count) inputs: framed identically by both \(bothFramed), refused by ours only \(oursRefused), refused by both \(bothRefused), mismatches \(mismatches)")
        for (why, n) in oursOnlyReasons.sorted(by: { $0.value > $1.value }) { print("  refused by ours only: \(n) × \(why)") }
        #expect(mismatches == 0)
    }

    @Test func generatedResponsesAgreeWithLlhttp() {
        let env = ProcessInfo.processInfo.environment
        let count = env["HTTP1_DIFF_RESPONSES"].flatMap(Int.init) ?? 10_000
        let seed = env["HTTP1_DIFF_SEED"].flatMap(UInt64.init) ?? 1
        var corpus = HTTP1Corpus(seed: seed ^ 0x5EED)
        var bothFramed = 0, oursRefused = 0, bothRefused = 0, mismatches = 0
        for i in 0..<count {
            let (bytes, methods, cuts) = corpus.responses()
            let ours = OurResponseFramer.frame(bytes, methods: methods, cuts: cuts)
            let theirs = LlhttpResponseFramer.frame(bytes, methods: methods)
            if let why = differentialMismatch(ours: ours, llhttp: theirs) {
                mismatches += 1
                if mismatches <= 10 {
                    Issue.record("response input \(i) (seed \(seed)) to \(methods) \(String(decoding: bytes, as: UTF8.self).debugDescription): \(why)")
                }
                continue
            }
            switch (ours.end, theirs.end) {
            case (.rejected, .rejected): bothRefused += 1
            case (.rejected, _): oursRefused += 1
            default: bothFramed += 1
            }
        }
        print("http1-differential responses: seed \(seed), \(count) inputs: framed identically by both \(bothFramed), refused by ours only \(oursRefused), refused by both \(bothRefused), mismatches \(mismatches)")
        #expect(mismatches == 0)
    }
}
