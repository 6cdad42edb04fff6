import ArgumentParser
import Foundation
import MeshScenarios
import MeshSimulator

struct SimCheckDeterminism: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-determinism",
        abstract: "Run one seed in two separate processes (and once here) and compare the event-log hashes.",
        discussion: "Exits 1 if any two hashes differ."
    )

    @Argument(help: "Scenario YAML file.")
    var scenario: String

    @Option(help: "The seed to run.")
    var seed: UInt64 = 42

    func run() throws {
        let s = try loadScenario(scenario)
        let local = ScenarioRunner.run(s, seed: seed).hashString
        var hashes: [String] = []
        for i in 1...2 {
            let hash = try runChild()
            print("process \(i): \(hash)")
            hashes.append(hash)
        }
        print("in-process: \(local)")
        guard hashes.allSatisfy({ $0 == local }) else {
            print("determinism: FAIL (seed \(seed) gave different event logs)")
            print("find the divergence: light-mesh sim run \(scenario) --seed \(seed) --log a.log && light-mesh sim replay a.log")
            throw ExitCode(1)
        }
        print("determinism: PASS (\(local))")
    }

    private func runChild() throws -> String {
        let process = Process()
        let selfPath = FileManager.default.fileExists(atPath: "/proc/self/exe") ? "/proc/self/exe" : CommandLine.arguments[0]
        process.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: selfPath)) ?? selfPath)
        process.arguments = ["sim", "run", scenario, "--seed", String(seed)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        guard let last = lines.last, last.hasPrefix("hash: ") else {
            throw ValidationError("child run printed no hash (exit \(process.terminationStatus))")
        }
        return String(last.dropFirst("hash: ".count))
    }
}
