import HTTPSidecar
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// One request as a parser framed it: what an app behind it would see.
struct FramedRequest: Equatable, CustomStringConvertible {
    var method: String
    var target: String
    var version: String
    var fields: [String]  // "name: value", in order
    var body: [UInt8]

    var description: String { "\(method) \(target) \(version) \(fields) body=\(body.count)B" }
}

/// How a framer's reading of an input ended.
struct Framing: CustomStringConvertible {
    enum End: Equatable { case rejected(String), waiting, closed }
    var messages: [FramedRequest] = []
    var end: End = .waiting
    /// For llhttp: the index of a message after which it stopped parsing (a protocol upgrade).
    var stoppedAfter: Int?
    /// A message whose head was framed (and, by a relay, forwarded) but whose body did not end.
    var partial: FramedRequest?

    var description: String { "\(messages.count) message(s), \(end)" }
}

/// The scanner under test, fed in the pieces given (to exercise resuming), as a relay drives it:
/// head, then the body by its framing, then the next head, until the input ends, a violation, or a
/// head that does not keep the connection open. A field is what a relay forwards: its line as it
/// came (the value with any trailing whitespace).
enum OurFramer {
    static func frame(_ input: [UInt8], cuts: [Int]) -> Framing {
        var out = Framing()
        var scanner = HTTP1RequestScanner()
        var head = HTTP1RequestHead()
        var buffer: [UInt8] = []
        var phase = Phase.head
        var current: FramedRequest?
        var edges = cuts.filter { $0 > 0 && $0 < input.count }.sorted() + [input.count]
        var from = 0
        while !edges.isEmpty {
            let to = edges.removeFirst()
            buffer += input[from..<to]
            from = to
            // Process as much of the buffer as possible.
            progress: while true {
                switch phase {
                case .head:
                    let scan = buffer.withUnsafeBytes { scanner.scan($0, into: &head) }
                    switch scan {
                    case .needMore: break progress
                    case .invalid(let v): out.end = .rejected(v.code + ": " + v.description); out.partial = current; return out
                    case .complete:
                        current = buffer.withUnsafeBytes { b in
                            FramedRequest(
                                method: "\(head.method.name)", target: string(b, head.target),
                                version: head.version == .http11 ? "1.1" : "1.0",
                                fields: head.fields.map { string(b, $0.name) + ": " + string(b, $0.value.lowerBound..<($0.line.upperBound - 2)) }, body: [])
                        }
                        buffer.removeFirst(head.length)
                        scanner.reset()
                        switch head.framing {
                        case .none: phase = .finished
                        case .length(let n): phase = .body(.length(n))
                        case .chunked: phase = .body(.chunked(ChunkedBodyScanner()))
                        }
                    }
                case .body(var reader):
                    switch reader.read(&buffer, into: &current!.body) {
                    case .failure(let v): out.end = .rejected(v.code + ": " + v.description); out.partial = current; return out
                    case .success(true): phase = .finished
                    case .success(false): phase = .body(reader); break progress
                    }
                case .finished:
                    out.messages.append(current!)
                    current = nil
                    phase = .head
                    if !head.keepAlive { out.end = .closed; return out }
                }
            }
        }
        out.partial = current
        return out
    }

    private enum Phase {
        case head, body(BodyReader), finished
    }

    static func string(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
    }
}

/// llhttp, as NIO's `HTTPRequestDecoder` runs it.
enum LlhttpFramer {
    static func frame(_ input: [UInt8]) -> Framing {
        var out = Framing()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        defer { _ = try? channel.finish() }
        var error: (any Error)?
        do {
            try channel.writeInbound(ByteBuffer(bytes: input))
        } catch let e {
            error = e
        }
        var current: FramedRequest?
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let h):
                current = FramedRequest(
                    method: h.method.rawValue, target: h.uri, version: "\(h.version.major).\(h.version.minor)",
                    fields: h.headers.map { "\($0.name): \($0.value)" }, body: [])
                if h.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" }), h.headers.contains(name: "upgrade") {
                    out.stoppedAfter = out.messages.count
                }
            case .body(let b):
                current?.body += b.readableBytesView
            case .end:
                if let c = current { out.messages.append(c) }
                current = nil
            }
        }
        out.partial = current
        if let error { out.end = .rejected("\(error)") }
        return out
    }
}

/// The differential rule: every input is either framed identically by both, or refused by ours.
/// Returns why an input breaks it, or nil.
func differentialMismatch(ours: Framing, llhttp: Framing) -> String? {
    var theirs = llhttp.messages
    var mine = ours.messages
    if let stop = llhttp.stoppedAfter {
        // llhttp hands the rest of the stream to an upgrade handler: compare up to there.
        theirs = Array(theirs.prefix(stop + 1))
        if mine.count > stop + 1 { mine = Array(mine.prefix(stop + 1)) }
        if mine.count == stop + 1 { return mine == theirs ? nil : "messages differ before an upgrade" }
    }
    if let p = ours.partial, llhttp.stoppedAfter.map({ mine.count <= $0 }) ?? true {
        // Ours forwarded this head (and maybe part of its body): llhttp must have read the same.
        let other = theirs.count > mine.count ? theirs[mine.count] : llhttp.partial
        guard let other, other.method == p.method, other.target == p.target, other.version == p.version, other.fields == p.fields,
              other.body.starts(with: p.body) || p.body.starts(with: other.body)
        else { return "ours forwarded the head of message \(mine.count) (\(p)), llhttp read \(other.map { "\($0)" } ?? "none") (\(llhttp.end))" }
    }
    switch ours.end {
    case .rejected, .closed:
        // What ours forwarded before it stopped must be what llhttp framed first.
        guard mine.count <= theirs.count else { return "ours framed \(mine.count) message(s), llhttp \(theirs.count) (\(llhttp.end))" }
        for (i, m) in mine.enumerated() where m != theirs[i] { return "message \(i): ours \(m), llhttp \(theirs[i])" }
        return nil
    case .waiting:
        guard mine.count == theirs.count else {
            if llhttp.stoppedAfter != nil, mine.count < theirs.count { return nil }
            return "ours framed \(mine.count) message(s) and waits, llhttp \(theirs.count) (\(llhttp.end))"
        }
        for (i, m) in mine.enumerated() where m != theirs[i] { return "message \(i): ours \(m), llhttp \(theirs[i])" }
        return nil
    }
}
