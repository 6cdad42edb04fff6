import MeshCore
import MeshSimulator
import Testing

@Suite struct KernelTests {
    /// Issue 23: a run that stops advancing (a livelock at one instant, or a busy loop that lets time
    /// creep) fails as `stuck` instead of running for ever.
    @Test func aRunThatStopsAdvancingIsStuck() {
        let livelock = Simulation(seed: 1)
        livelock.stuckLimits.eventsAtOneInstant = 1000
        func again() { livelock.schedule(after: .zero) { again() } }
        livelock.schedule(after: .milliseconds(1)) { again() }
        livelock.run(until: .zero + .seconds(10))
        #expect(livelock.violations.map(\.invariant) == ["stuck"])
        #expect(livelock.violations.first?.detail.contains("livelock") == true)

        let busy = Simulation(seed: 1)
        busy.stuckLimits.eventsPerVirtualSecond = 5000
        func spin() { busy.schedule(after: .microseconds(1)) { spin() } }
        busy.schedule(after: .zero) { spin() }
        busy.run(until: .zero + .seconds(10))
        #expect(busy.violations.map(\.invariant) == ["stuck"])
        #expect(busy.eventsProcessed <= 5001)

        let steady = Simulation(seed: 1)
        steady.stuckLimits.eventsPerVirtualSecond = 5000
        func tick() { steady.schedule(after: .milliseconds(1)) { tick() } }
        steady.schedule(after: .zero) { tick() }
        steady.run(until: .zero + .seconds(10))
        #expect(steady.violations.isEmpty, "1,000 events a second is not stuck")
    }

    @Test func virtualTimeJumpsAndTiesKeepScheduleOrder() {
        let sim = Simulation(seed: 1)
        var seen: [(String, Int64)] = []
        sim.schedule(after: .seconds(3600)) { seen.append(("hour", sim.now.nanoseconds)) }
        sim.schedule(after: .milliseconds(5)) { seen.append(("a", sim.now.nanoseconds)) }
        sim.schedule(after: .milliseconds(5)) { seen.append(("b", sim.now.nanoseconds)) }
        let wall = ContinuousClock.now
        sim.run(until: .zero + .seconds(7200))
        #expect(seen.map(\.0) == ["a", "b", "hour"])
        #expect(seen.map(\.1) == [5_000_000, 5_000_000, 3_600_000_000_000])
        #expect(sim.now == .zero + .seconds(7200))
        #expect(ContinuousClock.now - wall < .seconds(5), "virtual time must not wait")
    }

    @Test func hostTimersDieWithTheHostAndRestartGetsAFreshProcess() {
        let sim = Simulation(seed: 1)
        var starts = 0
        let host = sim.addHost(named: "h") { _ in
            starts += 1
            return Recorder { h in h.setTimer(after: .milliseconds(10)) }
        }
        host.boot()
        let first = host.process as! Recorder
        sim.schedule(after: .milliseconds(5)) { host.crash() }
        sim.schedule(after: .milliseconds(50)) { host.restart() }
        sim.run(until: .zero + .milliseconds(100))
        #expect(first.timers.isEmpty, "a crashed host's timer fired")
        #expect(starts == 2)
        #expect((host.process as! Recorder).timers.count == 1)
    }

    @Test func clockSeamTimersCancelAndDieWithIncarnation() {
        let sim = Simulation(seed: 1)
        let host = sim.addHost(named: "h") { _ in Recorder() }
        host.boot()
        let fired = Box<[String]>([])
        let clock = host.clock
        clock.schedule(after: .milliseconds(1)) { fired.value.append("t1 at \(clock.now.nanoseconds)") }
        let cancelled = clock.schedule(after: .milliseconds(2)) { fired.value.append("cancelled") }
        clock.cancel(cancelled)
        clock.schedule(after: .milliseconds(20)) { fired.value.append("after crash") }
        sim.schedule(after: .milliseconds(10)) { host.crash() }
        sim.run(until: .zero + .milliseconds(50))
        #expect(fired.value == ["t1 at 1000000"])
    }

    @Test func buggifyIsInertWhenOffAndStablePerSeedAndSite() {
        let site = FaultSite("test.site")
        let off = Simulation(seed: 5)
        #expect(!(0..<1000).contains { _ in off.faults.fires(site) })

        func enabledSites(seed: UInt64) -> [Bool] {
            let sim = Simulation(seed: seed)
            sim.faults.enableProbability = 0.5
            sim.faults.fireProbability = 1
            return (0..<32).map { sim.faults.fires(FaultSite("site-\($0)")) }
        }
        let a = enabledSites(seed: 11)
        #expect(a == enabledSites(seed: 11))
        #expect(a.contains(true) && a.contains(false), "two-level activation enables some sites, not all")
        #expect(InertFaults.shared.fires(site) == false)
    }
}
