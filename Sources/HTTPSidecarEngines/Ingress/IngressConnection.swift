import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1
import SidecarAuth

/// One client connection of the ingress, sans-IO: the whole lifecycle of its requests, run by the
/// NIO handler (``IngressHandler``) and by the simulated ingress sidecar alike. It takes events (the
/// client's bytes, the app's answer parts, connects, verdicts, wake-ups, writability, closes) and acts
/// through its driver (``IngressConnectionIO``), which only moves bytes and keeps a timer.
///
/// It owns: framing both ways (``ClientCodec``), the decision at the head (``IngressAdmission``), JWT
/// and the rate limit after it, `100-continue`, the body limit, the header and body deadline, the
/// order of pipelined requests and reading backpressure both ways, relaying the app's answer, the
/// sidecar's own answers (refusals, 408/413, 502/504, framing errors), and when the connection closes.
///
/// Bodies are not buffered whole: a part goes on as it arrives. Only JWT verification and the
/// connect hold a request back (parts that arrive meanwhile are kept, up to the body limit).
/// Requests are answered in order, one at a time; parts of a pipelined next request wait in a queue,
/// and reading stops while it is long.
///
/// States (transitions in brackets):
/// - `.idle`: waiting for a head; the header deadline cuts off clients that send heads too slowly.
///   [head admitted → `.held`; head refused → `.draining` (or `.closing` when the answer closes)]
/// - `.held`: the head waits for the JWT verdict or a connection to the app; body parts are kept.
///   [app connection ready → `.streaming`; refused after JWT, or no app → answered, then `.idle`/`.closing`]
/// - `.streaming`: the app has the head; body parts go straight on; the answer streams back.
///   [answer ended → `.idle` (or `.closing`); app failed → answered, then `.idle`/`.closing`]
/// - `.draining`: answered without the app at the head; the request's end is awaited. [end → `.idle`]
/// - `.closing`: the connection ends after the current write; nothing more is read.
public final class IngressConnection {
    enum State {
        case idle
        case held(IngressExchange, parts: [ClientRequestPart])
        case streaming(IngressExchange)
        case draining
        case closing
    }

    /// The driver, as an existential rather than a generic parameter: the engine is in its own
    /// module, where a generic engine is not specialized for its driver and looks up type metadata
    /// at run time on every event (an egress profile showed it at about 8% more CPU per request).
    unowned let io: any IngressConnectionIO
    /// The policy of the request being handled (read afresh at each head).
    var policy: IngressPolicy
    /// `http` or `https`: the listener's scheme, for `X-Forwarded-Proto`.
    let scheme: String
    /// The client's address (for the IP filter, the rate limit's key and forwarding headers).
    let client: String?
    var state = State.idle
    var codec = ClientCodec()
    let allocator = ByteBufferAllocator()
    /// Parts of pipelined requests that arrived while one was being answered.
    var queued = PipelinedParts()
    /// Inside ``readParts()`` (a request answered at once must not start a nested read).
    var readingParts = false
    /// Reading the client stops while the queue is long or the app is not taking the body…
    var readsPaused = false
    /// …and while the client is not reading the sidecar's own answers (see ``blockReadsUntilClientReads()``).
    var clientBlocked = false
    /// What the driver was last told about reading the client.
    var readsReportedPaused = false
    /// Inside a read burst from the client: app writes are flushed once, at its end.
    var inReadBurst = false
    var appNeedsFlush = false
    /// The header (and body) deadline, and whether a wake-up is pending for it (re-armed lazily:
    /// progress only moves the deadline).
    var headerDeadline: MeshInstant?
    /// The body's minimum-rate deadline (see ``IngressConfig/minBodyRate``): nil outside a body.
    var bodyRateDeadline: MeshInstant?
    var wakeUpPending = false
    /// Ids (correlation, trace, span) come from a fast generator seeded once per connection.
    var random: SeededRandom

    /// A new client connection from `client` on a listener of `scheme`; `seed` seeds its ids.
    public init(io: any IngressConnectionIO, scheme: String, client: String?, seed: UInt64) {
        self.io = io
        self.scheme = scheme
        self.client = client
        self.policy = io.currentPolicy()
        self.random = SeededRandom(seed: seed)
    }

    var config: IngressConfig { policy.config }

    // MARK: Connection events

    /// The connection is up: the first head must come within the header timeout.
    public func opened() {
        armHeaderDeadline()
    }

    /// The client's connection closed (or failed): the exchange under way, if any, is given up.
    public func clientClosed() {
        abortExchange()
    }

