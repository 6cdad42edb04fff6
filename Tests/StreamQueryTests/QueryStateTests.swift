import Foundation
import MeshCore
import StreamQuery
import Synchronization
import Testing

@Suite struct QueryStateTests {
    func query() throws -> PersistentQuery {
        var catalog = Catalog()
        guard case .createSource(let create) = try SQLParser.parse("CREATE STREAM pageviews (id BIGINT KEY, userid STRING, page STRING, amount DECIMAL(10, 2)) WITH (kafka_topic='pv', value_format='JSON')"),
              case .createAsSelect(let ctas) = try SQLParser.parse("""
                CREATE TABLE per_user AS SELECT userid, COUNT(*) AS n, SUM(amount) AS total, COUNT_DISTINCT(page) AS pages, AVG(amount) AS mean
                FROM pageviews WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 HOUR) GROUP BY userid EMIT CHANGES
                """) else { throw PlanError("not the statements") }
        try catalog.add(SourceDescription(create))
        return try PersistentQuery(ctas, catalog: catalog, number: 1)
    }

    /// 3 partitions of records, in offset order per partition, interleaved.
    func records(_ count: Int, seed: UInt64) -> [ConsumerRecord] {
        var random = SeededRandom(seed: seed)
        var next: [Int64] = [0, 0, 0]
        return (0..<count).map { i in
            let p = Int(random.next() % 3)
            defer { next[p] += 1 }
            let json = #"{"userid":"u\#(random.next() % 5)","page":"p\#(random.next() % 4)","amount":\#(random.next() % 100).\#(random.next() % 10)}"#
            return ConsumerRecord(topicPartition: TopicPartition("pv", Int32(p)), offset: next[p], key: RowCodec.encodeKey(.bigint(Int64(i))),
                                  value: Array(json.utf8), headers: [], timestamp: Int64(i) * 37)
        }
    }

    func commit(_ store: InMemorySubscriptionStore, _ batch: StateBatch) throws {
        let result = Mutex<Result<Void, MeshError>?>(nil)
        store.commit(batch) { r in result.withLock { $0 = r } }
        try result.withLock { $0! }.get()
    }

    func load(_ store: InMemorySubscriptionStore, _ q: PersistentQuery) throws -> QueryStateTask {
        let rows = Mutex<[StateRow]>([]), offsets = Mutex<[PartitionOffset]>([])
        store.rows(namespace: q.id) { r in rows.withLock { $0 = (try? r.get()) ?? [] } }
        store.offsets(consumer: q.id) { r in offsets.withLock { $0 = (try? r.get()) ?? [] } }
        return try QueryStateTask(q, rows: rows.withLock { $0 }, offsets: offsets.withLock { $0 })
    }

    func contents(_ store: InMemorySubscriptionStore, _ id: String) -> ([StateRow], [PartitionOffset]) {
        let rows = Mutex<[StateRow]>([]), offsets = Mutex<[PartitionOffset]>([])
        store.rows(namespace: id) { r in rows.withLock { $0 = (try? r.get()) ?? [] } }
        store.offsets(consumer: id) { r in offsets.withLock { $0 = (try? r.get()) ?? [] } }
        return (rows.withLock { $0 }.map { StateRow(key: $0.key, value: $0.value, version: 0) }, offsets.withLock { $0 })
    }

