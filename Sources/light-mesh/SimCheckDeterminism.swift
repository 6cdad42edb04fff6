import ArgumentParser
import Foundation
import MeshScenarios
import MeshSimulator

struct SimCheckDeterminism: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-determinism",
        abstract: "Run seeds in two separate processes each (and once here) and compare the event-log hashes.",
        discussion: "Runs --seeds consecutive seeds from --seed (default 5). Exits 1 if any two hashes of one seed differ."
    )

    @Argument(help: "Scenario YAML file.")
    var scenario: String

    @Option(help: "The first seed to run.")
    var seed: UInt64 = 42

    @Option(help: "How many consecutive seeds to check.")
    var seeds: Int = 5

    func validate() throws {
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
    }

    func run() throws {
        let s = try loadScenario(scenario)
        var failed: [UInt64] = []
        for seed in seed..<(seed + UInt64(seeds)) {
            let local = ScenarioRunner.run(s, seed: seed).hashString
            let children = try (1...2).map { _ in try runChild(seed) }
            let same = children.allSatisfy { $0 == local }
            print("seed \(seed): in-process \(local), processes \(children.joined(separator: " "))\(same ? "" : "  DIFFER")")
            if !same { failed.append(seed) }
        }
        guard failed.isEmpty else {
            print("determinism: FAIL (seed(s) \(failed.map(String.init).joined(separator: ", ")) gave different event logs)")
            print("find the divergence: light-mesh sim run \(scenario) --seed \(failed[0]) --log a.log && light-mesh sim replay a.log")
            throw ExitCode(1)
        }
        print("determinism: PASS (\(seeds) seed(s) from \(seed), two processes each)")
    }

    private func runChild(_ seed: UInt64) throws -> String {
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
