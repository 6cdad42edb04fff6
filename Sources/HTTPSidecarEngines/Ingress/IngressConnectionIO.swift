import HTTPSidecar
import MeshCore
import NIOCore
import SidecarAuth

/// What an ``IngressConnection`` asks of the driver that runs it: move bytes on the client's
/// connection and on one app connection at a time, keep one wake-up timer, run a JWT signature
/// check off the loop, and keep the books. The driver decides nothing; the NIO handler and the
/// simulated ingress sidecar are the two drivers.
///
/// Calls come on the connection's thread of control (the event loop; the simulator's step). The
/// engine never expects a call to reenter it: anything that completes later (a connect, a
/// verification, a timer) comes back as an event on the engine.
public protocol IngressConnectionIO: AnyObject {
    /// The time now, on the clock deadlines are kept by.
    var now: MeshInstant { get }
    /// The policy for the next request: read afresh at each head, so a reload applies from the next request.
    func currentPolicy() -> IngressPolicy

    // MARK: The client's connection

    /// Writes bytes of an answer (they leave at the next ``flushClient()``).
    func writeToClient(_ bytes: IOData)
    func flushClient()
    /// Closes the client's connection: once what was written has left when `afterWrites`, else at once.
    func closeClient(afterWrites: Bool)
    /// Whether the client's connection takes more writes without queueing past its high-water mark.
    var clientIsWritable: Bool { get }
    /// Stop (or resume) reading the client's connection.
    func clientReads(paused: Bool)
    /// Call ``IngressConnection/wakeUp()`` at `instant` (the engine keeps at most one wake-up pending).
    func wake(at instant: MeshInstant)

    // MARK: The app

    /// Gets a connection to the app: true when one is ready now; else ``IngressConnection/appConnected()``
    /// or ``IngressConnection/appFailed(_:)`` follows.
    func connectToApp() -> Bool
    /// Starts the request on the app connection with its head; the answer comes back as
    /// ``IngressConnection/appHead(_:)``, ``IngressConnection/appBody(_:)``, ``IngressConnection/appEnd()``
    /// or ``IngressConnection/appFailed(_:)``, with no gap longer than `timeout` before (or within) it.
    func startApp(_ head: EncodedRequestHead, timeout: Duration)
    /// A body part (or the end) of the request for the app; a body part leaves at the next ``flushApp()``.
    func sendToApp(_ part: UpstreamRequestPart)
    func flushApp()
    /// Gives the app connection up (it may be mid-message, so it is closed, not reused).
    func abandonApp()
    /// Stop (or resume) reading the app's answer.
    func appReads(paused: Bool)
    /// Whether the app connection takes more writes.
    var appIsWritable: Bool { get }

    // MARK: Off the loop

    /// The verdict on a request's bearer token: now, or nil and later as ``IngressConnection/verified(_:)``
    /// (when the signature must be checked off the loop). How long a verdict takes is the driver's.
    func verify(_ jwt: JWTAuthenticator, authorization: String?, path: String) -> Result<VerifiedToken, AuthFailure>?

    // MARK: The books

    /// A request was admitted and is in flight (until ``exchangeFinished(_:status:)``).
    func exchangeBegan()
    /// An admitted request was answered (or given up, with status 499 or the error's).
    func exchangeFinished(_ exchange: IngressExchange, status: Int)
    /// A request was answered at its head, without the app (a refusal, a preflight): counted and
    /// logged like any other.
    func answeredAtHead(_ head: ScannedRequestHead, status: Int)
    /// What happened, for a driver that watches (the simulator's coverage); nothing by default.
    func observe(_ event: IngressConnectionEvent)
}

extension IngressConnectionIO {
    public func observe(_ event: IngressConnectionEvent) {}
}

/// Decisions an ``IngressConnection`` reports through ``IngressConnectionIO/observe(_:)``.
public enum IngressConnectionEvent {
    /// Refused at the head with this error code (nothing reached the app).
    case refused(code: String)
    /// A CORS preflight, answered by the sidecar.
    case preflight
    /// Admitted at the head: on to JWT (when configured) and the app, with the path policy matched.
    case admitted(path: String)
    /// The framing scanner refused what the client sent.
    case framingRefused
    /// The app did not answer (in time, when `timedOut`).
    case appFailed(timedOut: Bool)
}

/// One request the ingress admitted, from its head to its answer (a class: the engine's state enum
/// carries it without copying its fields).
public final class IngressExchange {
    public let head: ScannedRequestHead
    let upstreamHead: EncodedRequestHead
    public let correlationId: String
    public let traceId: String
    /// Headers the answer gets (correlation id, CORS, rate-limit state).
    var responseHeaders: [(String, String)]
    public let started: MeshInstant
    /// Body bytes read from the client so far.
    public internal(set) var bodyBytes = 0
    /// The client's request was read to its end.
    var requestEnded = false
    /// The answer's head went to the client: a failure now breaks the answer off.
    var responseStarted = false
    /// It was counted as finished (in-flight gauge, metrics, access log): only once.
    var isFinished = false
    var status = 0
    let keepAlive: Bool
    /// The route it matched (nil: the default chain).
    public let route: IngressRoute?
    /// The normalized path policy was matched on (and the app was sent).
    public let path: String
    let responseRules: HeaderRules
    let afterJWT: [IngressMiddleware]
    /// The connection closes after the answer (the client asked, or an HTTP/1.0 client gets an
    /// answer without a length).
    var closeAfterAnswer = false

    init(head: ScannedRequestHead, admitted: IngressAdmission.Admitted, started: MeshInstant) {
        self.head = head
        upstreamHead = admitted.upstreamHead
        correlationId = admitted.correlationId
        traceId = admitted.traceId
        responseHeaders = admitted.responseHeaders
        self.started = started
        keepAlive = admitted.keepAlive
        route = admitted.route
        path = admitted.path
        responseRules = admitted.responseRules
        afterJWT = admitted.afterJWT
    }
}
