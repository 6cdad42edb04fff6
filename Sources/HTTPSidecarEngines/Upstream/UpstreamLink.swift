import HTTPSidecar
import MeshCore
import NIOCore

/// What an ``UpstreamLink`` tells its driver about the exchange under way.
public enum UpstreamLinkEvent {
    /// The answer's head (hop-by-hop fields still in it).
    case head(ScannedResponseHead)
    /// A piece of the answer's body.
    case body(ByteBuffer)
    /// The whole answer arrived. `reuse` says whether the connection may carry the next exchange
    /// (the driver puts it back in its pool) or must be closed.
    case end(reuse: Bool)
    /// The exchange failed and the connection must be closed. `requestSent` tells whether any byte
    /// of the request may have reached the peer: the fact that decides whether a request that is not
    /// idempotent may be tried again.
    case failed(TransportError, requestSent: Bool)
}

/// One keep-alive HTTP/1.1 connection to an upstream (an app, an egress endpoint, a token
/// endpoint), sans-IO, carrying one exchange at a time: the connect deadline, the response timeout
/// (for the head, then for every pause in the answer, and for every pause in a request body still
/// being sent), whether the request may have been sent, and whether the connection may be reused.
/// ``UpstreamConnection`` runs it in NIO; the simulated ingress sidecar and the simulated egress
/// sidecar run it over simulated streams. Drivers move bytes, keep one timer at ``deadline``, and do
/// what the events say: nothing here is decided twice.
///
/// Phases and their transitions:
/// - `connecting` → `idle` on ``connected(now:)``, or → `exchanging` there if an exchange was started
///   while connecting (its bytes wait in the driver); → `closed` when the connect deadline passes.
/// - `idle` → `exchanging` on ``start(_:timeout:now:emit:)``.
/// - `exchanging` → `idle` at an answer's end when the connection may be reused, else → `closed`;
///   → `closed` on a failure, a timeout, the peer's close, or ``abandon()``.
public struct UpstreamLink {
    public enum Phase: Equatable, Sendable {
        case connecting
        case idle
        case exchanging
        case closed
    }

    public private(set) var phase: Phase
    /// When the driver must call ``deadlinePassed(now:)``: the connect's end while connecting, the
    /// next progress of the exchange while exchanging, nil otherwise.
    public private(set) var deadline: MeshInstant?
    /// Whether the exchange under way has had its answer's head (a failure now breaks an answer
    /// already being relayed).
    public private(set) var answering = false

    private var codec = UpstreamCodec()
    /// Whether bytes written now leave for the peer: once connected on plain TCP; on TLS only after
    /// the handshake (until then the TLS layer holds them, and a failure proves they never left).
    private var secured = false
    private let tls: Bool
    /// Whether the connect finished (bytes written before wait in the driver until then).
    public private(set) var open = false
    /// Whether the exchange under way wrote any request byte.
    private var requestWritten = false
    private var requestEnded = false
    private var reusable = true
    private var timeout: Duration = .seconds(30)

    /// A link whose connection is being opened and must be open within `connectTimeout`.
    /// - Parameter tls: whether TLS runs on the connection (bytes leave only after its handshake).
    public init(tls: Bool, connectTimeout: Duration, now: MeshInstant) {
        self.tls = tls
        phase = .connecting
        deadline = now + connectTimeout
    }

    // ci/mutants: post-unsent-after-first-byte (the declaration below)
    /// Whether a request byte may have reached the peer in the exchange under way (or the last one).
    public var requestSent: Bool { requestWritten && secured }

    // MARK: The connection

    /// The connection is open. On plain TCP the request's bytes leave from now on; an exchange
    /// started while connecting gets its response timeout from now.
    public mutating func connected(now: MeshInstant) {
        guard !open, phase == .connecting || phase == .exchanging else { return }
        open = true
        if !tls { secured = true }
        if phase == .connecting {
            phase = .idle
            deadline = nil
        } else {
            deadline = now + timeout
        }
    }

    /// The TLS handshake finished: bytes written leave from now on.
    public mutating func handshakeCompleted() { secured = true }

    // MARK: The request

    /// Starts an exchange on an idle (or still connecting) connection: the head's bytes go to
    /// `emit`. The answer's head must come within `timeout`, and then every pause in it be shorter.
    public mutating func start(_ head: EncodedRequestHead, timeout: Duration, now: MeshInstant, emit: (ByteBuffer) -> Void) {
        guard phase == .connecting || phase == .idle else { return }
        phase = .exchanging
        requestWritten = false
        requestEnded = false
        answering = false
        self.timeout = timeout
        // While connecting, the connect deadline still runs; the response timeout starts at the connect.
        if open { deadline = now + timeout }
        write(.head(head.bytes, head.kind), emit: emit)
    }

