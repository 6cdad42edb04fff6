import HTTPSidecar
import MeshCore
import MeshSimulator

/// A client of the ingress: on each of its connections, requests chosen from
/// ``IngressSpellings`` (sometimes a pipelined pair, sometimes a smuggling attempt), each recorded
/// in the ``IngressLedger`` with what it should come to before it is sent; every answer is checked
/// against that and the request's history entry completed. POST bodies go by length or chunked;
/// half the requests are written in two pieces cut at a random byte.
final class IngressClient: SimProcess {
    private let config: IngressWorkloadConfig
    private let ledger: IngressLedger
    private let sidecar: HostID
    private let address: String
    private let stopAt: MeshInstant

    private struct Outstanding {
        var id: String
        var expected: IngressExpectation
        var history: Int
        var deadline: TimerToken
        /// For a cross-origin request: the origin its answer must allow (nil: none).
        var allowOrigin: String??
        /// Written in two pieces a moment apart (the second may be held up past the header timeout).
        var writtenInPieces = false
    }
    private struct Slot {
        var stream: StreamID?
        var connected = false
        var unsent: [UInt8] = []
        var reader = SimHTTP1.ResponseReader()
        var outstanding: [Outstanding] = []
    }
    private var slots: [Slot] = []
    private var slotOf: [StreamID: Int] = [:]
    /// `rest`: the second piece of a request written in two (on the connection it was begun on).
    private enum Timer { case think(Int), deadline(Int), rest(Int, StreamID, [UInt8]) }
    private var timers: [UInt64: Timer] = [:]
    private var sequence = 0

    init(config: IngressWorkloadConfig, ledger: IngressLedger, sidecar: HostID, address: String, stopAt: MeshInstant) {
        self.config = config
        self.ledger = ledger
        self.sidecar = sidecar
        self.address = address
        self.stopAt = stopAt
    }

    func start(on host: SimHost) {
        slots = Array(repeating: Slot(), count: config.concurrency)
        slotOf = [:]
        timers = [:]
        for i in slots.indices { think(i, host) }
    }

    private func think(_ i: Int, _ host: SimHost) {
        let t = host.setTimer(after: config.thinkTime + .nanoseconds(Int64(host.random.nextUnit() * Double(config.thinkTime.nanoseconds))))
        timers[t.rawValue] = .think(i)
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        switch timers.removeValue(forKey: token.rawValue) {
        case .think(let i)?: issue(i, host)
        case .deadline(let i)?: dropConnection(i, why: "timeout", host)
        case .rest(let i, let s, let bytes)?: if slots[i].stream == s { host.write(s, bytes) }
        case nil: break
        }
    }

