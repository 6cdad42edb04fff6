import MeshCore

/// The simulator's ``FaultInjector``: two-level "buggify".
///
/// When buggify is on for a run, each fault site is enabled for the whole run with probability
/// `enableProbability`, decided by hashing the run seed with the site's name (so the decision does not
/// depend on which site happens to be reached first). An enabled site then fires on each call with
/// probability `fireProbability`, drawn from the run's `buggify` sub-stream.
public final class SimFaultInjector: FaultInjector, @unchecked Sendable {
    /// `nil` turns buggify off for the run: nothing fires.
    public var enableProbability: Double?
    public var fireProbability: Double = 0.05

    private unowned let simulation: Simulation
    private var random: SeededRandom
    private var enabled: [String: Bool] = [:]

    init(simulation: Simulation, random: SeededRandom) {
        self.simulation = simulation
        self.random = random
    }

    public func fires(_ site: FaultSite) -> Bool {
        simulation.assertConfined()
        guard let enableProbability else { return false }
        let on: Bool
        if let known = enabled[site.name] {
            on = known
        } else {
            var decider = SeededRandom(seed: StableHash.fnv1a(site.name, seed: simulation.seed))
            on = decider.chance(enableProbability)
            enabled[site.name] = on
        }
        guard on, random.chance(fireProbability) else { return false }
        simulation.coverage.hit("buggify." + site.name)
        simulation.log.record(simulation.now.nanoseconds, -1, .buggify, 0, 0, site.name)
        return true
    }
}
