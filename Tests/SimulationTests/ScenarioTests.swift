import MeshCore
import MeshScenarios
import MeshSimulator
import Testing

@Suite struct ScenarioTests {
    static let scenarios = ["fixtures/scenarios/echo-datagram.yaml", "fixtures/scenarios/echo-stream.yaml", "fixtures/scenarios/echo-incident.yaml", "fixtures/scenarios/kafka-pipeline.yaml", "fixtures/scenarios/http-egress.yaml"]

    @Test(arguments: scenarios)
    func sameSeedSameHashDifferentSeedDifferentHash(path: String) throws {
        let s = try Scenario.load(path: fixture(path))
        let a = ScenarioRunner.run(s, seed: 42), b = ScenarioRunner.run(s, seed: 42), c = ScenarioRunner.run(s, seed: 43)
        #expect(a.hash == b.hash)
        #expect(a.events == b.events)
        #expect(a.hash != c.hash)
        #expect(a.passed, "\(a.violations)")
        #expect(a.operations.ok > 100, "the workload made progress: \(a.operations)")
    }

    @Test func recordedLogReplaysIdenticallyAndAnEditIsFound() throws {
        let s = try Scenario.load(path: fixture("fixtures/scenarios/echo-stream.yaml"))
        final class Lines: LogSink {
            var lines: [Substring] = []
            func line(_ number: Int, _ text: String) { lines.append(Substring(text)) }
        }
        let recording = Lines()
        let original = ScenarioRunner.run(s, seed: 9, sink: recording)
        #expect(recording.lines.count == original.logLines)

        let same = LogComparer(expected: recording.lines)
        let rerun = ScenarioRunner.run(s, seed: 9, profile: original.profile, sink: same)
        same.finish(actualLines: rerun.logLines)
        #expect(same.firstDivergence == nil)
        #expect(rerun.hash == original.hash)

        var edited = recording.lines
        edited[99] = "0 nobody nothing 0 0"
        let diff = LogComparer(expected: edited)
        _ = ScenarioRunner.run(s, seed: 9, profile: original.profile, sink: diff)
        #expect(diff.firstDivergence?.line == 100)
    }

    @Test func profileLineRoundTrips() throws {
        let s = try Scenario.load(path: fixture("fixtures/scenarios/echo-datagram.yaml"))
        for seed in UInt64(1)...50 {
            let p = s.faults.draw(seed: seed)
            #expect(try FaultProfile(line: p.description) == p)
        }
    }

    @Test func invalidScenariosAreRefusedNamingTheKey() {
        let base = """
            name: x
            hosts:
              - {name: s, role: echo-server}
              - {name: c, role: echo-client}

            """
        func error(_ extra: String) -> String? {
            do { _ = try Scenario.parse(base + extra, path: "t.yaml"); return nil } catch { return "\(error)" }
        }
        #expect(error("") == nil)
        #expect(error("workload: {deadlin: 1s}\n") == "workload.deadlin: unknown key")
        #expect(error("faults: {crash: {every: [1s, soon]}}\n") == "faults.crash.every: expected [low, high] durations")
        #expect(error("duration: ten\n")?.hasPrefix("duration: expected a duration") == true)
        #expect(error("faults: {loss: {p: 2}}\n") == "faults.loss.p: must be between 0 and 1, got 2.0")
        #expect(error("workload: {planted_bug: gremlins}\n")?.hasPrefix("workload.planted_bug: unknown bug") == true)
        #expect(error("schedule: [{at: 1s, crash: server-9}]\n")?.hasPrefix("schedule[0].crash: unknown host 'server-9'") == true)
        #expect(error("schedule: [{at: 1s, crash: s-0, heal: all}]\n") == "schedule[0]: needs exactly one of crash, restart, partition, heal, clog, unclog, hold, release")
        #expect(error("invariants: [echo.fast]\n")?.hasPrefix("invariants: unknown invariant 'echo.fast'") == true)
    }
}