    /// Crashes at every point of a batch's life against one uninterrupted run: before the commit,
    /// during it (applied, but the answer lost), after it while the outputs are being sent, and after
    /// the sink acknowledged them but before their outbox rows were deleted. Consumers resume from
    /// before the stored offsets. The store must end byte for byte the same; the sink, with
    /// redeliveries told apart by their sequence, must hold exactly the reference's outputs in order:
    /// nothing double-counted, no change lost.
    @Test func crashesNeverDoubleCountOrLoseAChange() throws {
        let q = try query()
        let input = records(3000, seed: 7)

        let reference = InMemorySubscriptionStore()
        var task = try load(reference, q)
        var referenceOutputs: [OutboxEntry] = []
        for chunk in stride(from: 0, to: input.count, by: 50) {
            let batch = task.process(Array(input[chunk..<min(chunk + 50, input.count)]))
            try commit(reference, batch.state)
            referenceOutputs += batch.outputs
            for out in batch.outputs { task.delivered(out.sequence) }
        }
        try commit(reference, task.process([]).state)
        #expect(referenceOutputs.map(\.sequence) == Array(0..<Int64(referenceOutputs.count)))

        let store = InMemorySubscriptionStore()
        var random = SeededRandom(seed: 99)
        var crashes: [String: Int] = [:]
        var sink: [OutboxEntry] = []  // every record the sink received, redeliveries included
        func restart() throws -> QueryStateTask {
            var t = try load(store, q)
            // What the store kept but the sink may not have: sent again, in order.
            for entry in t.outbox {
                sink.append(entry)
                t.delivered(entry.sequence)
            }
            return t
        }
        task = try restart()
        var pending = input[...]
        while !pending.isEmpty {
            let size = Int(random.next() % 80) + 1
            let batchRecords = Array(pending.prefix(size))
            let batch = task.process(batchRecords)
            let fate = random.next() % 8
            if fate == 1 || fate == 2 || fate == 3 {
                switch fate {
                case 1: crashes["before the commit", default: 0] += 1
                case 2:  // COMMIT applied, its answer lost: the caller cannot tell, and rebuilds
                    crashes["answer lost", default: 0] += 1
                    try commit(store, batch.state)
                default:  // committed; the sidecar dies partway through sending the outputs
                    crashes["while sending", default: 0] += 1
                    try commit(store, batch.state)
                    sink += batch.outputs.prefix(Int(random.next() % UInt64(batch.outputs.count + 1)))
                }
                task = try restart()
                // The consumer resumes from a committed offset that may lag the store's: some
                // records already counted come again.
                let rewind = Int(random.next() % 30)
                let consumed = input.count - pending.count + (fate == 1 ? 0 : batchRecords.count)
                pending = input[max(0, consumed - rewind)...]
                continue
            }
            try commit(store, batch.state)
            sink += batch.outputs
            for out in batch.outputs { task.delivered(out.sequence) }
            if fate == 4 {
                // Acknowledged, but the sidecar dies before a batch deletes the outbox rows.
                crashes["before the outbox delete", default: 0] += 1
                task = try restart()
            }
            pending = pending.dropFirst(batchRecords.count)
        }
        try commit(store, task.process([]).state)
        #expect(crashes.count == 4 && crashes.values.allSatisfy { $0 > 5 }, "\(crashes)")
        let (rowsA, offsetsA) = contents(reference, q.id)
        let (rowsB, offsetsB) = contents(store, q.id)
        #expect(offsetsA == offsetsB)
        #expect(rowsA == rowsB)
        #expect(!rowsB.contains { $0.key.key.hasPrefix("o/") }, "acknowledged outputs leave the outbox")
        // A redelivery is the same record under the same sequence; without them, the reference.
        var bySequence: [Int64: OutboxEntry] = [:]
        for entry in sink {
            if let seen = bySequence[entry.sequence] {
                #expect(seen == entry, "sequence \(entry.sequence) came back as another record")
            }
            bySequence[entry.sequence] = entry
        }
        #expect(bySequence.values.sorted { $0.sequence < $1.sequence } == referenceOutputs)
        #expect(sink.count > referenceOutputs.count, "some outputs were sent again")
        let header = sink.first?.record.headers.last
        #expect(header == KafkaHeader(OutboxEntry.sequenceHeader, Array("\(sink.first!.sequence)".utf8)))
    }

    @Test func anOutboxRowThatDoesNotReadIsRefusedNotTrapped() throws {
        let q = try query()
        var sequence: [UInt8] = []
        for b in [0, 0, 0, 0, 0, 0, 0, 9] as [UInt8] { sequence.append(b) }
        let rows: [[StateRow]] = [
            [StateRow(key: StateKey(q.id, "o/0000000000000000"), value: [1, 2, 3], version: 1)],
            // An entry at or past the stored next sequence: a sequence would be reused.
            [StateRow(key: StateKey(q.id, "o/0000000000000009"), value: OutboxEntryBytes.entry(9), version: 1),
             StateRow(key: StateKey(q.id, "s"), value: sequence, version: 1)],
            // An entry under another sequence's key.
            [StateRow(key: StateKey(q.id, "o/0000000000000001"), value: OutboxEntryBytes.entry(2), version: 1)],
        ]
        for r in rows {
            #expect(throws: StateUnreadable.self) { try QueryStateTask(q, rows: r, offsets: []) }
        }
        var ten: [UInt8] = sequence
        ten[7] = 10
        let kept = try QueryStateTask(q, rows: [StateRow(key: StateKey(q.id, "o/0000000000000009"), value: OutboxEntryBytes.entry(9), version: 1),
                                                StateRow(key: StateKey(q.id, "s"), value: ten, version: 1)], offsets: [])
        #expect(kept.outbox.map(\.sequence) == [9])
        #expect(kept.outbox.first?.record == ProducerRecord(topic: "t", value: nil))
    }

    @Test func aRowThatDoesNotReadIsRefusedNotTrapped() throws {
        let q = try query()
        for bytes: [UInt8] in [[], [0, 0, 0, 0, 0, 0, 0, 1], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 6], Array(repeating: 11, count: 200)] {
            #expect(throws: StateUnreadable.self) {
                try QueryStateTask(q, rows: [StateRow(key: StateKey(q.id, "g/00"), value: bytes, version: 1)], offsets: [])
            }
        }
    }
}

/// A well-formed outbox row for `sequence`, written the way the task writes one.
enum OutboxEntryBytes {
    static func entry(_ sequence: Int64) -> [UInt8] {
        var out: [UInt8] = []
        func int(_ n: Int64) { for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: UInt64(bitPattern: n) >> UInt64(shift))) } }
        int(sequence)
        int(1); out.append(UInt8(ascii: "t"))  // topic "t"
        out.append(0)  // no partition
        out.append(0)  // no key
        out.append(0)  // no value
        int(0)  // no headers
        out.append(0)  // no timestamp
        return out
    }
}
