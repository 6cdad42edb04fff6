import HTTPSidecar
import HTTPSidecarEngines
import MeshCore
import MeshSimulator
import NIOCore
import SidecarAuth

/// One keep-alive connection from the simulated ingress sidecar to the app: its stream and the
/// production ``UpstreamCodec`` framing its requests and reading its answers, as
/// ``UpstreamConnection`` does for NIO.
final class SimAppConnection {
    let stream: StreamID
    var codec = UpstreamCodec()
    var connected = false
    /// Bytes written and not flushed yet.
    var unflushed: [UInt8] = []
    var requestEnded = false
    /// False once something makes the connection unfit for another request (an answer that ends
    /// with the close, or one that came before the whole request was sent).
    var reusable = true

    init(stream: StreamID) { self.stream = stream }
}

/// The simulator's driver of one ingress client connection: it runs the production
/// ``IngressConnection`` engine over simulated streams and does only what the engine asks, as the NIO
/// handler does. Like NIO, writes leave only when flushed, reads stop while the engine has paused
/// them (bytes that arrive meanwhile wait, in order), the app's answer has no gap longer than the
/// timeout the engine gave, and app connections are kept alive in the pod's pool between requests.
final class IngressSimConnection: IngressConnectionIO {
    private unowned let pod: IngressSidecarPod
    private unowned let host: SimHost
    let stream: StreamID
    /// The client's address.
    let client: String
    private(set) var engine: IngressConnection<IngressSimConnection>!
    /// The app connection of the exchange under way.
    private(set) var app: SimAppConnection?
    private var clientUnflushed: [UInt8] = []
    private var clientReadsPaused = false
    private var clientHeld: [[UInt8]] = []
    /// The app's answer must make progress within this long (see ``startApp(_:timeout:)``).
    private var appTimeout: Duration = .seconds(30)
    private var appDeadline: MeshInstant?
    private var appTimerPending = false
    private(set) var closed = false
    /// The token whose verdict is on its way (see ``verify(_:authorization:path:)``).
    private var verifying: (jwt: JWTAuthenticator, authorization: String?, path: String)?

    init(pod: IngressSidecarPod, host: SimHost, stream: StreamID, client: String, seed: UInt64) {
        self.pod = pod
        self.host = host
        self.stream = stream
        self.client = client
        engine = IngressConnection(io: self, scheme: "http", client: client, seed: seed)
        engine.opened()
    }

    // MARK: Events from the simulated network, on to the engine

    func clientData(_ bytes: [UInt8]) {
        guard !closed else { return }
        guard !clientReadsPaused else { return clientHeld.append(bytes) }
        engine.clientBytes(ByteBuffer(bytes: bytes))
        engine.clientReadComplete()
    }

    /// The client went away.
    func clientGone() {
        closed = true
        engine.clientClosed()
    }

    func appConnectedEvent(_ connection: SimAppConnection) {
        connection.connected = true
        guard app === connection else { return pod.closeApp(connection) }
        if !engine.appConnected() { abandonApp() }
    }

    func appConnectFailed(_ connection: SimAppConnection) {
        guard app === connection else { return }
        app = nil
        engine.appFailed(TransportError(.connectRefused, "connection refused or unreachable"))
    }

    func appData(_ bytes: [UInt8], on connection: SimAppConnection) {
        guard app === connection else { return }
        connection.codec.received(ByteBuffer(bytes: bytes))
        while app === connection {
            let part: UpstreamResponsePart?
            do {
                part = try connection.codec.nextPart()
            } catch {
                return appBroke(TransportError(.protocolViolation, "the app's answer is malformed: \(error)"))
            }
            guard let part else { break }
            appPart(part, connection)
        }
        if app === connection { engine.appReadComplete() }
    }

    private func appPart(_ part: UpstreamResponsePart, _ connection: SimAppConnection) {
        appDeadline = host.now + appTimeout
        switch part {
        case .head(let head):
            if !head.scan.keepAlive { connection.reusable = false }
            engine.appHead(head)
        case .body(let chunk):
            engine.appBody(chunk)
        case .end:
            // An answer before the whole request was sent: the app's reading state is unknown.
            if !connection.requestEnded { connection.reusable = false }
            // Bytes after the answer must never become the next request's answer.
            if !connection.codec.reusableAfterAnswer { connection.reusable = false }
            app = nil
            appDeadline = nil
            if connection.reusable { pod.release(connection) } else { pod.closeApp(connection) }
            engine.appEnd()
        }
    }

    /// The app closed its connection: that ends an answer delimited by the close; anything else
    /// unfinished failed.
    func appClosed(_ connection: SimAppConnection) {
        guard app === connection else { return }
        connection.reusable = false
        if let end = connection.codec.endOfStream() { return appPart(end, connection) }
        appBroke(TransportError(.reset, "the app closed the connection before answering"))
    }

    private func appBroke(_ error: TransportError) {
        guard let connection = app else { return }
        app = nil
        appDeadline = nil
        pod.closeApp(connection)
        engine.appFailed(error)
    }

