import HTTPSidecar
@testable import HTTPSidecarNIO
import MeshCore
import NIOCore
import SidecarAuth
import Testing

/// The ingress engine without a channel or a simulator: a recording driver feeds it bytes and
/// events and reads back what it asked for.
@Suite struct IngressConnectionTests {
    /// A driver that does what it is asked, records it, and frames the app side with the production codec.
    final class Recorder: IngressConnectionIO {
        var policy: IngressPolicy
        var now = MeshInstant.zero
        /// What the client received (flushed), and whether and how its connection closed.
        var client = ""
        var unflushed = ""
        var closedClient: (afterWrites: Bool, at: Int)?
        var readsPaused = false
        var wakeUps: [MeshInstant] = []
        /// Whether an app connection is ready at once; the requests the app got, as bytes.
        var appReady = true
        var connects = 0
        var app = ""
        var appCodec = UpstreamCodec()
        var appAbandoned = 0
        var began = 0
        var finished: [Int] = []
        var atHead: [Int] = []
        var engine: IngressConnection<Recorder>!

        init(_ configure: (inout IngressConfig) -> Void = { _ in }) throws {
            var config = IngressConfig()
            configure(&config)
            policy = try IngressPolicy(config: config, hashSeed: 1)
            engine = IngressConnection(io: self, scheme: "http", client: "192.0.2.1", seed: 1)
            engine.opened()
        }

        func send(_ text: String) {
            engine.clientBytes(ByteBuffer(string: text))
            engine.clientReadComplete()
        }

        /// The app answers with `text` (whole or a piece of an answer).
        func answer(_ text: String) throws {
            appCodec.received(ByteBuffer(string: text))
            while let part = try appCodec.nextPart() {
                switch part {
                case .head(let head): engine.appHead(head)
                case .body(let chunk): engine.appBody(chunk)
                case .end:
                    appCodec = UpstreamCodec()
                    engine.appEnd()
                }
            }
            engine.appReadComplete()
        }

        func currentPolicy() -> IngressPolicy { policy }
        func writeToClient(_ bytes: IOData) {
            if case .byteBuffer(let b) = bytes { unflushed += String(buffer: b) }
        }
        func flushClient() {
            client += unflushed
            unflushed = ""
        }
        func closeClient(afterWrites: Bool) {
            if afterWrites { flushClient() }
            closedClient = (afterWrites, client.count)
        }
        var clientIsWritable: Bool { true }
        func clientReads(paused: Bool) { readsPaused = paused }
        func wake(at instant: MeshInstant) { wakeUps.append(instant) }
        func connectToApp() -> Bool {
            connects += 1
            return appReady
        }
        func startApp(_ head: EncodedRequestHead, timeout: Duration) { sendToApp(.head(head.bytes, head.kind)) }
        func sendToApp(_ part: UpstreamRequestPart) {
            appCodec.encode(part, allocator: ByteBufferAllocator()) { app += String(buffer: $0) }
        }
        func flushApp() {}
        func abandonApp() { appAbandoned += 1 }
        func appReads(paused: Bool) {}
        var appIsWritable: Bool { true }
        func verify(_ jwt: JWTAuthenticator, authorization: String?, path: String) -> Result<VerifiedToken, AuthFailure>? { nil }
        func exchangeBegan() { began += 1 }
        func exchangeFinished(_ exchange: IngressExchange, status: Int) { finished.append(status) }
        func answeredAtHead(status: Int) { atHead.append(status) }
    }

