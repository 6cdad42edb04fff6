import MeshCore

/// What runs on a simulated host: product code wrapped in a driver, or a workload.
///
/// A process lives as long as one incarnation of its host: a crash discards it (its memory is lost) and
/// a restart asks the host's factory for a fresh one.
public protocol SimProcess: AnyObject {
    /// Called when the host starts or restarts.
    func start(on host: SimHost)
    /// Called for each network event addressed to this host.
    func receive(_ event: NetEvent, on host: SimHost)
    /// Called when a timer set with ``SimHost/setTimer(after:)`` fires.
    func timerFired(_ token: TimerToken, on host: SimHost)
}

extension SimProcess {
    public func timerFired(_ token: TimerToken, on host: SimHost) {}
}

/// A simulated pod: a name, a lifecycle (up, crashed, restarted), timers, listening ports and a
/// private random sub-stream.
public final class SimHost {
    public let id: HostID
    public let name: String
    public unowned let simulation: Simulation
    /// This host's random sub-stream. Survives restarts (it models the world, not the host's memory).
    public var random: SeededRandom
    /// Increases at every crash; events addressed to an older incarnation are discarded.
    public private(set) var incarnation: UInt32 = 0
    public private(set) var isUp = false
    /// The current process, `nil` while down.
    public private(set) var process: (any SimProcess)?

    private let factory: (SimHost) -> any SimProcess
    private var liveTimers: Set<UInt64> = []
    private var nextToken: UInt64 = 1
    private(set) var listening: Set<Int> = []
    /// The host's `MeshClock`, handed to product code.
    public private(set) lazy var clock = SimHostClock(host: self)

    init(id: HostID, name: String, simulation: Simulation, random: SeededRandom, factory: @escaping (SimHost) -> any SimProcess) {
        self.id = id
        self.name = name
        self.simulation = simulation
        self.random = random
        self.factory = factory
    }

    public var now: MeshInstant { simulation.now }

    // MARK: Lifecycle

    /// Starts the host (at time zero for hosts added before the run).
    public func boot() {
        precondition(!isUp, "\(name) is already up")
        isUp = true
        let p = factory(self)
        process = p
        p.start(on: self)
    }

    /// Crashes the host: its process, timers, listeners and open connections are gone.
    public func crash() {
        guard isUp else { return }
        isUp = false
        incarnation &+= 1
        process = nil
        liveTimers.removeAll()
        listening.removeAll()
        simulation.log.record(now.nanoseconds, id, .crash, Int64(incarnation))
        simulation.network.hostCrashed(id)
        for observer in simulation.crashObservers { observer(self) }
    }

    /// Restarts a crashed host with a fresh process.
    public func restart() {
        guard !isUp else { return }
        simulation.log.record(now.nanoseconds, id, .restart, Int64(incarnation))
        boot()
    }

    // MARK: Timers

    /// Sets a timer; the process's `timerFired` runs after `delay` unless cancelled or the host crashes.
    @discardableResult
    public func setTimer(after delay: Duration) -> TimerToken {
        let token = nextToken
        nextToken &+= 1
        liveTimers.insert(token)
        simulation.enqueue(at: now.nanoseconds &+ max(0, delay.nanoseconds), .timer(host: id, incarnation: incarnation, token: token))
        return TimerToken(rawValue: token)
    }

    public func cancelTimer(_ token: TimerToken) {
        liveTimers.remove(token.rawValue)
    }

    func timerDue(incarnation: UInt32, token: UInt64) {
        guard isUp, incarnation == self.incarnation, liveTimers.remove(token) != nil, let process else { return }
        simulation.log.record(now.nanoseconds, id, .timer, Int64(token))
        process.timerFired(TimerToken(rawValue: token), on: self)
    }

    /// Runs `body` after `delay` if this incarnation is still alive (the closure form used by ``SimHostClock``).
    func scheduleClosure(after delay: Duration, label: StaticString = "clock", _ body: @escaping () -> Void) {
        simulation.enqueue(at: now.nanoseconds &+ max(0, delay.nanoseconds), .closure(host: id, incarnation: incarnation, label: label, body: body))
    }

    // MARK: Network

    /// Sends a datagram to `host`'s `port`. It may be lost, duplicated, delayed or reordered.
    public func send(to host: HostID, port: Int, _ payload: [UInt8]) {
        simulation.network.sendDatagram(from: id, to: host, port: port, payload)
    }

    /// Accepts stream connections on `port` until the host crashes.
    public func listen(port: Int) { listening.insert(port) }

    /// Opens a stream to `host`'s `port`; the result arrives as `.connected` or `.connectFailed`.
    public func connect(to host: HostID, port: Int) -> StreamID {
        simulation.network.connect(from: id, to: host, port: port)
    }

    /// Writes bytes on an open stream; they arrive in order, or the stream is reset.
    public func write(_ stream: StreamID, _ payload: [UInt8]) {
        simulation.network.write(stream, from: id, payload)
    }

    /// Closes a stream gracefully; the peer sees `.closed` after the data already written.
    public func close(_ stream: StreamID) {
        simulation.network.close(stream, from: id)
    }

    /// Closes a stream abortively (`SO_LINGER` 0): bytes the network still holds are discarded and
    /// the peer sees `.reset`. For connections whose exchange was given up.
    public func abort(_ stream: StreamID) {
        simulation.network.abort(stream, from: id)
    }

    // MARK: Observability

    /// Logs an application-level event on this host: a static name and two numbers (hashed), plus a
    /// human-readable detail that is only built when the log is being written.
    public func log(_ name: StaticString, _ a: Int64 = 0, _ b: Int64 = 0, _ detail: @autoclosure () -> String = "") {
        simulation.log.record(now.nanoseconds, id, app: name, a, b, detail: detail)
    }

    func deliver(_ event: NetEvent) {
        guard isUp, let process else { return }
        process.receive(event, on: self)
    }
}
