import Foundation
import MeshCore

/// The deterministic simulation kernel: virtual time, one event queue, seeded randomness, the network,
/// the hosts, fault injection and the checkers.
///
/// Everything runs on the thread that created the simulation; the kernel jumps from event to event,
/// so virtual time advances only between events and nothing reads the wall clock. Product code reaches
/// the kernel only through the `MeshCore` seams (``SimHostClock``, ``SimFaultInjector``, host random
/// sub-streams), never directly.
public final class Simulation {
    /// The run's seed; every random draw in the run derives from it.
    public let seed: UInt64
    /// The current virtual instant.
    public private(set) var now: MeshInstant = .zero
    public let log = EventLog()
    public let coverage = Coverage()
    public let history = History()
    public private(set) var violations: [Violation] = []
    public private(set) var hosts: [SimHost] = []
    public private(set) var network: SimNetwork!
    public private(set) var faults: SimFaultInjector!
    /// Number of events the kernel has processed.
    public private(set) var eventsProcessed: Int = 0

    private var queue = EventQueue()
    private let root: SeededRandom
    private let owner = pthread_self()
    private var stopRequested = false
    /// Stop the run at the first violation (keeps failing runs short and their logs readable).
    public var stopOnViolation = true
    /// Called when a host crashes, after its process is gone (checkers mark its open operations unknown).
    public var crashObservers: [(SimHost) -> Void] = []
    /// When a run counts as stuck (a `stuck` violation ends it): a livelock that never lets virtual
    /// time pass, or a busy loop that does, would otherwise run for ever without failing anything.
    public var stuckLimits = StuckLimits()
    private var eventsAtThisInstant = 0
    private var virtualSecond: Int64 = -1
    private var eventsThisSecond = 0

    public init(seed: UInt64, network config: NetworkConfig = NetworkConfig()) {
        self.seed = seed
        self.root = SeededRandom(seed: seed)
        self.network = SimNetwork(simulation: self, config: config, random: root.split(named: "network"))
        self.faults = SimFaultInjector(simulation: self, random: root.split(named: "buggify"))
    }

    /// An independent random sub-stream for the subsystem called `name`.
    public func random(_ name: String) -> SeededRandom { root.split(named: name) }

    /// Adds a host whose process is made by `factory` (again at every restart). It starts at time zero.
    @discardableResult
    public func addHost(named name: String, _ factory: @escaping (SimHost) -> any SimProcess) -> SimHost {
        let host = SimHost(id: hosts.count, name: name, simulation: self, random: root.split(named: "host/" + name), factory: factory)
        hosts.append(host)
        log.hostNames.append(name)
        network.hostAdded()
        return host
    }

    /// Looks a host up by name.
    public func host(named name: String) -> SimHost? { hosts.first { $0.name == name } }

    // MARK: Scheduling

    /// Runs `body` at `now + delay` on the kernel (not tied to any host's lifetime). `label` names
    /// its purpose in the log and the hash.
    public func schedule(after delay: Duration, label: StaticString = "kernel", _ body: @escaping () -> Void) {
        enqueue(at: now.nanoseconds &+ max(0, delay.nanoseconds), .closure(host: nil, incarnation: 0, label: label, body: body))
    }

    /// Runs `body` every `interval` of virtual time on the kernel, until the run stops (a checker's
    /// sampling).
    public func every(_ interval: Duration, label: StaticString, _ body: @escaping () -> Void) {
        schedule(after: interval, label: label) { [weak self] in
            guard let self, !self.isStopped else { return }
            body()
            self.every(interval, label: label, body)
        }
    }

    @inline(__always)
    func enqueue(at time: Int64, _ event: SimEvent) {
        queue.push(time: max(time, now.nanoseconds), event)
    }

