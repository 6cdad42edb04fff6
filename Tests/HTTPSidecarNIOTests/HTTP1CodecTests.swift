import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The connection codecs of the framing scanner: the server side (``ClientCodec``: requests in,
/// answers out, on an embedded channel through a handler shaped like the sidecars') and the
/// upstream side (``HTTP1ResponseDecoder``: answers in).
@Suite struct HTTP1CodecTests {
    /// Reads requests through a ``ClientCodec`` and passes them on as NIO's parts; writes answers through it.
    private final class WireHarness: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = HTTPServerRequestPart
        typealias OutboundIn = ClientResponsePart
        typealias OutboundOut = IOData
        var codec = ClientCodec()

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            codec.received(unwrapInboundIn(data))
            do {
                while let part = try codec.nextPart() {
                    switch part {
                    case .head(let head): context.fireChannelRead(wrapInboundOut(.head(head.nio)))
                    case .body(let body): context.fireChannelRead(wrapInboundOut(.body(body)))
                    case .end: context.fireChannelRead(wrapInboundOut(.end(nil)))
                    }
                }
            } catch {
                context.fireErrorCaught(error)
            }
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            var pieces: [IOData] = []
            codec.encode(unwrapOutboundIn(data), allocator: context.channel.allocator) { pieces.append($0) }
            for piece in pieces.dropLast() { context.write(wrapOutboundOut(piece), promise: nil) }
            context.write(wrapOutboundOut(pieces.last ?? .byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
    }

    private func server() throws -> EmbeddedChannel {
        EmbeddedChannel(handler: WireHarness())
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var out = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let b) = data { out += String(buffer: b) }
        }
        return out
    }

    @Test func aHeadAnswerCarriesNoBodyOrTerminatorWhateverItsFieldsSay() throws {
        let channel = try server()
        try channel.writeInbound(ByteBuffer(string: "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n"))
        var heads: [HTTPRequestHead] = []
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) { if case .head(let h) = part { heads.append(h) } }
        #expect(heads.map(\.uri) == ["/h", "/g"])
        for (i, fields) in [[("transfer-encoding", "chunked")], [] as [(String, String)]].enumerated() {
            try channel.writeOutbound(ClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: HTTPHeaders(fields))))
            if i == 0 { try channel.writeOutbound(ClientResponsePart.body(.byteBuffer(ByteBuffer(string: "never")))) }
            try channel.writeOutbound(ClientResponsePart.end)
        }
        let out = try written(channel)
        // The HEAD answer: fields only. The GET answer: chunked framing added, and its terminator.
        #expect(out == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", "\(out.debugDescription)")
    }

    @Test func nothingAfterARequestThatClosesTheConnectionIsRead() throws {
        let channel = try server()
        try channel.writeInbound(ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"))
        var uris: [String] = []
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) { if case .head(let h) = part { uris.append(h.uri) } }
        #expect(uris == ["/1"])
    }

    @Test func aRefusedRequestIsAnErrorBeforeAnyPartIsPassedOn() throws {
        let channel = try server()
        #expect(throws: HTTP1Violation.lengthAndTransferEncoding) {
            try channel.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
        }
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil)
        // The stream is dead after a refusal: a well-formed request behind it is not read.
        try channel.writeInbound(ByteBuffer(string: "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil)
    }

    @Test func chunkedBodiesArriveAsTheirData() throws {
        let channel = try server()
        try channel.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"))
        try channel.writeInbound(ByteBuffer(string: "2\r\nde\r\n0\r\n\r\n"))
        var body = ""
        var ended = false
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .body(let b) = part { body += String(buffer: b) }
            if case .end = part { ended = true }
        }
        #expect(body == "abcde" && ended)
    }

    /// An upstream connection's decoder and the answers it read, as text.
    private struct Upstream {
        var decoder = HTTP1ResponseDecoder()
        var unread = ByteBuffer()
        var answers: [String] = []

        mutating func send(_ method: HTTPMethod) {
            decoder.expectAnswer(to: EncodedRequestHead(HTTPRequestHead(version: .http1_1, method: method, uri: "/")).kind)
        }

        mutating func receive(_ bytes: String) throws {
            unread.writeString(bytes)
            while let part = try decoder.next(&unread) { record(part) }
        }

        mutating func close() {
            if let part = decoder.endOfStream() { record(part) }
        }

        private mutating func record(_ part: UpstreamResponsePart) {
            switch part {
            case .head(let h): answers.append("\(h.status)")
            case .body(let b): answers[answers.count - 1] += " " + String(buffer: b)
            case .end: answers[answers.count - 1] += " end"
            }
        }
    }

    @Test func upstreamAnswersAreFramedByTheRequestTheyAnswer() throws {
        var upstream = Upstream()
        upstream.send(.HEAD)
        upstream.send(.GET)
        try upstream.receive("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(upstream.answers == ["200 end", "200 ok end"])
        // Bytes nobody asked for end the connection.
        #expect(throws: HTTP1ResponseDecoder.UnsolicitedBytes.self) { try upstream.receive("HTTP/1.1 200 OK\r\n\r\n") }
    }

    @Test func chunkedAnswersArriveAsTheirDataAcrossReads() throws {
        var upstream = Upstream()
        upstream.send(.GET)
        try upstream.receive("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r")
        try upstream.receive("\nde\r\n0\r\n\r\n")
        #expect(upstream.answers == ["200 abc de end"])
    }

    @Test func aBodyDelimitedByTheCloseEndsWithIt() throws {
        var upstream = Upstream()
        upstream.send(.GET)
        try upstream.receive("HTTP/1.1 200 OK\r\n\r\npart")
        #expect(upstream.answers == ["200 part"])
        upstream.close()
        #expect(upstream.answers == ["200 part end"])
    }

    @Test func aMalformedAnswerIsAnError() throws {
        var upstream = Upstream()
        upstream.send(.GET)
        #expect(throws: HTTP1Violation.lengthAndTransferEncoding) {
            try upstream.receive("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
        }
    }
}
