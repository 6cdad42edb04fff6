import MeshCore

/// Injects a ``FaultProfile`` into a simulation: sets the network's always-on rates, turns buggify on,
/// and schedules crashes, partitions, clogs, holds and latency spikes at random times until the quiet
/// period, when it heals everything so liveness can be checked.
public final class Nemesis {
    unowned let simulation: Simulation
    private let profile: FaultProfile
    private let crashTargets: [HostID]
    private var random: SeededRandom
    private var quietAt: MeshInstant = .zero
    private var quiet = false
    private var down: [HostID] = []
    private var partitioned = false

    /// - Parameters:
    ///   - crashTargets: hosts that may be crashed, clogged or held; partitions may split any hosts.
    public init(simulation: Simulation, profile: FaultProfile, crashTargets: [HostID]) {
        self.simulation = simulation
        self.profile = profile
        self.crashTargets = crashTargets
        self.random = simulation.random("nemesis")
    }

    /// Arms the faults; they stop and heal at `quietAt`.
    public func start(quietAt: MeshInstant) {
        self.quietAt = quietAt
        let net = simulation.network!
        net.config.loss = profile.loss
        net.config.duplicate = profile.duplicate
        net.config.reorder = profile.reorder
        if let enable = profile.buggifyEnable {
            simulation.faults.enableProbability = enable
            simulation.faults.fireProbability = profile.buggifyFire
        }
        for kind in profile.enabledKinds { simulation.coverage.hit("profile." + kind) }
        if let p = profile.crash { arm(p) { [self] in crashOne(p) } }
        if let p = profile.partition { arm(p) { [self] in partitionSome(p) } }
        if let p = profile.clog { arm(p) { [self] in clogOne(p) } }
        if let p = profile.hold { arm(p) { [self] in holdOne(p) } }
        if let p = profile.latencySpike { arm(p) { [self] in spike(p) } }
        simulation.schedule(after: quietAt - simulation.now, label: "nemesis.heal") { [self] in healEverything() }
    }

    private func arm(_ p: FaultProfile.Periodic, _ action: @escaping () -> Void) {
        let mean = Double(p.every.nanoseconds)
        let wait = Int64(random.nextExponential(mean: mean))
        simulation.schedule(after: .nanoseconds(wait), label: "nemesis.fault") { [self] in
            guard !quiet else { return }
            action()
            arm(p, action)
        }
    }

    private func jittered(_ d: Duration) -> Duration {
        .nanoseconds(Int64(Double(d.nanoseconds) * (0.5 + random.nextUnit())))
    }

    func note(_ what: String, _ host: HostID = -1) {
        simulation.log.record(simulation.now.nanoseconds, host, .fault, 0, 0, what)
        simulation.coverage.hit("fault." + what)
    }

    private func crashOne(_ p: FaultProfile.Periodic) {
        let up = crashTargets.filter { simulation.hosts[$0].isUp }
        guard up.count > 1 else { return }  // keep one target alive so the system can make progress
        let victim = up[Int(random.next() % UInt64(up.count))]
        note("crash", victim)
        simulation.hosts[victim].crash()
        down.append(victim)
        simulation.schedule(after: jittered(p.length), label: "nemesis.restart") { [self] in restart(victim) }
    }

    private func restart(_ host: HostID) {
        guard let i = down.firstIndex(of: host) else { return }
        down.remove(at: i)
        note("restart", host)
        simulation.hosts[host].restart()
    }

    private func partitionSome(_ p: FaultProfile.Periodic) {
        let all = simulation.hosts.map(\.id)
        guard !partitioned, all.count > 1 else { return }
        var side: [HostID] = []
        for h in all where random.chance(0.5) { side.append(h) }
        if side.isEmpty || side.count == all.count { side = [all[Int(random.next() % UInt64(all.count))]] }
        let oneWay = random.chance(0.3)
        for a in side { for b in all where !side.contains(b) { simulation.network.partition(a, b, oneWay: oneWay) } }
        partitioned = true
        note(oneWay ? "partition-one-way" : "partition")
        simulation.schedule(after: jittered(p.length), label: "nemesis.fault-end") { [self] in
            guard partitioned else { return }
            partitioned = false
            simulation.network.healAll()
            note("heal")
        }
    }

    private func clogOne(_ p: FaultProfile.Periodic) {
        let victim = crashTargets[Int(random.next() % UInt64(crashTargets.count))]
        note("clog", victim)
        simulation.network.clog(victim)
        simulation.schedule(after: jittered(p.length), label: "nemesis.fault-end") { [self] in
            simulation.network.unclog(victim)
            note("unclog", victim)
        }
    }

    private func holdOne(_ p: FaultProfile.Periodic) {
        let victim = crashTargets[Int(random.next() % UInt64(crashTargets.count))]
        note("hold", victim)
        simulation.network.hold(victim)
        simulation.schedule(after: jittered(p.length), label: "nemesis.fault-end") { [self] in
            simulation.network.release(victim)
            note("release", victim)
        }
    }

    private func spike(_ p: FaultProfile.Periodic) {
        note("latency-spike")
        simulation.network.latencyFactor = profile.spikeFactor
        simulation.schedule(after: jittered(p.length), label: "nemesis.fault-end") { [self] in
            simulation.network.latencyFactor = 1
        }
    }

    /// Ends all faults: from here on the system must recover and finish its work.
    private func healEverything() {
        quiet = true
        let net = simulation.network!
        net.config.loss = 0
        net.config.duplicate = 0
        net.config.reorder = 0
        net.latencyFactor = 1
        simulation.faults.enableProbability = nil
        partitioned = false
        net.healAll()
        for h in simulation.hosts.indices {
            net.unclog(h)
            net.release(h)
        }
        for h in down { simulation.hosts[h].restart() }
        down.removeAll()
        simulation.log.record(simulation.now.nanoseconds, -1, .heal, 0, 0, "quiet period")
    }
}