    /// Sends a body part or the request's end. An upload that keeps moving keeps the exchange alive:
    /// the timeout counts from the last progress in either direction.
    public mutating func send(_ part: UpstreamRequestPart, now: MeshInstant, emit: (ByteBuffer) -> Void) {
        guard phase == .exchanging else { return }
        if case .end = part { requestEnded = true }
        if open { deadline = now + timeout }
        write(part, emit: emit)
    }

    private mutating func write(_ part: UpstreamRequestPart, emit: (ByteBuffer) -> Void) {
        requestWritten = true
        codec.encode(part, allocator: Self.allocator, emit: emit)
    }

    private static let allocator = ByteBufferAllocator()
    /// How a failure from bytes no request asked for begins its detail.
    public static let unsolicited = "bytes no request asked for"

    // MARK: The answer

    /// Bytes the peer sent; ``next(now:)`` reads the answer out of them.
    public mutating func received(_ bytes: ByteBuffer) { codec.received(bytes) }

    /// The next event in what was received, or nil when more bytes are needed. Bytes of an exchange
    /// given up, or after a failure, are never read.
    public mutating func next(now: MeshInstant) -> UpstreamLinkEvent? {
        guard phase == .exchanging else { return nil }
        let part: UpstreamResponsePart?
        do {
            part = try codec.nextPart()
        } catch {
            // A malformed answer, or bytes nobody asked for: nothing more on this connection is trusted.
            let what = error is HTTP1Violation ? "the answer is malformed" : Self.unsolicited
            return fail(TransportError(.protocolViolation, "\(what): \(error)"))
        }
        switch part {
        case nil:
            return nil
        case .head(let head)?:
            if !head.scan.keepAlive { reusable = false }
            answering = true
            deadline = now + timeout
            return .head(head)
        case .body(let chunk)?:
            deadline = now + timeout
            return .body(chunk)
        case .end?:
            return answerEnded()
        }
    }

    private mutating func answerEnded() -> UpstreamLinkEvent {
        // An answer before the whole request was sent (an early 413, say): the peer's reading state
        // is unknown. Bytes after the answer must never become the next request's answer.
        let reuse = reusable && requestEnded && codec.reusableAfterAnswer
        phase = reuse ? .idle : .closed
        deadline = nil
        return .end(reuse: reuse)
    }

    // MARK: Endings

    /// The peer closed the connection: that ends an answer delimited by the close; an exchange not
    /// finished otherwise failed with `error`.
    public mutating func peerClosed(_ error: TransportError = TransportError(.reset, "the upstream closed the connection")) -> UpstreamLinkEvent? {
        let exchanging = phase == .exchanging
        reusable = false
        if exchanging, case .end? = codec.endOfStream() { return answerEnded() }
        return fail(error)
    }

    /// The connection failed (a TLS or transport error): the exchange under way, or the connect, failed.
    public mutating func failed(_ error: TransportError) -> UpstreamLinkEvent? { fail(error) }

    /// Called when ``deadline`` has come: a connect or exchange that ran out of time fails (the driver
    /// closes the connection); else nil, and the driver waits for the new ``deadline``.
    public mutating func deadlinePassed(now: MeshInstant) -> UpstreamLinkEvent? {
        guard let deadline, deadline <= now else { return nil }
        switch phase {
        case .connecting:
            return fail(TransportError(.connectTimeout, "the connection was not open within the connect timeout"))
        case .exchanging where !open:
            return fail(TransportError(.connectTimeout, "the connection was not open within the connect timeout"))
        // ci/mutants: stall-never-timed-out (the next line)
        case .exchanging:
            return fail(TransportError(.responseTimeout, answering ? "the answer paused for longer than \(timeout)" : "no answer within \(timeout)"))
        default:
            self.deadline = nil
            return nil
        }
    }

    /// The exchange is given up (the client went away, or the request was refused midway): the
    /// driver closes the connection, since the peer may still be reading or writing a message.
    public mutating func abandon() {
        phase = .closed
        deadline = nil
    }

    private mutating func fail(_ error: TransportError) -> UpstreamLinkEvent? {
        let had = phase == .exchanging || phase == .connecting
        let wasExchanging = phase == .exchanging
        phase = .closed
        deadline = nil
        reusable = false
        guard had else { return nil }
        // Whether any request byte may have left, whatever the error's kind: a TLS error after the
        // handshake (a peer that read the request and closed without close_notify) is no proof that
        // the request went unread, so it counts as sent.
        return .failed(error, requestSent: wasExchanging && requestSent)
    }
}
