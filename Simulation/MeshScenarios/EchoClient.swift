import MeshCore
import MeshSimulator

/// Configuration of the proof workload's clients.
public struct EchoClientConfig: Hashable, Sendable {
    public enum Transport: String, Hashable, Sendable { case datagram, stream }
    /// Bugs that can be planted on purpose to prove the swarm finds them.
    public enum PlantedBug: String, Hashable, Sendable {
        case none
        /// A retry does not advance the attempt-id counter, so the next attempt reuses its id and a
        /// response to the retry can be delivered to a different request.
        case reuseRequestId = "reuse-request-id"
    }

    public var transport: Transport = .datagram
    /// Requests each client keeps in flight.
    public var concurrency = 2
    /// Pause between a request's end and the next one on the same slot (uniform in `0...thinkTime`).
    public var thinkTime: Duration = .milliseconds(5)
    /// Time one attempt may take before the client retries.
    public var attemptTimeout: Duration = .milliseconds(40)
    /// The whole request, retries included, must end by this long after it was invoked.
    public var deadline: Duration = .milliseconds(500)
    public var backoff = ExponentialBackoff(initial: .milliseconds(10), maximum: .milliseconds(80))
    public var budgetRatio = 0.2
    public var budgetMinPerSecond = 10.0
    public var plantedBug: PlantedBug = .none
    public init() {}
}

/// A client that calls echo servers with per-attempt timeouts, retries with backoff under a retry
/// budget, and a deadline per request; every request is recorded in the simulation's history.
///
/// The retry decisions use the product's own ``ExponentialBackoff`` and ``RetryBudget``.
final class EchoClient: SimProcess {
    private struct Op {
        var historyId: Int
        var key: String
        var deadline: MeshInstant
        var slot: Int
        var attempts = 0
        var done = false
        var timers: [TimerToken] = []
        var wires: [UInt64] = []
    }
    private enum TimerPurpose {
        case think(slot: Int)
        case attempt(op: Int, attempt: Int)
        case backoff(op: Int)
        case deadline(op: Int)
        case connect(server: HostID, stream: StreamID)
    }
    private struct Connection {
        var stream: StreamID
        var open = false
        var queued: [(wire: UInt64, bytes: [UInt8])] = []
        /// Attempt ids written on this connection and not yet answered.
        var waiting: [UInt64] = []
    }

    private let config: EchoClientConfig
    private let servers: [HostID]
    private let stopIssuingAt: MeshInstant
    private var budget: RetryBudget
    private var ops: [Int: Op] = [:]
    private var opByWire: [UInt64: Int] = [:]
    private var timers: [UInt64: TimerPurpose] = [:]
    private var connections: [HostID: Connection] = [:]
    private var serverOfStream: [StreamID: HostID] = [:]
    /// Which server's connection carries each attempt written on a stream (never iterate a dictionary).
    private var serverOfWire: [UInt64: HostID] = [:]
    private var wireEpoch: UInt64 = 0
    private var wireCounter: UInt64 = 0
    private var issued = 0
    private var roundRobin = 0

    init(config: EchoClientConfig, servers: [HostID], stopIssuingAt: MeshInstant) {
        self.config = config
        self.servers = servers
        self.stopIssuingAt = stopIssuingAt
        self.budget = RetryBudget(ratio: config.budgetRatio, minRetriesPerSecond: config.budgetMinPerSecond, window: .seconds(1))
    }

    func start(on host: SimHost) {
        // Attempt ids are unique across restarts: a response meant for an earlier incarnation's
        // request must not match a new request.
        wireEpoch = (host.random.next() & 0xffff_ffff) << 32
        for slot in 0..<config.concurrency { think(slot, host) }
    }

    // MARK: Issuing

    private func think(_ slot: Int, _ host: SimHost) {
        let pause = Int64(Double(config.thinkTime.nanoseconds) * host.random.nextUnit())
        timers[host.setTimer(after: .nanoseconds(pause)).rawValue] = .think(slot: slot)
    }

    private func issue(_ slot: Int, _ host: SimHost) {
        guard host.now < stopIssuingAt else { return }
        let key = "\(host.name)/\(issued)"
        issued += 1
        let deadline = host.now + config.deadline
        let id = host.simulation.history.invoke(process: host.name, "echo", key, at: host.now, deadline: deadline)
        var op = Op(historyId: id, key: key, deadline: deadline, slot: slot)
        let t = host.setTimer(after: config.deadline)
        timers[t.rawValue] = .deadline(op: id)
        op.timers.append(t)
        ops[id] = op
        budget.recordRequest(now: host.now)
        attempt(id, host)
    }

    private func nextWire(isRetry: Bool) -> UInt64 {
        if isRetry && config.plantedBug == .reuseRequestId {
            return wireEpoch | wireCounter  // planted bug: the counter does not advance
        }
        wireCounter += 1
        return wireEpoch | wireCounter
    }

    private func attempt(_ id: Int, _ host: SimHost) {
        guard var op = ops[id], !op.done else { return }
        op.attempts += 1
        let wire = nextWire(isRetry: op.attempts > 1)
        op.wires.append(wire)
        opByWire[wire] = id
        let server = servers[roundRobin % servers.count]
        roundRobin += 1
        let t = host.setTimer(after: config.attemptTimeout)
        timers[t.rawValue] = .attempt(op: id, attempt: op.attempts)
        op.timers.append(t)
        ops[id] = op
        host.log("attempt", Int64(id), Int64(op.attempts), "\(op.key) to \(server)")
        let bytes = EchoMessage.request(wire: wire, key: op.key).encode()
        switch config.transport {
        case .datagram:
            host.send(to: server, port: EchoMessage.port, bytes)
        case .stream:
            sendOnStream(server, wire, bytes, host)
        }
    }

