// A trivial, fast app for ci/bench-kafka-sidecar: answers every pushed record SUCCESS (scanning the
// push body for its ids, no JSON library), counts the records it answered (GET /count), and is
// ready (GET /health/ready). Usage: kafka-sidecar-bench-app PORT
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

let answered = Atomic<Int>(0)

final class AppHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h; body.clear()
        case .body(var chunk): body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            var out = ByteBuffer()
            if head.method == .POST {
                out.writeString("{\"statuses\":[")
                var n = 0
                let bytes = body.readableBytesView
                let marker = Array("\"id\":\"".utf8)
                var i = bytes.startIndex
                while let start = find(marker, in: bytes, from: i) {
                    let idStart = start + marker.count
                    var j = idStart
                    while j < bytes.endIndex && bytes[j] != UInt8(ascii: "\"") { j += 1 }
                    if n > 0 { out.writeString(",") }
                    out.writeString("{\"id\":\"")
                    out.writeBytes(bytes[idStart..<j])
                    out.writeString("\",\"status\":\"SUCCESS\"}")
                    n += 1
                    i = j
                }
                out.writeString("]}")
                answered.add(n, ordering: .relaxed)
            } else if head.uri == "/count" {
                out.writeString(String(answered.load(ordering: .relaxed)))
            } else {
                out.writeString("ok")
            }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(out.readableBytes))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(out))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    private func find(_ marker: [UInt8], in bytes: ByteBufferView, from: Int) -> Int? {
        var i = from
        let last = bytes.endIndex - marker.count
        while i <= last {
            if bytes[i] == marker[0] {
                var k = 1
                while k < marker.count && bytes[i + k] == marker[k] { k += 1 }
                if k == marker.count { return i }
            }
            i += 1
        }
        return nil
    }
}

let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 18200
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(AppHandler())
        }
    }
    .bind(host: "127.0.0.1", port: port).wait()
try channel.closeFuture.wait()
