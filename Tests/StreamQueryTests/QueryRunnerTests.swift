import MeshCore
import StreamQuery
import Synchronization
import Testing

/// The runner driven by a synchronous driver in the test: a consumer over fixed partitions, the
/// in-memory store with commits that fail before or after applying, a sink that refuses sends, and
/// crashes that lose the runner whole. Checked against the outputs of one uninterrupted task.
@Suite struct QueryRunnerTests {
    let states = QueryStateTests()

    /// A synchronous world for one runner at a time.
    final class World {
        let store = InMemorySubscriptionStore()
        let all: [ConsumerRecord]
        let input: [TopicPartition: [ConsumerRecord]]
        var position: [TopicPartition: Int64] = [:]
        var sink: [OutboxEntry] = []
        var timers: [QueryRunner.Timer] = []
        var random: SeededRandom
        var faults: [String: Int] = [:]
        var halted: String?

        init(_ records: [ConsumerRecord], seed: UInt64) {
            all = records
            input = Dictionary(grouping: records, by: \.topicPartition)
            random = SeededRandom(seed: seed)
        }

        func chance(_ oneIn: UInt64) -> Bool { random.next() % oneIn == 0 }

        /// Carries out `actions`, feeding the runner's answers back, until it waits for a poll.
        func run(_ runner: inout QueryRunner, _ actions: [QueryRunner.Action]) -> UInt64? {
            var queue = actions[...]
            var waitingPoll: UInt64?
            while let action = queue.popFirst() {
                switch action {
                case .loadState(let ticket, let namespace):
                    if chance(10) {
                        faults["load failed", default: 0] += 1
                        queue += runner.handle(.stateLoaded(ticket: ticket, .failure(MeshError(code: "store_unavailable", message: "down"))))
                        continue
                    }
                    let rows = Mutex<[StateRow]>([]), offsets = Mutex<[PartitionOffset]>([])
                    store.rows(namespace: namespace) { r in rows.withLock { $0 = (try? r.get()) ?? [] } }
                    store.offsets(consumer: namespace) { r in offsets.withLock { $0 = (try? r.get()) ?? [] } }
                    queue += runner.handle(.stateLoaded(ticket: ticket, .success((rows.withLock { $0 }, offsets.withLock { $0 }))))
                case .seek(let targets):
                    #expect(Set(targets.keys) == Set(input.keys))
                    for (tp, target) in targets {
                        switch target {
                        case .offset(let o): position[tp] = o
                        case .beginning: position[tp] = 0
                        case .end: position[tp] = Int64(input[tp]?.count ?? 0)
                        }
                    }
                case .poll(let ticket, let max, _):
                    waitingPoll = ticket
                    _ = max
                case .commit(let ticket, let batch):
                    let fate = random.next() % 12
                    if fate == 0 {
                        faults["commit refused", default: 0] += 1
                        queue += runner.handle(.committed(ticket: ticket, .failure(MeshError(code: "store_unavailable", message: "down"))))
                        continue
                    }
                    let result = Mutex<Result<Void, MeshError>?>(nil)
                    store.commit(batch) { r in result.withLock { $0 = r } }
                    if fate == 1 {
                        faults["commit answer lost", default: 0] += 1
                        queue += runner.handle(.committed(ticket: ticket, .failure(MeshError(code: "store_unavailable", message: "lost"))))
                    } else {
                        queue += runner.handle(.committed(ticket: ticket, result.withLock { $0! }))
                    }
                case .send(let entries):
                    for entry in entries {
                        if chance(25) {
                            faults["send refused", default: 0] += 1
                            queue += runner.handle(.sent(sequence: entry.sequence, .failure(KafkaError(code: "timed_out", message: "no"))))
                        } else {
                            sink.append(entry)
                            queue += runner.handle(.sent(sequence: entry.sequence, .success(())))
                        }
                    }
                case .armTimer(let timer, _):
                    timers.append(timer)
                case .halt(let why):
                    halted = why
                }
            }
            return waitingPoll
        }

        /// Up to `max` records from the consumer's positions, in the order they were written
        /// across partitions (so one operator over all partitions sees what the reference saw).
        func poll(_ max: Int) -> [ConsumerRecord] {
            let n = Int(random.next() % UInt64(max)) + 1
            var out: [ConsumerRecord] = []
            for record in all where out.count < n && record.offset == (position[record.topicPartition] ?? 0) {
                out.append(record)
                position[record.topicPartition] = record.offset + 1
            }
            return out
        }

        var drained: Bool { input.allSatisfy { tp, records in (position[tp] ?? 0) == Int64(records.count) } }
    }