    /// Sends the next request (or pipelined pair) on slot `i`, connecting first when needed.
    private func issue(_ i: Int, _ host: SimHost) {
        guard host.now < stopAt else { return }
        if slots[i].stream == nil {
            let s = host.connect(to: sidecar, port: IngressSidecarPod.port)
            slots[i].stream = s
            slots[i].connected = false
            slots[i].reader = SimHTTP1.ResponseReader()
            slotOf[s] = i
        }
        var bytes: [UInt8] = []
        if host.random.chance(config.smugglingShare) {
            let id = nextId(host)
            bytes += IngressSpellings.smuggling(id, variant: Int(host.random.next() % 5))
            record(i, id: id, method: "POST", body: "", expected: .malformed, host)
        } else if host.random.chance(config.corsShare) {
            let id = nextId(host)
            let request = IngressSpellings.cors(id, pick: host.random.next())
            bytes += request.bytes
            record(i, id: id, method: request.method, body: "", expected: request.expected, allowOrigin: request.allowOrigin, host)
        } else if host.random.chance(config.jwtShare) {
            let id = nextId(host)
            let request = IngressSpellings.secure(id, pick: host.random.next())
            bytes += request.bytes
            record(i, id: id, method: request.method, body: request.body, expected: request.expected, host)
        } else {
            var pipelined = 1
            while pipelined > 0 {
                pipelined -= 1
                let spelling = IngressSpellings.table[Int(host.random.next() % UInt64(IngressSpellings.table.count))]
                let post = host.random.chance(0.3)
                let id = nextId(host)
                var expected = IngressSpellings.expectation(spelling.means, client: address)
                // Some bodies to the app are over the limit, and some stop halfway for good.
                let admitted: Bool
                if case .app = expected { admitted = true } else { admitted = false }
                let oversize = post && admitted && host.random.chance(config.oversizeShare)
                let stall = post && admitted && !oversize && host.random.chance(config.stallShare)
                let body = !post ? "" : "body of \(id)" + (oversize ? String(repeating: "x", count: config.maxBodyBytes) : "")
                var text = "\(post ? "POST" : "GET") \(spelling.target) HTTP/1.1\r\nhost: sidecar\r\nx-correlation-id: \(id)\r\n"
                if stall {
                    text += "content-length: \(body.utf8.count)\r\n\r\n" + body.prefix(body.utf8.count / 2)
                    expected = .stalled
                } else if post && host.random.chance(0.5) {
                    // Chunked, in two chunks: the sidecar re-frames the body for the app.
                    let cut = body.utf8.count / 2
                    let (first, second) = (String(body.prefix(cut)), String(body.dropFirst(cut)))
                    text += "transfer-encoding: chunked\r\n\r\n"
                    text += String(first.utf8.count, radix: 16) + "\r\n" + first + "\r\n"
                    text += String(second.utf8.count, radix: 16) + "\r\n" + second + "\r\n0\r\n\r\n"
                    if oversize { expected = .tooLarge(declared: false) }
                } else {
                    if post { text += "content-length: \(body.utf8.count)\r\n" }
                    text += "\r\n" + body
                    if oversize { expected = .tooLarge(declared: true) }
                }
                bytes += Array(text.utf8)
                record(i, id: id, method: post ? "POST" : "GET", body: body, expected: expected, host)
                // A pair only behind a request that keeps the connection open whatever the answer.
                if case .app = expected, !post, slots[i].outstanding.count == 1, host.random.chance(config.pipelineShare) {
                    host.simulation.coverage.hit("ingress.pipelined")
                    pipelined += 1
                }
            }
        }
        guard slots[i].connected, let s = slots[i].stream else { return slots[i].unsent += bytes }
        // Half the time in two writes a moment apart, cut at a random byte: the sidecar reads
        // requests out of whatever pieces arrive.
        guard bytes.count > 1, host.random.next() % 2 == 0 else { return host.write(s, bytes) }
        for k in slots[i].outstanding.indices { slots[i].outstanding[k].writtenInPieces = true }
        let at = 1 + Int(host.random.next() % UInt64(bytes.count - 1))
        host.write(s, Array(bytes[..<at]))
        let t = host.setTimer(after: .microseconds(200))
        timers[t.rawValue] = .rest(i, s, Array(bytes[at...]))
    }

    private func nextId(_ host: SimHost) -> String {
        sequence += 1
        return "\(host.name).\(host.incarnation).\(sequence)"
    }

