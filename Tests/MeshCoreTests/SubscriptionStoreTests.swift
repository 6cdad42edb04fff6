import MeshCore
import Synchronization
import Testing

@Suite struct SubscriptionStoreTests {
    private func commit(_ store: InMemorySubscriptionStore, _ batch: StateBatch) -> Result<Void, MeshError> {
        let out = Mutex<Result<Void, MeshError>?>(nil)
        store.commit(batch) { r in out.withLock { $0 = r } }
        return out.withLock { $0! }
    }
    private func rows(_ store: InMemorySubscriptionStore, _ ns: String) -> [StateRow] {
        let out = Mutex<[StateRow]>([])
        store.rows(namespace: ns) { r in out.withLock { $0 = try! r.get() } }
        return out.withLock { $0 }
    }
    private func offsets(_ store: InMemorySubscriptionStore, _ c: String) -> [PartitionOffset] {
        let out = Mutex<[PartitionOffset]>([])
        store.offsets(consumer: c) { r in out.withLock { $0 = try! r.get() } }
        return out.withLock { $0 }
    }

    @Test func rowsAndOffsetsCommitTogether() throws {
        let store = InMemorySubscriptionStore()
        var batch = StateBatch()
        batch.consumer = "q1"
        batch.writes = [.put(StateKey("t", "b"), [2]), .put(StateKey("t", "a"), [1])]
        batch.offsets = [PartitionOffset(TopicPartition("in", 0), 10)]
        try commit(store, batch).get()
        #expect(rows(store, "t").map(\.key.key) == ["a", "b"])
        #expect(rows(store, "t").map(\.version) == [1, 1])
        #expect(offsets(store, "q1") == [PartitionOffset(TopicPartition("in", 0), 10)])
    }

    @Test func failedPreconditionChangesNothing() {
        let store = InMemorySubscriptionStore()
        var first = StateBatch()
        first.writes = [.put(StateKey("t", "a"), [1])]
        _ = commit(store, first)
        var conflicting = StateBatch()
        conflicting.consumer = "q1"
        conflicting.writes = [.put(StateKey("t", "a"), [9]), .put(StateKey("t", "z"), [9])]
        conflicting.offsets = [PartitionOffset(TopicPartition("in", 0), 5)]
        conflicting.expectedVersions = [StateKey("t", "a"): 0]
        guard case .failure(let e) = commit(store, conflicting) else { Issue.record("conflict accepted"); return }
        #expect(e.code == "state_conflict")
        #expect(rows(store, "t").map(\.value) == [[1]])
        #expect(offsets(store, "q1").isEmpty)
    }

    @Test func offsetsNeverMoveBackwards() {
        let store = InMemorySubscriptionStore()
        var a = StateBatch()
        a.consumer = "q"
        a.offsets = [PartitionOffset(TopicPartition("in", 1), 20)]
        _ = commit(store, a)
        var b = a
        b.offsets = [PartitionOffset(TopicPartition("in", 1), 19)]
        b.writes = [.put(StateKey("t", "x"), [1])]
        guard case .failure(let e) = commit(store, b) else { Issue.record("regression accepted"); return }
        #expect(e.code == "offset_regression")
        #expect(rows(store, "t").isEmpty)
    }
}