    func timerFired(_ kind: IngressSidecarPod.TimerKind) {
        switch kind {
        case .wakeUp:
            engine.wakeUp()
        case .appDeadline:
            appTimerPending = false
            guard let deadline = appDeadline, app != nil else { return }
            if deadline <= host.now {
                appBroke(TransportError(.responseTimeout, "no answer (or a pause in it) for \(appTimeout)"))
            } else {
                armAppTimer(deadline)
            }
        case .verdict:
            guard let (jwt, authorization, path) = verifying else { return }
            verifying = nil
            // The authenticator's verdict without waiting: the test tokens' signatures were verified
            // before the run (``SimJWT``); their claims are checked now.
            guard let verdict = jwt.authenticateWithoutWaiting(authorization: authorization, path: path) else {
                return engine.verified(.failure(SimVerificationUnavailable()))
            }
            if case .success = verdict { host.simulation.coverage.hit("ingress.jwt-verified") } else { host.simulation.coverage.hit("ingress.jwt-refused") }
            engine.verified(.success(verdict))
        }
    }

    // MARK: IngressConnectionIO

    var now: MeshInstant { host.now }

    func currentPolicy() -> IngressPolicy { pod.policy }

    func writeToClient(_ bytes: IOData) {
        guard !closed, case .byteBuffer(let buffer) = bytes else { return }
        clientUnflushed += buffer.readableBytesView
    }

    func flushClient() {
        guard !closed, !clientUnflushed.isEmpty else { return }
        host.write(stream, clientUnflushed)
        clientUnflushed = []
    }

    func closeClient(afterWrites: Bool) {
        guard !closed else { return }
        if afterWrites { flushClient() }
        closed = true
        pod.clientClosed(self)
    }

    var clientIsWritable: Bool { true }

    func clientReads(paused: Bool) {
        clientReadsPaused = paused
        while !clientReadsPaused, !closed, !clientHeld.isEmpty {
            clientData(clientHeld.removeFirst())
        }
    }

    func wake(at instant: MeshInstant) {
        pod.setTimer(after: instant - host.now, .wakeUp, for: self)
    }

    func connectToApp() -> Bool {
        if let idle = pod.takeIdleApp(for: self) {
            idle.requestEnded = false
            app = idle
            return true
        }
        app = pod.connectApp(for: self)
        return false
    }

    func startApp(_ head: EncodedRequestHead, timeout: Duration) {
        guard let connection = app else { return }
        appTimeout = timeout
        appDeadline = host.now + timeout
        armAppTimer(host.now + timeout)
        write(.head(head.bytes, head.kind), to: connection)
    }

    func sendToApp(_ part: UpstreamRequestPart) {
        guard let connection = app else { return }
        appDeadline = host.now + appTimeout  // an upload that keeps moving keeps the exchange alive
        if case .end = part { connection.requestEnded = true }
        write(part, to: connection)
    }

    /// One timer per connection for the app's deadline, re-armed lazily: progress only moves the deadline.
    private func armAppTimer(_ deadline: MeshInstant) {
        guard !appTimerPending else { return }
        appTimerPending = true
        pod.setTimer(after: deadline - host.now, .appDeadline, for: self)
    }

    private func write(_ part: UpstreamRequestPart, to connection: SimAppConnection) {
        connection.codec.encode(part, allocator: pod.allocator) { connection.unflushed += $0.readableBytesView }
    }

    func flushApp() {
        guard let connection = app, !connection.unflushed.isEmpty else { return }
        host.write(connection.stream, connection.unflushed)
        connection.unflushed = []
    }

    func abandonApp() {
        guard let connection = app else { return }
        app = nil
        appDeadline = nil
        pod.closeApp(connection)
    }

    /// The engine pauses the app's answer only while the client is not writable, which a simulated
    /// stream never is: nothing to hold back.
    func appReads(paused: Bool) {}

    var appIsWritable: Bool { true }

    /// Every verdict comes later, as from a signature check off the loop: the request is held (its
    /// body parts kept) for a random 0.2-2 ms.
    func verify(_ jwt: JWTAuthenticator, authorization: String?, path: String) -> Result<VerifiedToken, AuthFailure>? {
        verifying = (jwt, authorization, path)
        pod.setTimer(after: .microseconds(200 + Int64(host.random.next() % 1800)), .verdict, for: self)
        return nil
    }

    func exchangeBegan() {}
    func exchangeFinished(_ exchange: IngressExchange, status: Int) {}
    func answeredAtHead(_ head: ScannedRequestHead, status: Int) {}

    func observe(_ event: IngressConnectionEvent) {
        pod.observe(event, from: self)
    }
}

/// A token whose signature was not verified before the run (``SimJWT``): the simulator cannot wait
/// for the check, so the verdict is this error (a 500, which the checks flag).
struct SimVerificationUnavailable: Error, CustomStringConvertible {
    var description: String { "the simulated ingress has no verdict for a token not verified before the run" }
}
