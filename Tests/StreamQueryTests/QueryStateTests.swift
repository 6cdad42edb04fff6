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

    /// Crashes between processing and commit, and consumers that resume from before the stored
    /// offsets, against one uninterrupted run: the store ends byte for byte the same, and the last
    /// row output for every key and window is the same. Nothing double-counted, nothing lost.
    @Test func crashesNeverDoubleCountOrLoseAChange() throws {
        let q = try query()
        let input = records(3000, seed: 7)

        let reference = InMemorySubscriptionStore()
        var task = try load(reference, q)
        var referenceLast: [[UInt8]: [UInt8]?] = [:]
        for chunk in stride(from: 0, to: input.count, by: 50) {
            let batch = task.process(Array(input[chunk..<min(chunk + 50, input.count)]))
            try commit(reference, batch.state)
            for out in batch.outputs { referenceLast[out.key ?? []] = out.value }
        }

        let store = InMemorySubscriptionStore()
        var random = SeededRandom(seed: 99)
        var crashed = 0
        task = try load(store, q)
        var last: [[UInt8]: [UInt8]?] = [:]
        var cursor: [Int32: Int64] = [:]  // what the "consumer" delivers next, per partition
        var pending = input[...]
        while !pending.isEmpty {
            let size = Int(random.next() % 80) + 1
            let batchRecords = Array(pending.prefix(size))
            let batch = task.process(batchRecords)
            if random.next() % 5 == 0 {
                // The sidecar dies before the commit: the batch is gone; the next one reads the store.
                crashed += 1
                task = try load(store, q)
                // The consumer resumes from a committed offset that may lag the store's: some
                // records already counted come again.
                let rewind = Int(random.next() % 30)
                let consumed = input.count - pending.count
                pending = input[max(0, consumed - rewind)...]
                continue
            }
            try commit(store, batch.state)
            for out in batch.outputs { last[out.key ?? []] = out.value }
            for r in batchRecords { cursor[r.topicPartition.partition] = r.offset + 1 }
            pending = pending.dropFirst(batchRecords.count)
        }
        #expect(crashed > 10)
        let (rowsA, offsetsA) = contents(reference, q.id)
        let (rowsB, offsetsB) = contents(store, q.id)
        #expect(offsetsA == offsetsB)
        #expect(rowsA == rowsB)
        #expect(last == referenceLast)
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
