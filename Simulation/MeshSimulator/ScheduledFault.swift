import MeshCore

/// A fault at a fixed virtual time, for scenarios that replay a specific incident rather than (or on
/// top of) drawing random faults.
public struct ScheduledFault: Hashable, Sendable {
    public enum Action: Hashable, Sendable {
        case crash(String)
        case restart(String)
        /// Cuts `a` from `b` (and back unless `oneWay`).
        case partition(a: [String], b: [String], oneWay: Bool)
        case heal
        case clog(String)
        case unclog(String)
        case hold(String)
        case release(String)
    }
    public var at: Duration
    public var action: Action
    public init(at: Duration, _ action: Action) {
        self.at = at
        self.action = action
    }

    /// Every host name the action mentions.
    public var hostNames: [String] {
        switch action {
        case .crash(let h), .restart(let h), .clog(let h), .unclog(let h), .hold(let h), .release(let h): [h]
        case .partition(let a, let b, _): a + b
        case .heal: []
        }
    }
}

extension Nemesis {
    /// Schedules fixed faults (host names must exist in the simulation).
    public func schedule(_ faults: [ScheduledFault]) {
        for fault in faults {
            simulation.schedule(after: fault.at, label: "schedule.fault") { [self] in apply(fault.action) }
        }
    }

    private func apply(_ action: ScheduledFault.Action) {
        let sim = simulation
        func id(_ name: String) -> HostID { sim.host(named: name)!.id }
        switch action {
        case .crash(let h):
            note("crash", id(h))
            sim.hosts[id(h)].crash()
        case .restart(let h):
            note("restart", id(h))
            sim.hosts[id(h)].restart()
        case .partition(let a, let b, let oneWay):
            for x in a { for y in b { sim.network.partition(id(x), id(y), oneWay: oneWay) } }
            note(oneWay ? "partition-one-way" : "partition")
        case .heal:
            sim.network.healAll()
            note("heal")
        case .clog(let h):
            note("clog", id(h))
            sim.network.clog(id(h))
        case .unclog(let h):
            note("unclog", id(h))
            sim.network.unclog(id(h))
        case .hold(let h):
            note("hold", id(h))
            sim.network.hold(id(h))
        case .release(let h):
            note("release", id(h))
            sim.network.release(id(h))
        }
    }
}