    /// Processes events in time order until the queue is empty, `end` is reached, or the run stops.
    /// Returns with `now == end` unless stopped early.
    public func run(until end: MeshInstant) {
        assertConfined()
        while !stopRequested, let next = queue.nextTime, next <= end.nanoseconds {
            let entry = queue.pop()!
            if entry.time != now.nanoseconds { eventsAtThisInstant = 0 }
            now = MeshInstant(nanoseconds: entry.time)
            eventsProcessed &+= 1
            if isStuck() { break }
            dispatch(entry.event)
        }
        if !stopRequested { now = max(now, end) }
    }

    /// Counts the event about to run against ``stuckLimits``; records `stuck` when one is passed.
    private func isStuck() -> Bool {
        eventsAtThisInstant += 1
        let second = now.nanoseconds / 1_000_000_000
        if second != virtualSecond {
            virtualSecond = second
            eventsThisSecond = 0
        }
        eventsThisSecond += 1
        if eventsAtThisInstant > stuckLimits.eventsAtOneInstant {
            violation("stuck", "\(stuckLimits.eventsAtOneInstant) events ran without virtual time passing (a livelock)")
            stop()
            return true
        }
        if eventsThisSecond > stuckLimits.eventsPerVirtualSecond {
            violation("stuck", "more than \(stuckLimits.eventsPerVirtualSecond) events in virtual second \(second) (a busy loop)")
            stop()
            return true
        }
        return false
    }

    /// Asks the run loop to stop after the current event.
    public func stop() { stopRequested = true }

    public var isStopped: Bool { stopRequested }

    private func dispatch(_ event: SimEvent) {
        switch event {
        case .datagram(let d):
            network.arrive(d)
        case .segment(let s):
            network.arrive(s)
        case .timer(let host, let incarnation, let token):
            hosts[host].timerDue(incarnation: incarnation, token: token)
        case .closure(let host, let incarnation, let label, let body):
            if let host {
                guard hosts[host].isUp && hosts[host].incarnation == incarnation else { return }
            }
            log.record(now.nanoseconds, host ?? -1, .closure, label: label)
            body()
        }
    }

    // MARK: Checking

    /// Invariants enforced in this run; `nil` enforces every one. Others are still logged, not failed.
    public var enabledInvariants: Set<String>?

    /// Records that invariant `name` was violated; the run fails and (by default) stops.
    public func violation(_ name: String, _ detail: String, host: Int = -1) {
        guard enabledInvariants?.contains(name) ?? true else {
            log.record(now.nanoseconds, host, .app, 0, 0, "ignored invariant \(name): \(detail)")
            return
        }
        violations.append(Violation(time: now, invariant: name, detail: detail))
        log.record(now.nanoseconds, host, .violation, 0, 0, "\(name): \(detail)")
        if stopOnViolation { stop() }
    }

    /// Checks `condition`; records a violation of `name` if it is false.
    @inline(__always)
    public func expect(_ condition: Bool, _ name: String, _ detail: @autoclosure () -> String, host: Int = -1) {
        if !condition { violation(name, detail(), host: host) }
    }

    /// Traps if called off the simulation's thread: simulated code must not escape to other executors.
    @inline(__always)
    public func assertConfined() {
        precondition(pthread_equal(pthread_self(), owner) != 0,
                     "simulated code escaped the simulator's thread (a Task, Dispatch or timer outside the seams)")
    }
}

/// A broken invariant, with when it was detected.
/// Bounds past which a run is stuck rather than busy. The scenarios run a few thousand to a few
/// hundred thousand events per virtual second; these leave an order of magnitude of room.
public struct StuckLimits: Hashable, Sendable {
    /// Events at one virtual instant.
    public var eventsAtOneInstant = 200_000
    /// Events within one virtual second.
    public var eventsPerVirtualSecond = 3_000_000
    public init() {}
}

public struct Violation: Hashable, Sendable, CustomStringConvertible {
    public var time: MeshInstant
    public var invariant: String
    public var detail: String
    public var description: String { "[\(invariant)] at \(time): \(detail)" }
}
