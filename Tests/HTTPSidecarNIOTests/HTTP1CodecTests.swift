import HTTPSidecar
@testable import HTTPSidecarNIO
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The NIO adapters of the framing scanner: the server side (requests in, answers out) and the
/// upstream side (answers in), on an embedded channel.
@Suite struct HTTP1CodecTests {
    private func server() throws -> EmbeddedChannel {
        let pending = PendingRequestMethods()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP1ResponseEncoder(pending: pending))
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTP1RequestDecoder<HTTPServerRequestPart>(pending: pending)))
        return channel
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

    private func upstream() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTP1ResponseDecoder()))
        return channel
    }

    private func send(_ channel: EmbeddedChannel, _ method: HTTPMethod) throws {
        let head = EncodedRequestHead(HTTPRequestHead(version: .http1_1, method: method, uri: "/"))
        try channel.writeOutbound(UpstreamRequestPart.head(head.bytes, head.kind))
    }

    private func answers(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let part = try channel.readInbound(as: UpstreamResponsePart.self) {
            switch part {
            case .head(let h): out.append("\(h.status)")
            case .body(let b): out[out.count - 1] += " " + String(buffer: b)
            case .end: out[out.count - 1] += " end"
            }
        }
        return out
    }

    @Test func upstreamAnswersAreFramedByTheRequestTheyAnswer() throws {
        let channel = try upstream()
        try send(channel, .HEAD)
        try send(channel, .GET)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        #expect(try answers(channel) == ["200 end", "200 ok end"])
        // Bytes nobody asked for end the connection.
        #expect(throws: HTTP1ResponseDecoder.UnsolicitedBytes.self) { try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n")) }
    }

    @Test func aBodyDelimitedByTheCloseEndsWithIt() throws {
        let channel = try upstream()
        try send(channel, .GET)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\npart"))
        #expect(try answers(channel) == ["200 part"])
        try channel.close().wait()
        var ended = false
        while let part = try channel.readInbound(as: UpstreamResponsePart.self) { if case .end = part { ended = true } }
        #expect(ended)
    }

    @Test func aMalformedAnswerIsAnError() throws {
        let channel = try upstream()
        try send(channel, .GET)
        #expect(throws: HTTP1Violation.lengthAndTransferEncoding) {
            try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"))
        }
    }
}
