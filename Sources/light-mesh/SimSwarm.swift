import ArgumentParser
import Foundation
import MeshScenarios
import MeshSimulator

struct SimSwarm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm",
        abstract: "Run many seeds of a scenario, each with its own fault profile; print coverage and a pass/fail summary.",
        discussion: "Exits 1 if any run violated an invariant or an expect_sometimes entry was never hit."
    )

    @Argument(help: "Scenario YAML file.")
    var scenario: String

    @Option(help: "How many seeds to run.")
    var seeds: Int = 200

    @Option(help: "The first seed; seeds run from here upwards.")
    var firstSeed: UInt64 = 1

    @Flag(help: "Fail only on violated invariants, not on expect_sometimes entries no seed reached (for exploration blocks of random seeds).")
    var invariantsOnly = false

    @Flag(help: "Start no new seed once one has failed (the report then covers only the seeds that ran).")
    var failFast = false

    @Option(help: "Runs in parallel (default: the number of cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        let s = try loadScenario(scenario)
        let list = (0..<UInt64(seeds)).map { firstSeed + $0 }
        print("swarm \(s.name): seeds \(firstSeed)..\(firstSeed + UInt64(seeds) - 1)")
        let report = Swarm.run(s, seeds: list, jobs: jobs, failFast: failFast)
        // In seed order, whatever order the runs finished in: the same swarm prints the same lines.
        for r in report.failures.sorted(by: { $0.seed < $1.seed }).prefix(5) {
            print("FAIL seed \(r.seed): \(r.violations.first.map(String.init(describing:)) ?? "")\n  profile: \(r.profile)\n  replay: \(r.replayCommand(scenarioPath: scenario))")
        }
        print("coverage (runs that hit it / \(report.runs), total hits):")
        let width = report.coverage.map(\.name.count).max() ?? 10
        for row in report.coverage {
            let name = row.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let flag = row.runs == 0 ? "  NEVER" : ""
            print("  \(name)  \(String(format: "%5d", row.runs))  \(String(format: "%9d", row.hits))\(flag)")
        }
        for name in report.missedExpectations { print("missed: expect_sometimes '\(name)' was never hit") }
        let failed = report.failures.count
        let wall = max(report.wallTime.seconds, 1e-9)
        print(String(format: "swarm %@: %d runs, %d events in %.2fs wall (%.0f events/s, %d jobs)",
                     s.name, report.runs, report.events, wall, Double(report.events) / wall, jobs))
        if let first = report.failures.min(by: { $0.seed < $1.seed }) {
            print("first failing seed: \(first.seed)\n  profile: \(first.profile)\n  replay: \(first.replayCommand(scenarioPath: scenario))")
        }
        print("swarm: \(report.runs - failed) passed, \(failed) failed")
        if !report.failures.isEmpty || (!invariantsOnly && !report.missedExpectations.isEmpty) { throw ExitCode(1) }
    }
}