    /// Ends the exchange under way, if any, because the client connection failed or went away or
    /// the request broke a limit: the app connection is given up (it may be mid-message) and the
    /// request counted once (499 when no answer had started). The state becomes `.closing`.
    func abortExchange(answer: Int = 499) {
        switch state {
        case .streaming(let ex):
            io.abandonApp()
            finished(ex, status: ex.responseStarted ? ex.status : answer)
        case .held(let ex, _):
            finished(ex, status: answer)
        default:
            break
        }
        state = .closing
    }

    /// The client's connection failed, or what it sent broke the framing rules (malformed framing,
    /// a smuggling attempt, an oversized head): answered with the violation's status when no answer
    /// is under way, and the connection closed either way.
    public func failed(_ error: any Error) {
        var started = false
        switch state {
        case .streaming(let ex): started = ex.responseStarted
        case .closing, .draining: started = true
        default: break
        }
        let refusal = ProtocolErrors.response(for: error)
        if refusal != nil { io.observe(.framingRefused) }
        abortExchange(answer: refusal.map { Int($0.status.code) } ?? 499)
        guard let refusal, !started else { return io.closeClient(afterWrites: false) }
        writeOwnAnswer(status: refusal.status, headers: [("content-type", "application/json")],
              body: refusal.body(allocator: allocator), close: true, method: .GET)
    }

    // MARK: Reading the client

    /// Bytes the client sent: each request part in them is handled in order (or queued behind the
    /// request being answered).
    public func clientBytes(_ bytes: ByteBuffer) {
        inReadBurst = true
        codec.received(bytes)
        readParts()
    }

    /// Reads request parts out of the bytes received until the codec needs more or the queue is
    /// full (the rest stay unread in the codec, and reading the client pauses, until the queue drains).
    func readParts() {
        // ci/mutants: ingress-reentered (the next line)
        guard !readingParts else { return }
        readingParts = true
        defer { readingParts = false }
        do {
            while !queued.isFull, let part = try codec.nextPart() {
                // The client is not reading our answers: what is still arriving is kept (bounded by
                // the queue), not answered, until it reads again.
                if clientBlocked { enqueue(part) } else { handle(part) }
            }
        } catch {
            failed(error)
        }
        if queued.isFull { pauseReads() }
    }

    /// The end of a read burst: the body parts written to the app in it leave together.
    public func clientReadComplete() {
        inReadBurst = false
        if appNeedsFlush, case .streaming = state { io.flushApp() }
        appNeedsFlush = false
    }

    func handle(_ part: ClientRequestPart) {
        switch state {
        case .idle:
            guard case .head(let head) = part else { return }  // stray parts of a request already answered
            headerDeadline = nil
            policy = io.currentPolicy()
            begin(head)
        case .held(let ex, var parts):
            if ex.requestEnded { return enqueue(part) }
            guard admitBody(part, ex) else { return }
            bodyProgress(ex, part)
            state = .idle  // keeps `parts` uniquely referenced while it grows
            parts.append(part)
            state = .held(ex, parts: parts)
        case .streaming(let ex):
            if ex.requestEnded { return enqueue(part) }
            guard admitBody(part, ex) else { return }
            bodyProgress(ex, part)
            forward(part)
        case .draining:
            if case .end = part { requestDone() }
        case .closing:
            break
        }
    }

    /// Counts body bytes against the limit; answers 413 (and closes) when over it.
    func admitBody(_ part: ClientRequestPart, _ ex: IngressExchange) -> Bool {
        switch part {
        case .body(let chunk):
            ex.bodyBytes += chunk.readableBytes
            // ci/mutants: body-limit-off (the next line)
            if ex.bodyBytes > config.maxBodyBytes {
                let started = ex.responseStarted
                abortExchange(answer: 413)  // the app connection is given up; the request counted once
                if started {
                    io.closeClient(afterWrites: false)
                } else {
                    refuseAndClose(ErrorResponse(status: .payloadTooLarge, code: "body_too_large",
                                         message: "the request body exceeds \(config.maxBodyBytes) bytes", headers: ex.responseHeaders))
                }
                return false
            }
        case .end:
            ex.requestEnded = true
        case .head:
            break
        }
        return true
    }

    /// A body part (or the end) arrived: the body deadlines move on (the rate one by the part's
    /// share), or end with the body.
    func bodyProgress(_ ex: IngressExchange, _ part: ClientRequestPart) {
        if ex.requestEnded {
            headerDeadline = nil
            bodyRateDeadline = nil
            return
        }
        if case .body(let chunk) = part, let rateDeadline = bodyRateDeadline, config.minBodyRate > 0 {
            bodyRateDeadline = rateDeadline + .nanoseconds(Int64(chunk.readableBytes) * 1_000_000_000 / Int64(config.minBodyRate))
        }
        // ci/mutants: body-deadline-off (the next line)
        armHeaderDeadline()  // the next part, too, must come in time
    }