    private func record(_ i: Int, id: String, method: String, body: String, expected: IngressExpectation, allowOrigin: String?? = nil,
                        _ host: SimHost) {
        ledger.sent[id] = IngressLedger.Sent(client: address, method: method, body: body, expected: expected)
        let history = host.simulation.history.invoke(process: host.name, "ingress", id, at: host.now, deadline: host.now + config.deadline)
        let t = host.setTimer(after: config.deadline)
        timers[t.rawValue] = .deadline(i)
        slots[i].outstanding.append(Outstanding(id: id, expected: expected, history: history, deadline: t, allowOrigin: allowOrigin))
    }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .connected(let s):
            guard let i = slotOf[s] else { return }
            slots[i].connected = true
            if !slots[i].unsent.isEmpty { host.write(s, slots[i].unsent); slots[i].unsent = [] }
        case .connectFailed(let s, _):
            if let i = slotOf[s] { dropConnection(i, why: "connect failed", host) }
        case .closed(let s), .reset(let s):
            if let i = slotOf[s] { dropConnection(i, why: "connection closed", host) }
        case .data(let s, let bytes):
            guard let i = slotOf[s] else { return }
            guard !slots[i].outstanding.isEmpty else {
                host.simulation.violation("ingress.right-response", "\(host.name) got an answer to no request: \(String(decoding: bytes.prefix(80), as: UTF8.self))", host: host.id)
                return dropConnection(i, why: "unsolicited bytes", host)
            }
            var input = bytes
            while slotOf[s] != nil, let first = slots[i].outstanding.first {
                let step = slots[i].reader.read(input, method: .get)
                input = []
                switch step {
                case .needMore, .head(done: false):
                    return
                case .invalid(let v):
                    host.simulation.violation("ingress.right-response", "\(first.id): the sidecar's answer is malformed: \(v)", host: host.id)
                    return dropConnection(i, why: "malformed answer", host)
                case .head(done: true), .done:
                    answered(i, first, host)
                    if !slots[i].reader.hasLeftover { return }
                }
            }
            if slotOf[s] != nil, slots[i].reader.hasLeftover {
                host.simulation.violation("ingress.right-response", "\(host.name) got more answers than it sent requests", host: host.id)
                dropConnection(i, why: "unsolicited bytes", host)
            }
        default:
            break
        }
    }

    private func answered(_ i: Int, _ request: Outstanding, _ host: SimHost) {
        slots[i].outstanding.removeFirst()
        host.cancelTimer(request.deadline)
        timers[request.deadline.rawValue] = nil
        let status = slots[i].reader.status
        if case .some(let expected) = request.allowOrigin,
           let why = IngressChecks.cors(expected: expected, allowed: slots[i].reader.field("access-control-allow-origin"), for: request.id) {
            host.simulation.violation("ingress.cors", why, host: host.id)
        }
        if case .preflight(let origin?) = request.expected, status == 204,
           let why = IngressChecks.cors(expected: origin, allowed: slots[i].reader.field("access-control-allow-origin"), for: request.id) {
            host.simulation.violation("ingress.cors", why, host: host.id)
        }
        if case .tooLarge = request.expected, status == 413 { host.simulation.coverage.hit("ingress.body-too-large") }
        if case .stalled = request.expected, status == 408 { host.simulation.coverage.hit("ingress.body-stalled") }
        switch IngressChecks.answer(status: status, id: slots[i].reader.field("x-correlation-id"), for: request.id, expected: request.expected,
                                    writtenInPieces: request.writtenInPieces) {
        case .success(let ok):
            if ok, status == 200, let why = IngressChecks.relayedAnswer(body: String(decoding: slots[i].reader.bodyBytes, as: UTF8.self),
                                                                        fields: slots[i].reader.field, for: request.id) {
                host.simulation.violation("ingress.right-response", why, host: host.id)
            }
            host.simulation.history.complete(request.history, ok ? .ok("\(status)") : .failed("\(status)"), at: host.now)
        case .failure(let failure):
            host.simulation.violation("ingress.right-response", failure.message, host: host.id)
            host.simulation.history.complete(request.history, .failed("\(status)"), at: host.now)
        }
        let idle = slots[i].outstanding.isEmpty
        if slots[i].reader.field("connection")?.lowercased() == "close" {
            // The sidecar ends the connection after this answer: the next request goes on a new one.
            dropConnection(i, why: "connection closed after an answer", host)
        }
        if idle { think(i, host) }
    }

    /// Ends slot `i`'s connection: what it still waits for failed (a malformed request's answer was
    /// read before the sidecar closed, so only the system's failures are left).
    private func dropConnection(_ i: Int, why: String, _ host: SimHost) {
        guard let s = slots[i].stream else { return }
        slotOf[s] = nil
        host.close(s)
        let waiting = !slots[i].outstanding.isEmpty  // else the next request's think time already runs
        for request in slots[i].outstanding {
            host.cancelTimer(request.deadline)
            timers[request.deadline.rawValue] = nil
            host.simulation.history.complete(request.history, .failed(why), at: host.now)
        }
        slots[i] = Slot()
        if waiting { think(i, host) }
    }
}
