import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import MeshCore
import NIOCore
import Testing

/// The egress engine without a channel or a simulator: a recording driver feeds it the app's bytes
/// and the attempts' answers and reads back what it asked for.
@Suite struct EgressConnectionTests {
    final class Service: EgressService {
        var pool = UpstreamPool(UpstreamPool.Config(), endpoints: [MeshAddress(host: "up", port: 1)])
        var random = SeededRandom(seed: 1)
        let exchangeSettings = EgressExchange.Settings(service: "svc", deadline: .seconds(1), attemptTimeout: .milliseconds(100))
        let requestRules = HeaderRules()
        let responseRules = HeaderRules()
        func decide(_ decision: (inout UpstreamPool, inout SeededRandom) -> [EgressExchange.Action]) -> [EgressExchange.Action] {
            decision(&pool, &random)
        }
    }

    /// A driver that does what it is asked and records it.
    final class Recorder: EgressConnectionIO {
        let service = Service()
        var now = MeshInstant.zero
        var limits = EgressLimits()
        var app = ""
        var unflushed = ""
        var closedClient: Bool?
        /// Attempts sent (id and head text) and abandoned; timers armed (with their exchange).
        var sent: [(id: UInt64, head: String)] = []
        var abandoned: [UInt64] = []
        var armed: [(timer: EgressExchange.Timer, generation: UInt64, exchange: UInt64)] = []
        var finished: [Int] = []
        var engine: EgressConnection!

        init() { engine = EgressConnection(io: self, seed: 1) }

        func send(_ text: String) { engine.clientBytes(ByteBuffer(string: text)) }

