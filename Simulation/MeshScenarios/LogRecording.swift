import MeshCore
import MeshConfig
import Foundation
import MeshSimulator

/// Writes a run's event log to a file: a header naming the scenario, seed and fault profile, one line
/// per event, and the final hash. `light-mesh sim replay` reads it back.
public final class LogFileWriter: LogSink {
    private let handle: FileHandle
    private var buffer = ""

    public init(path: String, scenario: Scenario, seed: UInt64, profile: FaultProfile) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw ConfigError(key: "", "cannot write log file \(path)")
        }
        handle = h
        buffer += "# light-mesh sim log v1\n"
        buffer += "# scenario: \(scenario.path)\n"
        buffer += "# scenario-hash: \(EventLog.format(hash: scenario.contentHash))\n"
        buffer += "# seed: \(seed)\n"
        buffer += "# profile: \(profile)\n"
        buffer += "# platform: \(RecordedLog.platform)\n"
    }

    public func line(_ number: Int, _ text: String) {
        buffer += text
        buffer += "\n"
        if buffer.utf8.count > 1 << 16 { flush() }
    }

    /// Writes the trailer and closes the file.
    public func finish(_ result: RunResult) {
        buffer += "# events: \(result.logLines)\n# hash: \(result.hashString)\n"
        flush()
        try? handle.close()
    }

    private func flush() {
        handle.write(Data(buffer.utf8))
        buffer = ""
    }
}

/// A recorded log, parsed.
public struct RecordedLog {
    public var scenarioPath: String
    public var scenarioHash: String
    public var seed: UInt64
    public var profile: FaultProfile
    public var lines: [Substring]
    public var hash: String?
    /// The platform that recorded it, for the record: draws use only IEEE-754 basic operations
    /// (``PortableMath``), so a log replays the same on another platform.
    public var platform: String?

    /// This build's platform, as logs name it.
    public static var platform: String {
        #if os(Linux)
        let os = "linux"
        #elseif os(macOS)
        let os = "macos"
        #else
        let os = "other"
        #endif
        #if arch(x86_64)
        return os + "-x86_64"
        #elseif arch(arm64)
        return os + "-arm64"
        #else
        return os + "-other"
        #endif
    }

    public init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ConfigError(key: "", "cannot read log \(path)") }
        var header: [String: String] = [:]
        var lines: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            if line.hasPrefix("# ") {
                let body = line.dropFirst(2)
                if let colon = body.firstIndex(of: ":") {
                    header[String(body[..<colon])] = String(body[body.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                }
            } else {
                lines.append(line)
            }
        }
        guard let scenario = header["scenario"], let seedText = header["seed"], let seed = UInt64(seedText), let profile = header["profile"] else {
            throw ConfigError(key: "", "\(path) is not a light-mesh simulation log (missing scenario, seed or profile header)")
        }
        self.scenarioPath = scenario
        self.scenarioHash = header["scenario-hash"] ?? ""
        self.seed = seed
        self.profile = try FaultProfile(line: profile)
        self.lines = lines
        self.hash = header["hash"]
        self.platform = header["platform"]
    }
}

/// Compares a re-run against a recorded log line by line and remembers the first divergence.
public final class LogComparer: LogSink {
    private let expected: [Substring]
    public private(set) var firstDivergence: (line: Int, expected: String, actual: String)?

    public init(expected: [Substring]) { self.expected = expected }

    public func line(_ number: Int, _ text: String) {
        guard firstDivergence == nil else { return }
        let want = number <= expected.count ? String(expected[number - 1]) : "<end of recorded log>"
        if want != text { firstDivergence = (number, want, text) }
    }

    /// Call after the run: a recording with more lines than the re-run diverges at its end.
    public func finish(actualLines: Int) {
        if firstDivergence == nil && actualLines < expected.count {
            firstDivergence = (actualLines + 1, String(expected[actualLines]), "<end of re-run>")
        }
    }
}
