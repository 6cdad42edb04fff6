import Dispatch
import Foundation
import MeshSimulator
import Synchronization

/// The result of running many seeds of one scenario.
public struct SwarmReport: Sendable {
    public var scenario: Scenario
    public var runs: Int
    public var failures: [RunResult]
    /// For each coverage name: in how many runs it was hit, and how many hits in all. Sorted by name.
    public var coverage: [(name: String, runs: Int, hits: Int)]
    /// `expect_sometimes` names that no run hit.
    public var missedExpectations: [String]
    public var events: Int
    public var wallTime: Duration

    public var passed: Bool { failures.isEmpty && missedExpectations.isEmpty }
}

/// Runs seeds of a scenario in parallel (each run is single-threaded and independent).
public enum Swarm {
    /// With `failFast`, no new seed starts once one has failed (the runs under way finish), so a
    /// swarm that only needs to know whether something fails stops early.
    public static func run(_ scenario: Scenario, seeds: [UInt64], jobs: Int, failFast: Bool = false,
                           onRun: (@Sendable (RunResult) -> Void)? = nil) -> SwarmReport {
        let start = ContinuousClock.now
        let next = Atomic<Int>(0)
        let failedOnce = Atomic<Bool>(false)
        let results = Mutex<[RunResult?]>(Array(repeating: nil, count: seeds.count))
        DispatchQueue.concurrentPerform(iterations: max(1, min(jobs, seeds.count))) { _ in
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < seeds.count, !(failFast && failedOnce.load(ordering: .relaxed)) else { return }
                let result = ScenarioRunner.run(scenario, seed: seeds[i])
                if !result.passed { failedOnce.store(true, ordering: .relaxed) }
                onRun?(result)
                results.withLock { $0[i] = result }
            }
        }
        let all = results.withLock { $0.compactMap { $0 } }
        var table: [String: (runs: Int, hits: Int)] = [:]
        for name in scenario.expectSometimes { table[name] = (0, 0) }
        for r in all {
            for (name, hits) in r.coverage {
                let old = table[name] ?? (0, 0)
                table[name] = (old.runs + 1, old.hits + hits)
            }
        }
        let coverage = table.sorted { $0.key < $1.key }.map { ($0.key, $0.value.runs, $0.value.hits) }
        let missed = scenario.expectSometimes.filter { (table[$0]?.runs ?? 0) == 0 }
        return SwarmReport(
            scenario: scenario, runs: all.count, failures: all.filter { !$0.passed }, coverage: coverage,
            missedExpectations: missed, events: all.reduce(0) { $0 + $1.events }, wallTime: ContinuousClock.now - start)
    }
}