        /// The upstream answers attempt `id` with a whole answer.
        func answer(_ id: UInt64, _ text: String) throws {
            var codec = UpstreamCodec()
            codec.encode(.head(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"), .plain), allocator: ByteBufferAllocator()) { _ in }
            codec.received(ByteBuffer(string: text))
            while let part = try codec.nextPart() {
                switch part {
                case .head(let head): engine.attemptHead(id, head)
                case .body(let chunk): engine.attemptBody(id, chunk)
                case .end: engine.attemptEnded(id)
                }
            }
            engine.attemptReadComplete(id)
        }

        func currentLimits() -> EgressLimits { limits }
        func route(_ head: ScannedRequestHead, path: String) -> Result<EgressRouting, ErrorResponse> {
            head.first("service_id") == "svc" ? .success(EgressRouting(service: service))
                : .failure(ErrorResponse(status: .notFound, code: "unknown_service", message: "no"))
        }
        func writeToClient(_ bytes: IOData) { if case .byteBuffer(let b) = bytes { unflushed += String(buffer: b) } }
        func flushClient() { app += unflushed; unflushed = "" }
        func closeClient(afterWrites: Bool) {
            if afterWrites { flushClient() }
            closedClient = afterWrites
        }
        var clientIsWritable: Bool { true }
        func clientReads(paused: Bool) {}
        func sendAttempt(_ id: UInt64, to pick: UpstreamPool.Pick, head: EncodedRequestHead, body: ByteBuffer, service: any EgressService) {
            sent.append((id, String(buffer: head.bytes)))
        }
        func abandonAttempt(_ id: UInt64, _ reason: EgressExchange.AbandonReason) { abandoned.append(id) }
        func attemptReads(_ id: UInt64, paused: Bool) {}
        func fetchToken(for service: any EgressService, exchange: UInt64) {}
        func arm(_ timer: EgressExchange.Timer, at instant: MeshInstant, generation: UInt64, exchange: UInt64) {
            armed.append((timer, generation, exchange))
        }
        func disarmTimers() {}
        func tokenRejected(_ token: String, service: any EgressService) {}
        func retrying(service: any EgressService) {}
        func poolEvents(_ events: [UpstreamPool.Event], service: any EgressService) {}
        func finished(status: Int, seconds: Double, service: any EgressService, noEndpoint: Bool) { finished.append(status) }
    }

    static let get = "GET /a HTTP/1.1\r\nhost: x\r\nservice_id: svc\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\n\r\n"
    static let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    @Test func aRoutedRequestIsSentWithoutItsRoutingFieldAndItsAnswerRelayed() throws {
        let io = Recorder()
        io.send(Self.get)
        #expect(io.sent.count == 1)
        let head = io.sent[0].head.lowercased()
        #expect(head.hasPrefix("get /a http/1.1\r\n"))
        #expect(!head.contains("service_id") && !head.contains("x-hop"), "routing and hop-by-hop fields stay with the sidecar")
        #expect(head.contains("traceparent: 00-"), "the sidecar's trace hop")
        try io.answer(io.sent[0].id, Self.ok)
        #expect(io.app.hasPrefix("HTTP/1.1 200 OK\r\n") && io.app.hasSuffix("ok"))
        #expect(io.finished == [200])
        #expect(io.service.pool.endpoints[0].inFlight == 0)
    }

    @Test func a503IsRetriedOnANewAttemptAndTheFirstIsGivenUp() throws {
        let io = Recorder()
        io.send(Self.get)
        try io.answer(io.sent[0].id, "HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n")
        #expect(io.abandoned == [io.sent[0].id])
        #expect(io.app.isEmpty, "nothing of a retried answer reaches the app")
        // The backoff wait, then the second attempt.
        let wait = try #require(io.armed.last { $0.timer == .wait })
        io.now = io.now + .milliseconds(300)
        io.engine.timerFired(.wait, generation: wait.generation, exchange: wait.exchange)
        #expect(io.sent.count == 2)
        try io.answer(io.sent[1].id, Self.ok)
        #expect(io.app.hasPrefix("HTTP/1.1 200 OK"))
    }

    @Test func aTimerOfAnEarlierRequestIsDropped() throws {
        let io = Recorder()
        io.send(Self.get)
        try io.answer(io.sent[0].id, Self.ok)
        let stale = try #require(io.armed.first { $0.timer == .deadline })
        io.send(Self.get)
        io.now = io.now + .seconds(5)
        io.engine.timerFired(.deadline, generation: stale.generation, exchange: stale.exchange)
        #expect(!io.app.contains("504"), "the first request's deadline does not end the second")
        try io.answer(io.sent[1].id, Self.ok)
        #expect(io.finished == [200, 200])
    }

    @Test func theAppLeavingReleasesTheAttemptInItsPool() throws {
        let io = Recorder()
        io.send(Self.get)
        #expect(io.service.pool.endpoints[0].inFlight == 1)
        io.engine.clientClosed()
        #expect(io.abandoned == [io.sent[0].id])
        #expect(io.service.pool.endpoints[0].inFlight == 0)
    }

    @Test func aBodyOverTheLimitIs413AndAnUnknownServiceIs404() throws {
        let io = Recorder()
        io.limits.maxBodyBytes = 4
        io.send("POST /a HTTP/1.1\r\nhost: x\r\nservice_id: svc\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n")
        #expect(io.app.hasPrefix("HTTP/1.1 413 "))
        #expect(io.closedClient == true)
        #expect(io.sent.isEmpty)

        let other = Recorder()
        other.send("GET /a HTTP/1.1\r\nhost: x\r\nservice_id: nope\r\n\r\n")
        #expect(other.app.hasPrefix("HTTP/1.1 404 "))
        #expect(other.closedClient == nil, "a refused request without a body keeps the connection")
    }

    @Test func pipelinedRequestsAreForwardedOneAtATimeInOrder() throws {
        let io = Recorder()
        io.send(Self.get + Self.get.replacingOccurrences(of: "/a", with: "/b"))
        #expect(io.sent.count == 1)
        try io.answer(io.sent[0].id, Self.ok)
        #expect(io.sent.count == 2)
        #expect(io.sent[1].head.hasPrefix("GET /b "))
    }
}
