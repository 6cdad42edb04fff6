import HTTPSidecar
@testable import HTTPSidecarEngines
import MeshCore
import NIOCore
import Testing

/// The upstream link without a socket: the rules every driver (NIO's ``UpstreamConnection`` and both
/// simulated sidecars) now takes from it, driven event by event with a hand-held clock.
@Suite struct UpstreamLinkTests {
    static func at(_ ms: Int64) -> MeshInstant { MeshInstant(nanoseconds: ms * 1_000_000) }

    static func post(_ body: String) -> EncodedRequestHead {
        let text = "POST /orders HTTP/1.1\r\nhost: app\r\ncontent-length: \(body.utf8.count)\r\n\r\n"
        return EncodedRequestHead(bytes: ByteBuffer(string: text), method: .post, chunked: false)
    }

    /// An open link on plain TCP with a POST's head written at `ms`.
    static func exchanging(at ms: Int64 = 0, timeout: Duration = .milliseconds(100), tls: Bool = false) -> (UpstreamLink, [String]) {
        var link = UpstreamLink(tls: tls, connectTimeout: .seconds(1), now: at(ms))
        link.connected(now: at(ms))
        var out: [String] = []
        link.start(post("hi"), timeout: timeout, now: at(ms)) { out.append(String(buffer: $0)) }
        return (link, out)
    }

    static func drain(_ link: inout UpstreamLink, _ bytes: String, now ms: Int64) -> [UpstreamLinkEvent] {
        link.received(ByteBuffer(string: bytes))
        var events: [UpstreamLinkEvent] = []
        while let e = link.next(now: at(ms)) { events.append(e) }
        return events
    }

    @Test func aWholeAnswerAfterTheWholeRequestLeavesTheConnectionReusable() {
        var (link, _) = Self.exchanging()
        link.send(.body(ByteBuffer(string: "hi")), now: Self.at(1)) { _ in }
        link.send(.end, now: Self.at(1)) { _ in }
        let events = Self.drain(&link, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", now: 5)
        #expect(events.count == 3)
        guard case .end(let reuse)? = events.last else { Issue.record("no end"); return }
        #expect(reuse)
        #expect(link.phase == .idle && link.deadline == nil)
    }

    @Test func anEarlyAnswerOrBytesAfterTheAnswerCloseTheConnection() {
        var (early, _) = Self.exchanging()
        guard case .end(let reuse)? = Self.drain(&early, "HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n", now: 2).last else {
            Issue.record("no end"); return
        }
        #expect(!reuse, "the app answered before the body was sent: its reading state is unknown")

        var (trailing, _) = Self.exchanging()
        trailing.send(.body(ByteBuffer(string: "hi")), now: Self.at(1)) { _ in }
        trailing.send(.end, now: Self.at(1)) { _ in }
        guard case .end(let again)? = Self.drain(&trailing, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n", now: 2).last else {
            Issue.record("no end"); return
        }
        #expect(!again, "bytes after the answer must never become the next request's answer")
    }

    @Test func theResponseTimeoutBoundsTheHeadAndThenEveryPauseInTheAnswer() {
        var (link, _) = Self.exchanging(timeout: .milliseconds(100))
        link.send(.end, now: Self.at(0)) { _ in }
        #expect(link.deadline == Self.at(100))
        #expect(link.deadlinePassed(now: Self.at(99)).map { _ in 1 } == nil)
        _ = Self.drain(&link, "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab", now: 90)
        #expect(link.deadline == Self.at(190), "progress moves the deadline")
        #expect(link.deadlinePassed(now: Self.at(150)).map { _ in 1 } == nil)
        guard case .failed(let error, let sent)? = link.deadlinePassed(now: Self.at(190)) else {
            Issue.record("a stalled answer was not cut off"); return
        }
        #expect(error.kind == .responseTimeout && sent)
        #expect(link.phase == .closed)
    }

    @Test func aFailureAfterTheFirstByteLeftCountsTheRequestAsSent() {
        var (link, out) = Self.exchanging()
        #expect(out.first?.hasPrefix("POST /orders") == true)
        guard case .failed(_, let sent)? = link.peerClosed() else { Issue.record("no failure"); return }
        #expect(sent, "the head left: the app may have read the POST")
    }

    @Test func onTLSNothingCountsAsSentBeforeTheHandshake() {
        var (link, _) = Self.exchanging(tls: true)
        guard case .failed(_, let sent)? = link.failed(TransportError(.tls, "handshake")) else { Issue.record("no failure"); return }
        #expect(!sent, "bytes held by TLS before the handshake never left")

        var (secured, _) = Self.exchanging(tls: true)
        secured.handshakeCompleted()
        guard case .failed(_, let after)? = secured.failed(TransportError(.tls, "unclean close")) else { Issue.record("no failure"); return }
        #expect(after, "an unclean close after the handshake says nothing about whether the request was read")
    }

    @Test func anExchangeStartedWhileConnectingWaitsForTheConnectThenGetsItsTimeout() {
        var link = UpstreamLink(tls: false, connectTimeout: .milliseconds(50), now: Self.at(0))
        link.start(Self.post(""), timeout: .milliseconds(100), now: Self.at(0)) { _ in }
        #expect(link.deadline == Self.at(50), "the connect deadline runs until the connect")
        #expect(!link.requestSent)
        link.connected(now: Self.at(20))
        #expect(link.deadline == Self.at(120))

        var slow = UpstreamLink(tls: false, connectTimeout: .milliseconds(50), now: Self.at(0))
        slow.start(Self.post(""), timeout: .milliseconds(100), now: Self.at(0)) { _ in }
        guard case .failed(let error, let sent)? = slow.deadlinePassed(now: Self.at(50)) else { Issue.record("no connect timeout"); return }
        #expect(error.kind == .connectTimeout && !sent)
    }

    @Test func anAnswerDelimitedByTheCloseEndsAtTheCloseAndAMalformedOneFails() {
        var (link, _) = Self.exchanging()
        link.send(.end, now: Self.at(0)) { _ in }
        _ = Self.drain(&link, "HTTP/1.0 200 OK\r\n\r\nstream", now: 1)
        guard case .end(let reuse)? = link.peerClosed() else { Issue.record("the close did not end the answer"); return }
        #expect(!reuse)

        var (bad, _) = Self.exchanging()
        guard case .failed(let error, _)? = Self.drain(&bad, "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n", now: 1).last else {
            Issue.record("a smuggling-shaped answer was read"); return
        }
        #expect(error.kind == .protocolViolation)
    }
}
