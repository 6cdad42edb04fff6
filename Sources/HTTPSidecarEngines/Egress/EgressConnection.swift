import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1

/// One app connection to the egress listener, sans-IO: run by the NIO handler (``EgressHandler``)
/// and by the simulated egress alike. It reads the app's requests (``ClientCodec``), routes each to a
/// service, keeps its body whole (a retry resends it), runs the request's ``EgressExchange`` (endpoint
/// choice, retries, backoff, budget, deadline, tokens) against the service's shared pool, sends the
/// attempts the exchange decides through its driver (``EgressConnectionIO``), and relays the answer
/// it settles on, streaming, or writes the refusal. The driver moves bytes and keeps timers only.
///
/// Requests are answered in order, one at a time; parts of the next ones wait in a queue, and
/// reading stops while it is long.
///
/// States (transitions in brackets):
/// - `.idle`: waiting for a head. [a head routed → `.reading`; refused → answered, `.idle` or `.closing`]
/// - `.reading`: the body is kept, up to the limit. [the end → `.forwarding`; over the limit → 413, `.closing`]
/// - `.forwarding`: the exchange runs; once it relays an answer, that answer streams to the app.
///   [answered → `.idle` (or `.closing`)]
/// - `.closing`: the connection ends after the current write; nothing more is read.
public final class EgressConnection {
    enum State {
        case idle
        case reading(ScannedRequestHead, ByteBuffer, EgressRouting, target: RequestTarget)
        case forwarding
        case closing
    }

    /// The request being forwarded: what every attempt sends, and where.
    struct Forwarding {
        var head: EgressRequestHead
        var body: ByteBuffer
        var service: any EgressService
        var keepAlive: Bool
        /// The HTTP version the app spoke (an HTTP/1.0 app gets no chunked framing).
        var version: HTTPVersion
    }

    /// One attempt of the request: its answer is awaited, or streaming to the app (a value: an
    /// attempt costs the engine no allocation).
    struct Attempt {
        let id: UInt64
        let started: MeshInstant
        /// The answer's head, kept while the exchange decides whether it is the app's.
        var head: ScannedResponseHead?
        /// The answer is being streamed to the app (no retry any more).
        var streaming = false
        /// The connection closes after the answer.
        var closeAfterAnswer = false

        init(id: UInt64, started: MeshInstant) {
            self.id = id
            self.started = started
        }
    }


    /// The driver, as an existential rather than a generic parameter: the engine is in its own
    /// module, where a generic engine is not specialized for its driver and looks up type metadata
    /// at run time on every event (an egress profile showed it at about 8% more CPU per request).
    unowned let io: any EgressConnectionIO
    var state = State.idle
    var codec = ClientCodec()
    let allocator = ByteBufferAllocator()
    var limits: EgressLimits
    /// The request's lifecycle and what the driver keeps of it; `serial` tells its events from stale ones.
    var exchange: EgressExchange?
    var forwarding: Forwarding?
    var serial: UInt64 = 0
    /// The attempt whose answer is awaited or streaming; events of any other are stale.
    var current: Attempt?
    var attempts: UInt64 = 0
    /// Parts of pipelined requests that arrived while one was being forwarded.
    var queued = PipelinedParts()
    /// Inside ``readParts()`` (a request answered at once must not start a nested read).
    var readingParts = false
    var draining = false
    var readsPaused = false
    /// Ids for the trace hop (a new span per request).
    var random: SeededRandom
    let faults: any FaultInjector

    /// A new app connection; `seed` seeds its trace ids, `faults` reaches the exchanges' fault sites.
    public init(io: any EgressConnectionIO, seed: UInt64, faults: any FaultInjector = InertFaults.shared) {
        self.io = io
        self.limits = io.currentLimits()
        self.random = SeededRandom(seed: seed)
        self.faults = faults
    }

    // MARK: Connection events

    /// The app's connection closed: the request under way, if any, is cancelled (the attempt in
    /// flight released in its pool, once; its connection closed).
    public func clientClosed() {
        cancelRequest()
        state = .closing
    }

    /// The app's connection failed, or what it sent broke the framing rules: answered with the
    /// violation's status when no answer is under way, and closed either way.
    public func failed(_ error: any Error) {
        let started: Bool
        switch state {
        case .idle, .reading: started = false
        case .forwarding, .closing: started = true
        }
        cancelRequest()
        state = .closing
        guard let refusal = ProtocolErrors.response(for: error), !started else { return io.closeClient(afterWrites: false) }
        writeOwnAnswer(refusal.status, refusal.headers + [("content-type", "application/json")], refusal.body(allocator: allocator), close: true, method: .GET)
    }