@Suite struct PlantedBugTests {
    /// The swarm must catch a retry that reuses an attempt id, and the replay it prints must reproduce it.
    @Test func swarmFindsThePlantedBugAndTheReplayReproducesIt() throws {
        let planted = try Scenario.load(path: fixture("fixtures/planted/echo-reuse-request-id.yaml"))
        let report = Swarm.run(planted, seeds: Array(1...40), jobs: 2)
        let first = try #require(report.failures.min { $0.seed < $1.seed }, "the swarm missed the planted bug")
        #expect(first.violations.first?.invariant == "echo.right-response")

        let command = first.replayCommand(scenarioPath: planted.path)
        #expect(command == "light-mesh sim run \(planted.path) --seed \(first.seed)")
        let replay = ScenarioRunner.run(planted, seed: first.seed)
        #expect(replay.hash == first.hash)
        #expect(replay.violations == first.violations)

        // The same seeds without the bug pass: the failure is the bug's, not the checker's.
        let fixed = try Scenario.load(path: fixture("fixtures/scenarios/echo-datagram.yaml"))
        let clean = Swarm.run(fixed, seeds: Array(1...40), jobs: 2)
        #expect(clean.failures.isEmpty, "\(clean.failures.first?.violations ?? [])")
    }

    /// A route that retries POSTs after they may have been sent duplicates them; the upstream's check must say so.
    @Test func swarmCatchesDuplicatedUnsafeRequests() throws {
        let planted = try Scenario.load(path: fixture("fixtures/planted/http-retry-posts.yaml"))
        let report = Swarm.run(planted, seeds: Array(1...10), jobs: 2)
        let first = try #require(report.failures.min { $0.seed < $1.seed }, "duplicated POSTs went unnoticed")
        #expect(first.violations.first?.invariant == "http.no-duplicate-unsafe")
        let fixed = try Scenario.load(path: fixture("fixtures/scenarios/http-egress.yaml"))
        let same = ScenarioRunner.run(fixed, seed: first.seed)
        #expect(same.passed, "the same seed without retrying POSTs: \(same.violations)")
    }

    /// Relying on acks=1 loses acknowledged records on leader failover; the Kafka checker must say so.
    @Test func swarmCatchesRecordsLostByAcksOne() throws {
        let planted = try Scenario.load(path: fixture("fixtures/planted/kafka-acks1.yaml"))
        let report = Swarm.run(planted, seeds: Array(1...20), jobs: 2)
        let first = try #require(report.failures.min { $0.seed < $1.seed }, "acks=1 losses went unnoticed")
        #expect(first.violations.first?.invariant == "kafka.no-lost-ack")
        #expect(ScenarioRunner.run(planted, seed: first.seed).hash == first.hash)
    }

    /// Seeds that fail `kafka.all-consumed` when the simulated coordinator drops a member's events
    /// as it answers a heartbeat (the reply may be lost, and the member then holds partitions it
    /// never heard of; found as seed 698676655 by a CI exploration block). Events now stay queued
    /// until a later heartbeat says they arrived; with that one line undone, these seeds fail.
    @Test(arguments: [UInt64(11), 161])
    func kafkaSeedsThatLostAnAssignmentPass(seed: UInt64) throws {
        let s = try Scenario.load(path: fixture("fixtures/scenarios/kafka-pipeline.yaml"))
        let run = ScenarioRunner.run(s, seed: seed)
        #expect(run.passed, "\(run.violations)")
    }
}

@Suite struct ScheduleTests {
    @Test func scheduledFaultsHappenAtTheirTimes() throws {
        let s = try Scenario.parse("""
            name: t
            duration: 3s
            quiet: 1s
            hosts:
              - {name: server, count: 2, role: echo-server}
              - {name: client, role: echo-client}
            workload: {transport: stream}
            schedule:
              - {at: 500ms, crash: server-0}
              - {at: 900ms, restart: server-0}
            """, path: "t.yaml")
        final class Faults: LogSink {
            var lines: [String] = []
            func line(_ number: Int, _ text: String) { if text.contains(" fault ") { lines.append(text) } }
        }
        let faults = Faults()
        let r = ScenarioRunner.run(s, seed: 1, sink: faults)
        #expect(r.passed, "\(r.violations)")
        #expect(faults.lines == ["500000000 server-0 fault 0 0 crash", "900000000 server-0 fault 0 0 restart"])
    }
}