    private func sendOnStream(_ server: HostID, _ wire: UInt64, _ bytes: [UInt8], _ host: SimHost) {
        if var c = connections[server] {
            if c.open {
                c.waiting.append(wire)
                serverOfWire[wire] = server
                host.write(c.stream, bytes)
            } else {
                c.queued.append((wire, bytes))
            }
            connections[server] = c
            return
        }
        let stream = host.connect(to: server, port: EchoMessage.port)
        connections[server] = Connection(stream: stream, queued: [(wire, bytes)])
        serverOfStream[stream] = server
        timers[host.setTimer(after: config.attemptTimeout).rawValue] = .connect(server: server, stream: stream)
    }

    // MARK: Events

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .datagram(_, _, let payload):
            response(payload, host)
        case .data(_, let payload):
            response(payload, host)
        case .connected(let stream):
            guard let server = serverOfStream[stream], var c = connections[server], c.stream == stream else { return }
            c.open = true
            for (wire, bytes) in c.queued {
                c.waiting.append(wire)
                serverOfWire[wire] = server
                host.write(stream, bytes)
            }
            c.queued.removeAll()
            connections[server] = c
        case .connectFailed(let stream, _):
            connectionLost(stream, reason: "connect refused", beforeSending: true, host)
        case .reset(let stream):
            connectionLost(stream, reason: "connection reset", beforeSending: false, host)
        case .closed(let stream):
            connectionLost(stream, reason: "connection closed", beforeSending: false, host)
            host.close(stream)
        case .accepted:
            break
        }
    }

    private func response(_ payload: [UInt8], _ host: SimHost) {
        guard case .response(let wire, let body)? = EchoMessage.decode(payload) else { return }
        if let server = serverOfWire.removeValue(forKey: wire) {
            connections[server]?.waiting.removeAll { $0 == wire }
        }
        guard let id = opByWire[wire], let op = ops[id], !op.done else {
            host.simulation.coverage.hit("echo.late-response")
            return
        }
        host.simulation.coverage.sometimes(op.attempts > 1, "echo.ok-after-retry")
        finish(id, .ok(body), host)
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let purpose = timers.removeValue(forKey: token.rawValue) else { return }
        switch purpose {
        case .think(let slot):
            issue(slot, host)
        case .attempt(let id, let n):
            guard let op = ops[id], !op.done, op.attempts == n else { return }
            retry(id, reason: "attempt timeout", host)
        case .backoff(let id):
            attempt(id, host)
        case .deadline(let id):
            guard let op = ops[id], !op.done else { return }
            host.simulation.coverage.hit("echo.deadline-failure")
            finish(id, .failed("deadline exceeded after \(op.attempts) attempts"), host)
        case .connect(let server, let stream):
            guard let c = connections[server], c.stream == stream, !c.open else { return }
            host.close(stream)
            connectionLost(stream, reason: "connect timeout", beforeSending: true, host)
        }
    }

    private func connectionLost(_ stream: StreamID, reason: String, beforeSending: Bool, _ host: SimHost) {
        guard let server = serverOfStream.removeValue(forKey: stream), let c = connections[server], c.stream == stream else { return }
        connections[server] = nil
        let affected = c.queued.map(\.wire) + c.waiting
        for wire in c.waiting { serverOfWire[wire] = nil }
        for wire in affected {
            guard let id = opByWire[wire], let op = ops[id], !op.done, op.wires.last == wire else { continue }
            host.simulation.coverage.sometimes(beforeSending, "echo.retry-after-connect-failure")
            retry(id, reason: reason, host)
        }
    }

    // MARK: Retrying and finishing

    private func retry(_ id: Int, reason: String, _ host: SimHost) {
        guard var op = ops[id], !op.done else { return }
        let delay = config.backoff.delay(forRetry: op.attempts - 1, using: &host.random)
        if host.now + delay >= op.deadline {
            host.simulation.coverage.hit("echo.no-time-to-retry")
            return  // the deadline timer ends it
        }
        guard budget.tryRetry(now: host.now) else {
            host.simulation.coverage.hit("echo.budget-exhausted")
            finish(id, .failed("retry budget exhausted after \(reason)"), host)
            return
        }
        host.simulation.coverage.hit("echo.retry")
        host.log("retry", Int64(id), Int64(op.attempts), "\(op.key) after \(reason)")
        let t = host.setTimer(after: delay)
        timers[t.rawValue] = .backoff(op: id)
        op.timers.append(t)
        ops[id] = op
    }

    private func finish(_ id: Int, _ outcome: History.Outcome, _ host: SimHost) {
        guard var op = ops[id], !op.done else { return }
        op.done = true
        let sim = host.simulation
        // Once per request and by the deadline hold by construction (the done flag, the deadline
        // timer), so they are not checked: no bug could make such a check fail.
        _ = sim.history.complete(op.historyId, outcome, at: host.now)
        if case .ok = outcome {  // whether it is the right one, the end-of-run check reads from the history
            host.log("ok", Int64(id), Int64(op.attempts), op.key)
        } else {
            host.log("failed", Int64(id), Int64(op.attempts), op.key)
        }
        for t in op.timers { host.cancelTimer(t); timers[t.rawValue] = nil }
        for w in op.wires where opByWire[w] == id { opByWire[w] = nil }
        ops[id] = nil
        think(op.slot, host)
    }
}
