import HTTPSidecar
import MeshCore
import NIOCore

/// A service the egress sends requests to, as the connection engine sees it: its settings, header
/// rules, and its shared decision state (the ``UpstreamPool`` all connections' requests share).
public protocol EgressService: AnyObject {
    /// The exchange settings of a request to it (its name, deadline, attempt timeout, whether it uses a token).
    var exchangeSettings: EgressExchange.Settings { get }
    /// Header edits on the way to the service and back.
    var requestRules: HeaderRules { get }
    var responseRules: HeaderRules { get }
    /// Runs one decision on the service's pool and random source (under its lock, where connections
    /// run on several threads), returning what the decision asks for.
    func decide(_ decision: (inout UpstreamPool, inout SeededRandom) -> [EgressExchange.Action]) -> [EgressExchange.Action]
}

/// Where a request goes: its service, and the `Host` its attempts carry when that is not the app's
/// (an allow-listed origin gets its own authority).
public struct EgressRouting {
    public var service: any EgressService
    public var host: String?

    public init(service: any EgressService, host: String? = nil) {
        self.service = service
        self.host = host
    }
}

/// The limits on what an app sends the egress (read afresh at each request head).
public struct EgressLimits: Sendable {
    public var maxHeaders = 100
    public var maxBodyBytes = 10 * 1024 * 1024
    public var escapedSeparators = RequestTarget.EscapedSeparators.keep

    public init(maxHeaders: Int = 100, maxBodyBytes: Int = 10 * 1024 * 1024, escapedSeparators: RequestTarget.EscapedSeparators = .keep) {
        self.maxHeaders = maxHeaders
        self.maxBodyBytes = maxBodyBytes
        self.escapedSeparators = escapedSeparators
    }
}

/// What an ``EgressConnection`` asks of the driver that runs it: move the app's bytes, send attempts
/// on upstream connections and hand their answers back, fetch tokens, keep timers, keep the books.
/// The driver decides nothing; the NIO handler and the simulated egress are the two drivers.
///
/// Anything that completes later (a token, an attempt's answer, a timer) comes back as an event on
/// the engine, tagged with the exchange or attempt it belongs to (the engine drops stale ones).
public protocol EgressConnectionIO: AnyObject {
    var now: MeshInstant { get }
    /// The limits for the next request.
    func currentLimits() -> EgressLimits
    /// Routes a request (by `service_url`, `service_id`, `Host` or path prefix), or the refusal.
    func route(_ head: ScannedRequestHead, path: String) -> Result<EgressRouting, ErrorResponse>

    // MARK: The app's connection

    func writeToClient(_ bytes: IOData)
    func flushClient()
    /// Closes the app's connection: once what was written has left when `afterWrites`, else at once.
    func closeClient(afterWrites: Bool)
    var clientIsWritable: Bool { get }
    func clientReads(paused: Bool)

    // MARK: Attempts

    /// Sends attempt `id` to `pick`: the head and the whole body, on a connection of the service's pool.
    /// Its answer comes back as ``EgressConnection/attemptHead(_:_:)``, ``EgressConnection/attemptBody(_:_:)``,
    /// ``EgressConnection/attemptEnded(_:)`` or ``EgressConnection/attemptFailed(_:_:requestSent:)``.
    func sendAttempt(_ id: UInt64, to pick: UpstreamPool.Pick, head: EncodedRequestHead, body: ByteBuffer, service: any EgressService)
    /// Gives attempt `id` up for `reason`: its connection is closed (it may be mid-message).
    func abandonAttempt(_ id: UInt64, _ reason: EgressExchange.AbandonReason)
    /// Stop (or resume) reading attempt `id`'s answer.
    func attemptReads(_ id: UInt64, paused: Bool)

    // MARK: Tokens and timers

    /// Gets a token from `service`'s token source for exchange `exchange`: ``EgressConnection/tokenReady(_:exchange:)``
    /// or ``EgressConnection/tokenFailed(_:exchange:)`` follows.
    func fetchToken(for service: any EgressService, exchange: UInt64)
    /// Calls ``EgressConnection/timerFired(_:generation:exchange:)`` at `instant`.
    func arm(_ timer: EgressExchange.Timer, at instant: MeshInstant, generation: UInt64, exchange: UInt64)
    /// The exchange's timers are no longer needed (a firing would be dropped as stale anyway).
    func disarmTimers()

    // MARK: The books

    /// The service's token was refused by the upstream (401): its source drops it.
    func tokenRejected(_ token: String, service: any EgressService)
    /// A retry is under way.
    func retrying(service: any EgressService)
    /// The pool's health changed (ejections, breakers).
    func poolEvents(_ events: [UpstreamPool.Event], service: any EgressService)
    /// A request was answered (relayed or refused) with `status`, after `seconds`.
    func finished(status: Int, seconds: Double, service: any EgressService, noEndpoint: Bool)
    /// Every decision of the exchange, before it is carried out (the simulator's coverage and log); nothing by default.
    func observe(_ action: EgressExchange.Action, exchange: UInt64)
}

extension EgressConnectionIO {
    public func observe(_ action: EgressExchange.Action, exchange: UInt64) {}
}