    static let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    @Test func pipelinedRequestsGoToTheAppOneAtATimeAndAreAnsweredInOrder() throws {
        let io = try Recorder()
        io.send("GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(io.app.hasPrefix("GET /a HTTP/1.1\r\n"))
        #expect(!io.app.contains("GET /b"), "the second request waits for the first's answer")
        try io.answer(Self.ok)
        #expect(io.app.contains("GET /b HTTP/1.1\r\n"))
        try io.answer(Self.ok)
        #expect(io.client.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(io.finished == [200, 200])
        #expect(io.closedClient == nil)
    }

    @Test func anAnswerBeforeTheRequestEndsClosesTheConnectionAfterIt() throws {
        let io = try Recorder()
        io.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        try io.answer(Self.ok)
        #expect(io.client.hasSuffix("ok"))
        #expect(io.closedClient?.afterWrites == true)
        io.send("defghijGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(!io.app.contains("smuggled"), "nothing more is read")
    }

    @Test func aBodyOverTheLimitIsAnswered413AndTheAppConnectionGivenUp() throws {
        let io = try Recorder { $0.maxBodyBytes = 4 }
        io.send("POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n")
        #expect(io.client.hasPrefix("HTTP/1.1 413 "))
        #expect(io.closedClient?.afterWrites == true)
        #expect(io.appAbandoned == 1)
        #expect(io.finished == [413])
    }

    @Test func aStalledBodyIsAnswered408AndAMissingHeadIsJustClosed() throws {
        let io = try Recorder { $0.headerTimeout = .seconds(1) }
        io.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        io.now = .zero + .seconds(5)
        io.engine.wakeUp()
        #expect(io.client.hasPrefix("HTTP/1.1 408 "))
        #expect(io.finished == [408])

        let idle = try Recorder { $0.headerTimeout = .seconds(1) }
        #expect(idle.wakeUps == [.zero + .seconds(1)])
        idle.now = .zero + .milliseconds(500)
        idle.engine.wakeUp()
        #expect(idle.closedClient == nil, "woken early: the deadline stands")
        idle.now = .zero + .seconds(2)
        idle.engine.wakeUp()
        #expect(idle.client.isEmpty)
        #expect(idle.closedClient?.afterWrites == false)
    }

    @Test func anAppThatTimesOutIsAnswered504AndTheConnectionCarriesOn() throws {
        let io = try Recorder()
        io.send("GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        io.engine.appFailed(TransportError(.responseTimeout, "slow"))
        #expect(io.client.hasPrefix("HTTP/1.1 504 "))
        #expect(io.closedClient == nil)
        #expect(io.app.contains("GET /b"), "the next request goes on")
    }

    @Test func anAnswerBrokenOffMidwayIsNotPatchedWithAnError() throws {
        let io = try Recorder()
        io.send("GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        try io.answer("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        io.engine.appFailed(TransportError(.reset, "gone"))
        #expect(io.client.hasSuffix("abc"))
        #expect(!io.client.contains("502"))
        #expect(io.closedClient?.afterWrites == false)
    }

    @Test func aHeldRequestWaitsForTheConnectAndLosesNoPart() throws {
        let io = try Recorder()
        io.appReady = false
        io.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nab")
        io.send("c")
        #expect(io.app.isEmpty)
        #expect(io.engine.appConnected())
        #expect(io.app.hasSuffix("\r\n\r\nabc"))
    }

    @Test func readingStopsWhileManyPipelinedPartsWaitAndResumesAsTheyDrain() throws {
        let io = try Recorder()
        io.send(String(repeating: "GET /a HTTP/1.1\r\nhost: x\r\n\r\n", count: 80))
        #expect(io.readsPaused)
        for _ in 0..<80 { try io.answer(Self.ok) }
        #expect(!io.readsPaused)
        #expect(io.finished.count == 80)
    }

    @Test func aRefusedRequestIsAnsweredAtItsHeadAndNeverReachesTheApp() throws {
        let io = try Recorder {
            $0.rateLimit = RateLimiter.Config(rate: 0.001, burst: 1)
        }
        io.send("GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        try io.answer(Self.ok)
        io.send("GET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(io.atHead == [429])
        #expect(io.closedClient == nil, "a refused request without a body keeps the connection")
        io.send("POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
        #expect(io.atHead == [429, 429])
        #expect(io.closedClient?.afterWrites == true, "a refused body is not read: the connection closes")
        #expect(io.app.hasPrefix("GET /a ") && !io.app.contains("/b") && !io.app.contains("/c"))
        #expect(io.connects == 1)
    }
}
