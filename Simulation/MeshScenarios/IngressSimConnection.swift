import HTTPSidecar
import HTTPSidecarEngines
import MeshCore
import MeshSimulator
import NIOCore
import SidecarAuth

/// One keep-alive connection from the simulated ingress sidecar to the app: its stream and the
/// production ``UpstreamLink`` framing its requests, reading its answers and keeping its deadlines,
/// as ``UpstreamConnection`` does for NIO.
final class SimAppConnection {
    let stream: StreamID
    var link: UpstreamLink
    /// Bytes written and not flushed yet (they wait for the connect, too).
    var unflushed: [UInt8] = []
    var connected = false

    init(stream: StreamID, link: UpstreamLink) {
        self.stream = stream
        self.link = link
    }
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
    private(set) var engine: IngressConnection!
    /// The app connection of the exchange under way.
    private(set) var app: SimAppConnection?
    private var clientUnflushed: [UInt8] = []
    private var clientReadsPaused = false
    private var clientHeld: [[UInt8]] = []
    /// The instant a timer for the app link's deadline is set for (progress only moves the deadline
    /// later, so it is re-armed lazily; a deadline that moves earlier, at the connect, gets a new one).
    private var appTimerAt: MeshInstant?
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
        connection.link.connected(now: host.now)
        armAppTimer()
        if !engine.appConnected() { abandonApp() }
        flushApp()
    }

    func appConnectFailed(_ connection: SimAppConnection) {
        guard app === connection else { return }
        appEvent(connection.link.failed(TransportError(.connectRefused, "connection refused or unreachable")), connection)
    }

    func appData(_ bytes: [UInt8], on connection: SimAppConnection) {
        guard app === connection else { return }
        connection.link.received(ByteBuffer(bytes: bytes))
        while app === connection, let event = connection.link.next(now: host.now) { appEvent(event, connection) }
        if app === connection { engine.appReadComplete() }
    }

    /// What the link made of the app's bytes, its close or its silence, on to the engine; at the
    /// answer's end the connection goes back to the pool or is closed, as the link says.
    private func appEvent(_ event: UpstreamLinkEvent?, _ connection: SimAppConnection) {
        guard let event, app === connection else { return }
        switch event {
        case .head(let head):
            engine.appHead(head)
        case .body(let chunk):
            engine.appBody(chunk)
        case .end(let reuse):
            app = nil
            if reuse { pod.release(connection) } else { pod.closeApp(connection) }
            engine.appEnd()
        case .failed(let error, _):
            app = nil
            pod.closeApp(connection, abortive: true)
            engine.appFailed(error)
        }
    }

    /// The app closed its connection: that ends an answer delimited by the close; anything else
    /// unfinished failed.
    func appClosed(_ connection: SimAppConnection) {
        guard app === connection else { return }
        appEvent(connection.link.peerClosed(TransportError(.reset, "the app closed the connection before answering")), connection)
    }

    func timerFired(_ kind: IngressSidecarPod.TimerKind) {
        switch kind {
        case .wakeUp:
            engine.wakeUp()
        case .appDeadline(let at):
            guard appTimerAt == at else { return }  // replaced by an earlier one
            appTimerAt = nil
            guard let connection = app else { return }
            let answering = connection.link.answering
            if let event = connection.link.deadlinePassed(now: host.now) {
                if answering { host.simulation.coverage.hit("ingress.app-stall-cut") }
                appEvent(event, connection)
            } else {
                armAppTimer()
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
            app = idle
            return true
        }
        app = pod.connectApp(for: self)
        armAppTimer()
        return false
    }

    func startApp(_ head: EncodedRequestHead, timeout: Duration) {
        guard let connection = app else { return }
        connection.link.start(head, timeout: timeout, now: host.now) { connection.unflushed += $0.readableBytesView }
        armAppTimer()
    }

    func sendToApp(_ part: UpstreamRequestPart) {
        guard let connection = app else { return }
        connection.link.send(part, now: host.now) { connection.unflushed += $0.readableBytesView }
    }

    /// One timer per connection for the app link's deadline, re-armed lazily: progress only moves
    /// the deadline.
    private func armAppTimer() {
        guard let deadline = app?.link.deadline else { return }
        if let at = appTimerAt, at <= deadline { return }
        appTimerAt = deadline
        pod.setTimer(after: deadline - host.now, .appDeadline(deadline), for: self)
    }

    func flushApp() {
        guard let connection = app, connection.connected, !connection.unflushed.isEmpty else { return }
        host.write(connection.stream, connection.unflushed)
        connection.unflushed = []
    }

    func abandonApp() {
        guard let connection = app else { return }
        app = nil
        connection.link.abandon()
        pod.closeApp(connection, abortive: true)
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
