import MeshCore
import MeshConfig
import ArgumentParser
import Foundation
import MeshScenarios
import MeshSimulator

struct SimReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-run the seed and fault profile recorded in a log (from `sim run --log`) and report the first divergence.",
        discussion: "Exits 0 when the re-run matches the recording line for line, 1 when it diverges."
    )

    @Argument(help: "A log written by `light-mesh sim run SCENARIO --seed N --log FILE`.")
    var log: String

    @Option(help: "Use this scenario file instead of the path recorded in the log.")
    var scenario: String?

    func run() throws {
        let recorded: RecordedLog
        do { recorded = try RecordedLog(path: log) } catch let e as ConfigError {
            FileHandle.standardError.write(Data("error: \(e)\n".utf8))
            throw ExitCode(2)
        }
        let s = try loadScenario(scenario ?? recorded.scenarioPath)
        if !recorded.scenarioHash.isEmpty && recorded.scenarioHash != EventLog.format(hash: s.contentHash) {
            print("warning: \(s.path) changed since the log was recorded; a divergence may come from that")
        }
        if let platform = recorded.platform, platform != RecordedLog.platform {
            print("note: recorded on \(platform), replaying on \(RecordedLog.platform) (draws use only IEEE-754 basic operations, so they match)")
        }
        let comparer = LogComparer(expected: recorded.lines)
        let result = ScenarioRunner.run(s, seed: recorded.seed, profile: recorded.profile, sink: comparer)
        comparer.finish(actualLines: result.logLines)
        report(result, scenario: s)
        if let d = comparer.firstDivergence {
            print("divergence at event \(d.line):\n  recorded: \(d.expected)\n  re-run:   \(d.actual)")
            print("hash: \(result.hashString) (recorded \(recorded.hash ?? "none"))")
            throw ExitCode(1)
        }
        print("replay: identical, \(result.logLines) events")
        print("hash: \(result.hashString)")
    }
}