    /// A body is expected after an admitted head: it must start within the header timeout, and
    /// then keep coming (no pause longer than the header timeout, no average below the minimum rate).
    func expectBody() {
        bodyRateDeadline = io.now + config.headerTimeout
        armHeaderDeadline()
    }

    func enqueue(_ part: ClientRequestPart) {
        queued.append(part)
        if queued.isFull { pauseReads() }
    }

    /// A body part (or the end) on to the app.
    func forward(_ part: ClientRequestPart) {
        switch part {
        case .body(let chunk):
            io.sendToApp(.body(chunk))
            if inReadBurst { appNeedsFlush = true } else { io.flushApp() }
            if !io.appIsWritable { pauseReads() }  // the app reads slowly: stop reading the client
        case .end:
            io.sendToApp(.end)
            io.flushApp()
            appNeedsFlush = false
        case .head:
            break
        }
    }

    // MARK: Reading backpressure

    func pauseReads() {
        readsPaused = true
        reportReads()
    }

    func resumeReads() {
        readsPaused = false
        reportReads()
    }

    /// Answers the sidecar wrote itself (rejections, preflights) wait in the client's outbound
    /// buffer: while it is over the high-water mark, no more requests are read, so a pipelining
    /// client that never reads cannot grow the sidecar's memory.
    func blockReadsUntilClientReads() {
        if !io.clientIsWritable {
            clientBlocked = true
            reportReads()
        }
    }

    func reportReads() {
        let paused = readsPaused || clientBlocked
        if paused != readsReportedPaused {
            readsReportedPaused = paused
            io.clientReads(paused: paused)
        }
    }

    /// The client's connection became writable (or stopped being): the app's answer is read only
    /// while the client takes it, and reading requests resumes once the client reads our answers.
    public func clientWritabilityChanged(_ writable: Bool) {
        if case .streaming = state { io.appReads(paused: !writable) }
        if writable && clientBlocked {
            clientBlocked = false
            drainQueued()
            reportReads()
        }
    }

    // MARK: Header deadline

    /// Arms the deadline for the next head or body part: the header timeout from now, or the body's
    /// rate deadline when that comes first.
    func armHeaderDeadline() {
        var deadline = io.now + config.headerTimeout
        // ci/mutants: body-rate-off (the next line)
        if let rateDeadline = bodyRateDeadline, config.minBodyRate > 0 { deadline = min(deadline, rateDeadline) }
        headerDeadline = deadline
        if !wakeUpPending {
            wakeUpPending = true
            io.wake(at: deadline)
        }
    }

    /// The wake-up asked for with ``IngressConnectionIO/wake(at:)``. The client must send its head,
    /// and then each part of its body, within the header timeout, and the whole body at the minimum
    /// rate: a client that stalls or trickles mid-upload is cut off (408) instead of holding a slot
    /// and an app connection.
    public func wakeUp() {
        wakeUpPending = false
        guard let deadline = headerDeadline else { return }
        let waitingForBody: IngressExchange?
        switch state {
        case .idle: waitingForBody = nil
        case .held(let ex, _) where !ex.requestEnded, .streaming(let ex) where !ex.requestEnded: waitingForBody = ex
        default: return
        }
        guard deadline <= io.now else {
            wakeUpPending = true
            return io.wake(at: deadline)
        }
        if waitingForBody != nil, readsPaused {
            // The sidecar is holding the client back (the app reads slowly): not the client's delay.
            let fresh = io.now + config.headerTimeout
            bodyRateDeadline = bodyRateDeadline.map { max($0, fresh) }
            return armHeaderDeadline()
        }
        guard let ex = waitingForBody else {
            // No head in time: no answer, just the close.
            state = .closing
            return io.closeClient(afterWrites: false)
        }
        let started = ex.responseStarted
        let tooSlow = bodyRateDeadline.map { $0 <= io.now } ?? false
        abortExchange(answer: 408)
        if started { return io.closeClient(afterWrites: false) }
        refuseAndClose(ErrorResponse(status: .requestTimeout, code: "body_timeout",
                             message: tooSlow ? "the request body arrived slower than \(config.minBodyRate) bytes per second"
                                              : "the request body stalled for \(config.headerTimeout)", headers: ex.responseHeaders))
    }
}
