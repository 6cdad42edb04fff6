import MeshCore
import MeshConfig
import ArgumentParser
import Foundation
import MeshScenarios
import MeshSimulator

struct SimRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one seed of a scenario; the last line printed is the event-log hash.",
        discussion: "Exits 1 if an invariant was violated, after printing the seed, the fault profile and the command that replays it."
    )

    @Argument(help: "Scenario YAML file, e.g. fixtures/scenarios/echo-datagram.yaml.")
    var scenario: String

    @Option(help: "The run's seed; every random draw derives from it.")
    var seed: UInt64 = 1

    @Option(help: "Write the full event log to this file (replay it with `light-mesh sim replay`).")
    var log: String?

    @Option(help: "Use this fault profile (as printed by a run) instead of drawing one from the seed.")
    var profile: String?

    func run() throws {
        let s = try loadScenario(scenario)
        let fixed = try profile.map { try FaultProfile(line: $0) }
        let chosen = fixed ?? s.faults.draw(seed: seed)
        let writer = try log.map { try LogFileWriter(path: $0, scenario: s, seed: seed, profile: chosen) }
        let result = ScenarioRunner.run(s, seed: seed, profile: chosen, sink: writer)
        writer?.finish(result)
        report(result, scenario: s)
        if let log { print("log: \(log) (\(result.logLines) lines)") }
        print("hash: \(result.hashString)")
        if !result.passed { throw ExitCode(1) }
    }
}

/// Loads a scenario, turning configuration errors into a clean message and exit code 2.
func loadScenario(_ path: String) throws -> Scenario {
    do {
        return try Scenario.load(path: path)
    } catch let error as ConfigError {
        FileHandle.standardError.write(Data("error: \(path): \(error)\n".utf8))
        throw ExitCode(2)
    }
}

/// Prints one run's summary, and on failure everything needed to reproduce it.
func report(_ r: RunResult, scenario: Scenario) {
    let wall = max(r.wallTime.seconds, 1e-9)
    print("scenario: \(scenario.name) (\(scenario.path))")
    print("seed: \(r.seed)")
    print("profile: \(r.profile)")
    print("operations: ok=\(r.operations.ok) failed=\(r.operations.failed) unknown=\(r.operations.unknown)")
    print(String(format: "events: %d in %.3fs wall (%.0f events/s); virtual %.3fs (%.1fx wall)",
                 r.events, wall, Double(r.events) / wall, r.virtualTime.seconds, r.virtualTime.seconds / wall))
    if r.passed {
        print("result: PASS")
    } else {
        print("result: FAIL")
        for v in r.violations { print("violation: \(v)") }
        print("replay: \(r.replayCommand(scenarioPath: scenario.path))")
    }
}