    /// Bytes the app sent: each request part in them is handled in order (or queued).
    public func clientBytes(_ bytes: ByteBuffer) {
        codec.received(bytes)
        readParts()
    }

    /// Reads request parts out of the bytes received until the codec needs more or the queue is
    /// full (the rest stay unread in the codec, and reading the app pauses, until the queue drains).
    func readParts() {
        guard !readingParts else { return }
        readingParts = true
        defer { readingParts = false }
        do {
            while !queued.isFull, let part = try codec.nextPart() {
                if queued.isEmpty && takesPartNow {
                    handle(part)
                } else {
                    queued.append(part)
                    drainQueue()
                }
            }
        } catch {
            failed(error)
        }
        if queued.isFull { pauseReads(true) }
    }

    /// The app's connection became writable (or stopped being): the answer is read only while the app takes it.
    public func clientWritabilityChanged(_ writable: Bool) {
        if let attempt = current { io.attemptReads(attempt.id, paused: !writable) }
    }

    func pauseReads(_ paused: Bool) {
        guard paused != readsPaused else { return }
        readsPaused = paused
        io.clientReads(paused: paused)
    }

    /// Whether ``handle(_:)`` acts on a part now (a request being forwarded holds the next ones).
    var takesPartNow: Bool {
        switch state {
        case .idle, .reading, .closing: return true  // `.closing` drops them
        case .forwarding: return false
        }
    }

    /// Feeds queued parts while the state takes them (once a request is answered, the next one's).
    func drainQueue() {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while takesPartNow, let part = queued.popFirst() { handle(part) }
        // Parts left unread while the queue was full come next (``readParts()`` feeds them here).
        if queued.isEmpty && takesPartNow { readParts() }
        if !queued.isFull { pauseReads(false) }
    }

    func handle(_ part: ClientRequestPart) {
        switch (part, state) {
        case (.head(let head), .idle):
            limits = io.currentLimits()
            // The same head checks as ingress (``RequestHeadCheck``).
            let framing: RequestFraming, target: RequestTarget
            switch RequestHeadCheck.check(head, maxHeaders: limits.maxHeaders, escaped: limits.escapedSeparators) {
            case .success(let passed): (framing, target) = (passed.framing, passed.target)
            case .failure(let refusal): return refuse(refusal, close: true)
            }
            let routing: EgressRouting
            switch io.route(head, path: target.path) {
            case .success(let r): routing = r
            case .failure(let e): return refuse(e, close: framing.hasBody || !head.scan.keepAlive)
            }
            if case .length(let length) = framing, length > limits.maxBodyBytes {
                return refuse(ErrorResponse(status: .payloadTooLarge, code: "body_too_large", message: "the request body exceeds \(limits.maxBodyBytes) bytes"), close: true)
            }
            state = .reading(head, allocator.buffer(capacity: 0), routing, target: target)
        case (.body(var chunk), .reading(let head, var body, let routing, let target)):
            guard body.readableBytes + chunk.readableBytes <= limits.maxBodyBytes else {
                return refuse(ErrorResponse(status: .payloadTooLarge, code: "body_too_large", message: "the request body exceeds \(limits.maxBodyBytes) bytes"), close: true)
            }
            state = .idle  // keeps `body` uniquely referenced while it grows
            body.writeBuffer(&chunk)
            state = .reading(head, body, routing, target: target)
        case (.end, .reading(let head, let body, let routing, let target)):
            state = .forwarding
            start(head, body, routing, target)
        default:
            break  // stray parts of a request already answered
        }
    }

    // MARK: Answers of the sidecar's own

    /// Refuses the request with an error of the sidecar's own (nothing reaches an upstream).
    func refuse(_ error: ErrorResponse, close: Bool) {
        writeOwnAnswer(error.status, error.headers + [("content-type", "application/json")], error.body(allocator: allocator), close: close, method: .GET)
        answered(close: close)
    }

    /// Writes one whole answer of the sidecar's own and flushes; closes after it when `close`.
    /// (Ingress has the same writer, by the same name.)
    func writeOwnAnswer(_ status: HTTPResponseStatus, _ headers: [(String, String)], _ body: ByteBuffer, close: Bool, method: HTTPMethod) {
        for part in ResponseWriter.parts(status: status, headers: headers, body: body, close: close, method: method) {
            codec.encode(part, allocator: allocator) { io.writeToClient($0) }
        }
        io.flushClient()
        if close { io.closeClient(afterWrites: true) }
    }

    /// The request is answered: the connection closes, or takes the next request (queued ones first).
    func answered(close: Bool) {
        if close {
            state = .closing
            return
        }
        // A refused head (with no body: else the connection closes) still has its end to come; in
        // `.idle` that end is dropped like any stray part.
        state = .idle
        drainQueue()
    }
}
