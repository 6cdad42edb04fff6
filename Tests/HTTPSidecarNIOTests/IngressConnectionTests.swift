import Foundation
import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import MeshCore
import NIOCore
@testable import SidecarAuth
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
        /// Reports a close to the engine at once, as a driver may.
        var closeReportsAtOnce = false
        /// Runs inside the next flush of the client (a driver whose write triggers a synchronous read).
        var duringFlush: (() -> Void)?
        var engine: IngressConnection!

        init(services: IngressServices = IngressServices(), _ configure: (inout IngressConfig) -> Void = { _ in }) throws {
            var config = IngressConfig()
            configure(&config)
            policy = try IngressPolicy(config: config, services: services, hashSeed: 1)
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
            if let hook = duringFlush {
                duringFlush = nil
                hook()
            }
        }
        func closeClient(afterWrites: Bool) {
            if afterWrites { flushClient() }
            closedClient = (afterWrites, client.count)
            if closeReportsAtOnce { engine.clientClosed() }
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
        func answeredAtHead(_ head: ScannedRequestHead, status: Int) { atHead.append(status) }
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

    /// Issue 22: a body trickled a byte every 5 s (never a pause as long as the header timeout)
    /// was held for ever; below the minimum rate it is now cut off, and a steady body is not.
    @Test func aTrickledBodyIsCutOffAtTheMinimumRateAndASteadyOneIsNot() throws {
        let io = try Recorder { $0.headerTimeout = .seconds(10); $0.minBodyRate = 100 }
        io.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
        var seconds: Int64 = 0
        while io.client.isEmpty && seconds < 600 {
            seconds += 5
            io.now = .zero + .seconds(seconds)
            io.send("a")
            io.engine.wakeUp()
        }
        #expect(io.client.hasPrefix("HTTP/1.1 408 "))
        #expect(io.client.contains("slower than 100 bytes per second"))
        #expect(seconds == 15, "10 s to start, and 10 ms more per byte")

        let steady = try Recorder { $0.headerTimeout = .seconds(10); $0.minBodyRate = 100 }
        steady.send("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 3000\r\n\r\n")
        for second in 1...20 {  // 150 bytes a second, each part after a 1 s pause
            steady.now = .zero + .seconds(Int64(second))
            steady.engine.wakeUp()
            steady.send(String(repeating: "b", count: 150))
        }
        try steady.answer(Self.ok)
        #expect(steady.client.hasPrefix("HTTP/1.1 200 "))
        #expect(steady.app.hasSuffix(String(repeating: "b", count: 3000)))
    }

    static let jwks: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/fixtures/jwt/jwks.json"
    }()

    /// Issue 22: `100 Continue` went out before the JWT verdict, so a refused client sent its body
    /// anyway; and a 401 whose close the driver reported at once counted the exchange twice (the
    /// in-flight gauge went negative and a later drain cut a running request).
    @Test func continueWaitsForTheVerdictAndARefusalThatClosesIsCountedOnce() async throws {
        let jwt = try await JWTAuthenticator(policy: JWTPolicy(), jwksFile: Self.jwks)
        let head = "POST /a HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\nauthorization: Bearer a.b.c\r\n\r\n"

        let refused = try Recorder(services: IngressServices(jwt: jwt))
        refused.closeReportsAtOnce = true
        refused.send(head)
        #expect(refused.client.isEmpty, "no 100 Continue before the verdict")
        refused.engine.verified(.success(.failure(AuthFailure(status: 401, code: "invalid_token", message: "no", wwwAuthenticate: "Bearer"))))
        #expect(refused.client.hasPrefix("HTTP/1.1 401 "))
        #expect(!refused.client.contains("100 Continue"))
        #expect(refused.began == 1 && refused.finished == [401], "counted once")

        let admitted = try Recorder(services: IngressServices(jwt: jwt))
        admitted.send(head)
        admitted.engine.verified(.success(.success(VerifiedToken(subject: "alice", clientId: nil, scopes: []))))
        #expect(admitted.client == "HTTP/1.1 100 Continue\r\n\r\n")
        admitted.send("abc")
        #expect(admitted.app.hasSuffix("\r\n\r\nabc"))
    }

    /// Issue 22: a WebSocket upgrade was stripped and the app's 101 became a 502 (now a clear 501;
    /// an `h2c` offer is ignored and the request goes on), and an HTTP/1.0 request without Host
    /// reached the app as HTTP/1.1 without Host.
    @Test func aWebSocketUpgradeIs501AndAnHTTP10RequestGetsAHost() throws {
        let ws = try Recorder()
        ws.send("GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
        #expect(ws.client.hasPrefix("HTTP/1.1 501 "))
        #expect(ws.client.contains("upgrade_not_supported"))
        #expect(ws.app.isEmpty)

        let h2c = try Recorder()
        h2c.send("GET /a HTTP/1.1\r\nhost: x\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABk\r\n\r\n")
        #expect(h2c.app.hasPrefix("GET /a HTTP/1.1\r\n"))
        #expect(!h2c.app.lowercased().contains("upgrade"))

        let old = try Recorder()
        old.send("GET /a HTTP/1.0\r\n\r\n")
        #expect(old.app.hasPrefix("GET /a HTTP/1.1\r\n"))
        #expect(old.app.contains("\r\nhost: 127.0.0.1:8080\r\n"))
        #expect(!old.app.contains("x-forwarded-host"))
    }

    /// Issue 23: a driver may hand the engine bytes from inside a call the engine made (a write that
    /// triggers a synchronous read). The engine must not re-enter its reading loop: here the bytes
    /// come while a refusal is being written, before the engine has left the refused request's state;
    /// a nested read would start the next request and then have its state overwritten (its answer lost).
    @Test func bytesHandedInFromInsideAFlushKeepTheirOrder() throws {
        let io = try Recorder { $0.cors = CORSPolicy(allowedOrigins: ["https://good.example"]) }
        io.duringFlush = { io.send("GET /c HTTP/1.1\r\nhost: x\r\n\r\n") }
        io.send("OPTIONS /a HTTP/1.1\r\nhost: x\r\norigin: https://evil.example\r\naccess-control-request-method: GET\r\n\r\n"
                + "GET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(io.client.hasPrefix("HTTP/1.1 403 "))
        for _ in 0..<2 { try io.answer(Self.ok) }
        let order = io.app.components(separatedBy: "\r\n").filter { $0.hasPrefix("GET ") }
        #expect(order == ["GET /b HTTP/1.1", "GET /c HTTP/1.1"])
        #expect(io.client.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(io.client)")
        #expect(io.finished == [200, 200])
    }
}
