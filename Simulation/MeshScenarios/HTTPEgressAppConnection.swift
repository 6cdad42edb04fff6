import HTTPSidecar
import HTTPSidecarEngines
import MeshCore
import MeshSimulator
import NIOCore

/// The egress sidecar's one service in the scenario: the product's ``UpstreamPool`` (and the random
/// source its decisions draw from), shared by every app connection of the pod, as a service's pool
/// is shared by every event loop in production.
final class SimEgressService: EgressService {
    var pool: UpstreamPool
    var random: SeededRandom
    let exchangeSettings: EgressExchange.Settings
    let requestRules = HeaderRules()
    let responseRules = HeaderRules()

    init(pool: UpstreamPool, random: SeededRandom, settings: EgressExchange.Settings) {
        self.pool = pool
        self.random = random
        self.exchangeSettings = settings
    }

    func decide(_ decision: (inout UpstreamPool, inout SeededRandom) -> [EgressExchange.Action]) -> [EgressExchange.Action] {
        decision(&pool, &random)
    }
}

/// One connection from the simulated app to its egress sidecar: the production ``EgressConnection``
/// engine, fed the app's request bytes and writing its answer bytes back to the app, as
/// ``EgressHandler`` runs it for NIO. The app and the sidecar share the pod, so their bytes cross
/// in process; everything the engine asks of the upstream side (attempts on pooled connections,
/// tokens, timers) is the pod's (``HTTPEgressClient``), which only moves bytes and keeps timers.
final class HTTPEgressAppConnection: EgressConnectionIO {
    private unowned let client: HTTPEgressClient
    private unowned let host: SimHost
    let slot: Int
    private(set) var engine: EgressConnection!
    /// The app's side: the answer being read, and whether the sidecar closed the connection.
    private var reader = SimHTTP1.ResponseReader()
    private var unflushed: [UInt8] = []
    private(set) var closed = false

    init(client: HTTPEgressClient, host: SimHost, slot: Int, seed: UInt64, faults: any FaultInjector) {
        self.client = client
        self.host = host
        self.slot = slot
        engine = EgressConnection(io: self, seed: seed, faults: faults)
    }

    /// The app sends a request's bytes.
    func send(_ bytes: [UInt8]) {
        engine.clientBytes(ByteBuffer(bytes: bytes))
    }

    /// The app closes its connection (it gave up on the request under way).
    func appCloses() {
        guard !closed else { return }
        closed = true
        engine.clientClosed()
    }

    // MARK: EgressConnectionIO: the app's connection

    var now: MeshInstant { host.now }

    func currentLimits() -> EgressLimits { EgressLimits() }

    /// The production router; the one simulated service is `upstream` (allow-listed origins are
    /// services of their own in production, and no app here names one that is on the list).
    func route(_ head: ScannedRequestHead, path: String) -> Result<EgressRouting, ErrorResponse> {
        HTTPEgressClient.router.route(head, path: path).flatMap { route in
            guard route.service == client.service.exchangeSettings.service else {
                return .failure(ErrorResponse(status: .notFound, code: "unknown_service", message: "no service called \(route.service) is simulated"))
            }
            return .success(EgressRouting(service: client.service, host: route.host))
        }
    }

    func writeToClient(_ bytes: IOData) {
        guard !closed, case .byteBuffer(let buffer) = bytes else { return }
        unflushed += buffer.readableBytesView
    }

    /// What the sidecar wrote reaches the app, which reads its answer.
    func flushClient() {
        guard !closed, !unflushed.isEmpty else { return }
        let bytes = unflushed
        unflushed = []
        var input = bytes
        while true {
            let step = reader.read(input, method: .get)
            input = []
            switch step {
            case .needMore:
                return
            case .head(done: false):
                return client.answerBegan(slot)
            case .invalid(let v):
                host.simulation.expect(false, "http.right-response", "\(host.name): the sidecar's answer is malformed: \(v)", host: host.id)
                return appCloses()
            case .head(done: true), .done:
                client.answered(slot, status: reader.status, key: reader.field("x-request-key"))
                if !reader.hasLeftover { return }
            }
        }
    }

    func closeClient(afterWrites: Bool) {
        guard !closed else { return }
        if afterWrites { flushClient() }
        closed = true
        client.connectionClosed(slot)
    }

    var clientIsWritable: Bool { true }
    func clientReads(paused: Bool) {}

    // MARK: EgressConnectionIO: attempts, tokens, timers (the pod's)

    func sendAttempt(_ id: UInt64, to pick: UpstreamPool.Pick, head: EncodedRequestHead, body: ByteBuffer, service: any EgressService) {
        client.sendAttempt(slot, id, to: pick, head: head, body: body)
    }

    func abandonAttempt(_ id: UInt64, _ reason: EgressExchange.AbandonReason) {
        client.abandonAttempt(slot, id, because: reason)
    }

    func attemptReads(_ id: UInt64, paused: Bool) {}

    func fetchToken(for service: any EgressService, exchange: UInt64) {
        client.fetchToken(slot, exchange: exchange)
    }

    func arm(_ timer: EgressExchange.Timer, at instant: MeshInstant, generation: UInt64, exchange: UInt64) {
        client.arm(slot, timer, at: instant, generation: generation, exchange: exchange)
    }

    func disarmTimers() {}

    // MARK: EgressConnectionIO: the books

    func tokenRejected(_ token: String, service: any EgressService) { client.tokenRejected(token) }
    func retrying(service: any EgressService) {}
    func poolEvents(_ events: [UpstreamPool.Event], service: any EgressService) {}
    func finished(status: Int, seconds: Double, service: any EgressService, noEndpoint: Bool) {}

    func observe(_ action: EgressExchange.Action, exchange: UInt64) {
        client.observe(action, slot: slot)
    }
}