    @Test func failuresAndCrashesLeaveTheSinkAsOneUninterruptedRun() throws {
        let q = try states.query()
        let records = states.records(2000, seed: 11)
        var reference = try QueryStateTask(q, rows: [], offsets: [])
        let expected = reference.process(records).outputs

        let world = World(records, seed: 5)
        let partitions = Array(Set(records.map(\.topicPartition))).sorted { $0.partition < $1.partition }
        var settings = QueryRunner.Settings()
        settings.maxBatchRecords = 40
        var runner = QueryRunner(q, partitions: partitions, settings: settings)
        var ticket = world.run(&runner, runner.handle(.started))
        var crashes = 0
        var idle = 0
        for _ in 0..<20_000 {
            if world.drained && runner.task.map({ $0.outbox.isEmpty && !$0.hasAcknowledgements }) == true { idle += 1 }
            if idle > 3 { break }
            if world.chance(12) {
                crashes += 1
                runner = QueryRunner(q, partitions: partitions, settings: settings)
                world.timers = []
                ticket = world.run(&runner, runner.handle(.started))
                continue
            }
            // Timers fire before the next poll answers, in the order they were armed.
            let timers = world.timers
            world.timers = []
            for timer in timers { ticket = world.run(&runner, runner.handle(.timerFired(timer))) ?? ticket }
            guard let t = ticket else { continue }
            let got = world.poll(settings.maxBatchRecords)
            ticket = world.run(&runner, runner.handle(.polled(ticket: t, got)))
            // A poll answered after a rebuild (its ticket is old) is dropped, not processed.
            if !got.isEmpty, world.chance(15) { #expect(runner.handle(.polled(ticket: t, got)).isEmpty) }
        }
        #expect(world.halted == nil)
        #expect(world.drained && idle > 3, "the runner finished the input")
        #expect(crashes > 5 && world.faults.count == 4, "\(crashes) crashes, faults \(world.faults)")
        var bySequence: [Int64: OutboxEntry] = [:]
        for entry in world.sink {
            if let seen = bySequence[entry.sequence] { #expect(seen == entry) }
            bySequence[entry.sequence] = entry
        }
        let got = bySequence.values.sorted { $0.sequence < $1.sequence }
        // The sink, redeliveries dropped, is the uninterrupted run's output (compared without
        // printing thousands of records).
        #expect(got.count == expected.count)
        let firstDifference = got.indices.first { $0 < expected.count && got[$0] != expected[$0] }
        #expect(firstDifference == nil, "sequence \(firstDifference.map { got[$0].sequence } ?? -1) differs from the uninterrupted run")
    }

    /// Throttled with three outputs of one key on their way: the first is refused, so all three go
    /// again; the first copies of the other two and the second of the first are delivered, and the
    /// last answers are refusals of copies whose outputs were already delivered. The runner must
    /// poll again: no answer is left to wake it.
    @Test func aThrottledRunnerPollsAgainWhenItsLastAnswersAreRefusalsOfDeliveredOutputs() throws {
        var settings = QueryRunner.Settings()
        settings.maxOutputsInFlight = 2
        var runner = QueryRunner(try states.query(), partitions: [TopicPartition("pv", 0)], settings: settings)
        func ticket(_ actions: [QueryRunner.Action]) -> UInt64? {
            for case .poll(let t, _, _) in actions { return t }
            for case .commit(let t, _) in actions { return t }
            for case .loadState(let t, _) in actions { return t }
            return nil
        }
        var t = try #require(ticket(runner.handle(.started)))
        t = try #require(ticket(runner.handle(.stateLoaded(ticket: t, .success(([], []))))))
        let records = (0..<3).map { i in
            ConsumerRecord(topicPartition: TopicPartition("pv", 0), offset: Int64(i), key: nil,
                           value: Array(#"{"userid":"u1","page":"p","amount":1.0}"#.utf8), headers: [], timestamp: Int64(i))
        }
        t = try #require(ticket(runner.handle(.polled(ticket: t, records))))
        let committed = runner.handle(.committed(ticket: t, .success(())))
        guard case .send(let outputs)? = committed.first, outputs.count == 3 else { Issue.record("not three outputs: \(committed)"); return }
        #expect(runner.phase == .throttled)
        let (s0, s1, s2) = (outputs[0].sequence, outputs[1].sequence, outputs[2].sequence)
        let refused = KafkaError(code: "timed_out", message: "no")
        guard case .send(let again)? = runner.handle(.sent(sequence: s0, .failure(refused))).first else { Issue.record("no resend"); return }
        #expect(again.map(\.sequence) == [s0, s1, s2], "the refused output and its key's later ones go again")
        #expect(runner.handle(.sent(sequence: s1, .success(()))).isEmpty)
        #expect(runner.handle(.sent(sequence: s2, .success(()))).isEmpty)
        #expect(runner.handle(.sent(sequence: s0, .success(()))).isEmpty)
        var last = runner.handle(.sent(sequence: s1, .failure(refused)))
        last += runner.handle(.sent(sequence: s2, .failure(refused)))
        #expect(ticket(last) != nil && runner.phase == .polling, "still throttled after every answer: \(last)")
        #expect(runner.inFlight == 0)
    }
}
