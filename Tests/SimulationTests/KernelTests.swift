import MeshCore
import MeshSimulator
import Testing

@Suite struct KernelTests {
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
