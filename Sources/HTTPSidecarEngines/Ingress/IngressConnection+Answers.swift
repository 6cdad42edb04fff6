import HTTPSidecar
import MeshCore
import NIOCore
import NIOHTTP1

/// The engine's app side and answers: taking an app connection, relaying the app's answer as it
/// streams back, answering without the app, and closing the books on each exchange.
extension IngressConnection {
    // MARK: Forwarding

    /// Takes an app connection (at once when one is ready) and starts streaming the held request.
    func connect() {
        continueIfAsked()
        if io.connectToApp() { startStreaming() }
    }

    /// `100 Continue` for a client that waits for it (`Expect: 100-continue`), sent only once every
    /// check, JWT included, has passed: a refused client never gets to send its body.
    func continueIfAsked() {
        guard case .held(let ex, _) = state, ex.head.scan.expectsContinue, !ex.requestEnded, ex.bodyBytes == 0 else { return }
        codec.encode(.head(HTTPResponseHead(version: .http1_1, status: .continue)), allocator: allocator) { io.writeToClient($0) }
        io.flushClient()
    }

    /// A connection to the app is ready (after ``IngressConnectionIO/connectToApp()`` said false).
    /// False when the request no longer wants it (the client left meanwhile): the driver gives it up.
    public func appConnected() -> Bool {
        guard case .held = state else { return false }
        startStreaming()
        return true
    }

    func startStreaming() {
        guard case .held(let ex, let parts) = state else { return io.abandonApp() }
        state = .streaming(ex)
        io.startApp(ex.upstreamHead, timeout: config.upstreamTimeout)
        // ci/mutants: held-part-dropped (the next line)
        for part in parts { forward(part) }
        if !ex.requestEnded {
            // The head goes out now if the body may be slow to come (or at the end of this read burst).
            if inReadBurst { appNeedsFlush = true } else { io.flushApp() }
        }
        if !io.clientIsWritable { io.appReads(paused: true) }
    }

    // MARK: The app's answer

    /// The head of the app's answer: relayed with the response rules and the sidecar's fields.
    public func appHead(_ response: ScannedResponseHead) {
        guard case .streaming(let ex) = state else { return }
        let (head, closeAfter) = ProxyHeaders.relayedHead(scanned: response, rules: ex.responseRules, setting: ex.responseHeaders,
                                                          requestVersion: ex.head.version, keepAlive: ex.keepAlive)
        ex.closeAfterAnswer = closeAfter
        ex.responseStarted = true
        ex.status = response.status
        codec.encode(.relayed(consume head), allocator: allocator) { io.writeToClient($0) }
    }

    public func appBody(_ chunk: ByteBuffer) {
        guard case .streaming = state else { return }
        codec.encode(.body(.byteBuffer(chunk)), allocator: allocator) { io.writeToClient($0) }
    }

    /// The end of a read burst from the app: what was relayed in it leaves together.
    public func appReadComplete() {
        io.flushClient()
    }

    /// The app's answer is complete (its connection has gone back to the pool, or closed).
    public func appEnd() {
        guard case .streaming(let ex) = state else { return }
        finished(ex, status: ex.status)
        codec.encode(.end, allocator: allocator) { io.writeToClient($0) }
        io.flushClient()
        // The app answered before the request was complete: the rest is not read; the connection closes.
        if !ex.requestEnded || ex.closeAfterAnswer {
            state = .closing
            io.closeClient(afterWrites: true)
        } else {
            requestDone()
        }
    }

    /// The app did not answer (refused the connect, reset, timed out, sent a malformed answer): 502
    /// or 504 when no answer had started, else the client's connection is broken off.
    public func appFailed(_ error: TransportError) {
        let ex: IngressExchange
        switch state {
        case .streaming(let e), .held(let e, _): ex = e
        default: return
        }
        io.observe(.appFailed(timedOut: error.kind == .responseTimeout))
        // ci/mutants: broken-answer-patched (the next line)
        if ex.responseStarted {
            finished(ex, status: ex.status)
            state = .closing
            io.closeClient(afterWrites: false)  // the answer broke off midway: the client must see it broken
            return
        }
        answerInsteadOfApp(ex, IngressAdmission.appFailure(timedOut: error.kind == .responseTimeout, "\(error)", headers: ex.responseHeaders))
    }

    /// The app connection stopped taking writes (or took them again): reading the client follows.
    public func appWritabilityChanged(_ writable: Bool) {
        if writable { resumeReads() } else { pauseReads() }
    }

    // MARK: Answers

    /// Answers an admitted request without (or instead of) the app: 401/403/429 after JWT, 502/504.
    func answerInsteadOfApp(_ ex: IngressExchange, _ error: ErrorResponse) {
        finished(ex, status: Int(error.status.code))
        let close = !ex.keepAlive || !ex.requestEnded
        // The state leaves `.held` before the write: a driver that reports the close at once must
        // not find the exchange still open (it would be counted a second time).
        if close { state = .closing }
        writeOwnAnswer(status: error.status, headers: error.headers + [("content-type", "application/json")],
              body: error.body(allocator: allocator), close: close, method: ex.head.method.nio)
        if !close { requestDone() }
    }

    /// Refuses a request at its head (IP, CORS, rate limit, declared size, a preflight's answer):
    /// nothing reaches the app.
    func refuse(_ head: ScannedRequestHead, status: HTTPResponseStatus, headers: [(String, String)], body: ByteBuffer?, close: Bool) {
        io.answeredAtHead(head, status: Int(status.code))
        writeOwnAnswer(status: status, headers: headers, body: body, close: close, method: head.method.nio)
        // Kept open only for a request without a body: its end is still to come.
        state = close ? .closing : .draining
    }

    /// Answers with an error and closes (the request broke a limit or a deadline).
    func refuseAndClose(_ error: ErrorResponse) {
        writeOwnAnswer(status: error.status, headers: error.headers + [("content-type", "application/json")],
              body: error.body(allocator: allocator), close: true, method: .GET)
        state = .closing
    }

    /// Writes one whole answer of the sidecar's own and flushes; closes after it when `close`.
    func writeOwnAnswer(status: HTTPResponseStatus, headers: [(String, String)], body: ByteBuffer?, close: Bool, method: HTTPMethod) {
        for part in ResponseWriter.parts(status: status, headers: headers, body: body, close: close, method: method) {
            codec.encode(part, allocator: allocator) { io.writeToClient($0) }
        }
        io.flushClient()
        if close { io.closeClient(afterWrites: true) }
        blockReadsUntilClientReads()
    }

    /// The exchange is over and the connection stays: back to idle, then the queued parts of the
    /// next request (as many as the state takes without queueing them again, so order is kept).
    func requestDone() {
        state = .idle
        bodyRateDeadline = nil
        armHeaderDeadline()
        drainQueued()
    }

    /// Feeds queued parts while the state takes them and the client reads our answers.
    func drainQueued() {
        // ci/mutants: pipelined-request-lost (the next line)
        while !clientBlocked, queued.first != nil, takesPartNow, let part = queued.popFirst() {
            handle(part)
        }
        // Parts left unread while the queue was full come next.
        if queued.isEmpty && !clientBlocked { readParts() }
        if !queued.isFull { resumeReads() }
    }

    /// Whether ``handle(_:)`` would act on a part now rather than queue it.
    var takesPartNow: Bool {
        switch state {
        case .idle, .draining: return true
        case .held(let ex, _), .streaming(let ex): return !ex.requestEnded
        case .closing: return false
        }
    }

    func finished(_ ex: IngressExchange, status: Int) {
        // Once per exchange, whatever path ends it: the in-flight gauge and the drain count on it.
        guard !ex.isFinished else { return }
        ex.isFinished = true
        io.exchangeFinished(ex, status: status)
    }
}
