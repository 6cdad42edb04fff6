import Foundation
import Logging
import MeshCore
import StatePostgres
import Synchronization
import Testing

/// The stores a contract test runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory
    /// A live Postgres at `LIGHT_MESH_TEST_POSTGRES` (a postgres:// URL; `ci/test` starts one and sets
    /// it). Without it these cases are skipped, and say so.
    case postgres

    var description: String { rawValue }

    static let postgresURL = ProcessInfo.processInfo.environment["LIGHT_MESH_TEST_POSTGRES"]
    private static let tables = Atomic<Int>(0)

    /// A store with tables of its own (a fresh prefix per call), or `nil` when Postgres is not configured.
    func make() async throws -> (any SubscriptionStore)? {
        switch self {
        case .memory:
            return InMemorySubscriptionStore()
        case .postgres:
            guard let url = Self.postgresURL else { return nil }
            var settings = try PostgresStoreSettings(url: url)
            settings.tablePrefix = "lmtest_\(getpid())_\(Self.tables.add(1, ordering: .relaxed).newValue)"
            let store = try PostgresSubscriptionStore(settings: settings, logger: Logger(label: "test.postgres"))
            try await store.prepare()
            return store
        }
    }
}

func commit(_ store: any SubscriptionStore, _ batch: StateBatch) async -> Result<Void, MeshError> {
    await withCheckedContinuation { c in store.commit(batch) { c.resume(returning: $0) } }
}

func rows(_ store: any SubscriptionStore, _ namespace: String) async throws -> [StateRow] {
    try await withCheckedContinuation { c in store.rows(namespace: namespace) { c.resume(returning: $0) } }.get()
}

func offsets(_ store: any SubscriptionStore, _ consumer: String) async throws -> [PartitionOffset] {
    try await withCheckedContinuation { c in store.offsets(consumer: consumer) { c.resume(returning: $0) } }.get()
}

/// The ``SubscriptionStore`` contract, the same cases for the in-memory store (the simulator's) and the
/// Postgres adapter (production's).
@Suite struct StoreContractTests {
    @Test(arguments: StoreKind.allCases)
    func rowsAndOffsetsCommitTogether(_ kind: StoreKind) async throws {
        guard let store = try await kind.make() else { return skipped(kind) }
        var batch = StateBatch()
        batch.consumer = "q1"
        batch.writes = [.put(StateKey("t", "b"), [2]), .put(StateKey("t", "a"), [1]), .put(StateKey("other", "a"), [])]
        batch.offsets = [PartitionOffset(TopicPartition("in", 0), 10), PartitionOffset(TopicPartition("in", 1), 3)]
        try await commit(store, batch).get()
        let t = try await rows(store, "t")
        #expect(t.map(\.key.key) == ["a", "b"] && t.map(\.value) == [[1], [2]] && t.map(\.version) == [1, 1])
        #expect(try await rows(store, "other").map(\.value) == [[]])
        // Keys are data (a GROUP BY value): a NUL or any Unicode is held as it is.
        var odd = StateBatch()
        odd.writes = [.put(StateKey("n\u{0}s", "k\u{0}é🙂"), [5])]
        odd.expectedVersions = [StateKey("n\u{0}s", "k\u{0}é🙂"): 0]
        try await commit(store, odd).get()
        #expect(try await rows(store, "n\u{0}s").map(\.key) == [StateKey("n\u{0}s", "k\u{0}é🙂")])
        #expect(try await offsets(store, "q1") == [PartitionOffset(TopicPartition("in", 0), 10), PartitionOffset(TopicPartition("in", 1), 3)])
        #expect(try await offsets(store, "q2").isEmpty)
    }

    @Test(arguments: StoreKind.allCases)
    func aVersionGrowsByOnePerPutAndADeleteStartsItAgain(_ kind: StoreKind) async throws {
        guard let store = try await kind.make() else { return skipped(kind) }
        let a = StateKey("t", "a"), b = StateKey("t", "b")
        var first = StateBatch()
        first.writes = [.put(a, [1]), .put(a, [2]), .put(b, [7])]
        try await commit(store, first).get()
        #expect(try await rows(store, "t").map(\.version) == [2, 1])
        var second = StateBatch()
        second.writes = [.put(a, [3]), .delete(b)]
        try await commit(store, second).get()
        var third = StateBatch()
        third.writes = [.delete(a), .put(a, [4]), .put(b, [8]), .delete(b)]
        try await commit(store, third).get()
        let after = try await rows(store, "t")
        #expect(after.map(\.key.key) == ["a"] && after.map(\.value) == [[4]] && after.map(\.version) == [1])
    }

    @Test(arguments: StoreKind.allCases)
    func aFailedPreconditionChangesNothing(_ kind: StoreKind) async throws {
        guard let store = try await kind.make() else { return skipped(kind) }
        var first = StateBatch()
        first.writes = [.put(StateKey("t", "a"), [1])]
        try await commit(store, first).get()
        var conflicting = StateBatch()
        conflicting.consumer = "q1"
        conflicting.writes = [.put(StateKey("t", "a"), [9]), .put(StateKey("t", "z"), [9])]
        conflicting.offsets = [PartitionOffset(TopicPartition("in", 0), 5)]
        conflicting.expectedVersions = [StateKey("t", "a"): 0]
        guard case .failure(let e) = await commit(store, conflicting) else { Issue.record("conflict accepted"); return }
        #expect(e.code == "state_conflict")
        #expect(try await rows(store, "t").map(\.value) == [[1]])
        #expect(try await offsets(store, "q1").isEmpty)
        conflicting.expectedVersions = [StateKey("t", "a"): 1, StateKey("t", "z"): 0]
        try await commit(store, conflicting).get()
        #expect(try await rows(store, "t").map(\.version) == [2, 1])
    }

    @Test(arguments: StoreKind.allCases)
    func offsetsNeverMoveBackwards(_ kind: StoreKind) async throws {
        guard let store = try await kind.make() else { return skipped(kind) }
        var a = StateBatch()
        a.consumer = "q"
        a.offsets = [PartitionOffset(TopicPartition("in", 1), 20)]
        try await commit(store, a).get()
        var b = a
        b.offsets = [PartitionOffset(TopicPartition("in", 1), 19)]
        b.writes = [.put(StateKey("t", "x"), [1])]
        guard case .failure(let e) = await commit(store, b) else { Issue.record("regression accepted"); return }
        #expect(e.code == "offset_regression")
        #expect(try await rows(store, "t").isEmpty)
        #expect(try await offsets(store, "q") == [PartitionOffset(TopicPartition("in", 1), 20)])
    }

    /// Batches racing on one precondition: exactly one wins, even for a row not there yet (twenty
    /// races of eight batches each, so a store that lets two through is caught every time).
    @Test func racingPreconditionsLetExactlyOneWin() async throws {
        for kind in StoreKind.allCases {
            guard let store = try await kind.make() else { skipped(kind); continue }
            for round in 0..<20 {
                let key = StateKey("t", "only-\(round)")
                let results = await withTaskGroup(of: Result<Void, MeshError>.self) { group in
                    for i in 0..<8 {
                        group.addTask {
                            var batch = StateBatch()
                            batch.writes = [.put(key, [UInt8(i)])]
                            batch.expectedVersions = [key: 0]
                            return await commit(store, batch)
                        }
                    }
                    var all: [Result<Void, MeshError>] = []
                    for await r in group { all.append(r) }
                    return all
                }
                #expect(results.filter { (try? $0.get()) != nil }.count == 1, "\(kind), round \(round)")
                #expect(results.allSatisfy { if case .failure(let e) = $0 { e.code == "state_conflict" } else { true } })
            }
            #expect(try await rows(store, "t").map(\.version) == Array(repeating: 1, count: 20), "\(kind)")
        }
    }

    private func skipped(_ kind: StoreKind) {
        print("StoreContractTests: \(kind) skipped (set LIGHT_MESH_TEST_POSTGRES to a postgres:// URL)")
    }
}

/// What only the Postgres adapter has to show: state outlives the store object, a database that
/// cannot be reached is a retriable error, and URLs are read as documented.
@Suite struct PostgresStoreTests {
    @Test func committedStateOutlivesTheStore() async throws {
        guard let url = StoreKind.postgresURL else { return print("PostgresStoreTests: skipped (no LIGHT_MESH_TEST_POSTGRES)") }
        var settings = try PostgresStoreSettings(url: url)
        settings.tablePrefix = "lmtest_\(getpid())_durable"
        let first = try PostgresSubscriptionStore(settings: settings, logger: Logger(label: "test"))
        try await first.prepare()
        var batch = StateBatch()
        batch.consumer = "q"
        batch.writes = [.put(StateKey("t", "k"), Array("v".utf8))]
        batch.offsets = [PartitionOffset(TopicPartition("in", 0), 42)]
        try await commit(first, batch).get()
        first.shutdown()
        let second = try PostgresSubscriptionStore(settings: settings, logger: Logger(label: "test"))
        try await second.prepare()
        #expect(try await rows(second, "t").map(\.value) == [Array("v".utf8)])
        #expect(try await offsets(second, "q") == [PartitionOffset(TopicPartition("in", 0), 42)])
        second.shutdown()
    }

    @Test func anUnreachableDatabaseIsARetriableError() async throws {
        var settings = PostgresStoreSettings()
        settings.port = 1
        settings.operationTimeout = .seconds(2)
        let store = try PostgresSubscriptionStore(settings: settings, logger: Logger(label: "test"))
        let batch = { var b = StateBatch(); b.writes = [.put(StateKey("t", "k"), [1])]; return b }()
        let result = await withThrowingTaskGroup(of: Result<Void, MeshError>?.self) { group in
            group.addTask { await commit(store, batch) }
            group.addTask {
                try await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = try? await group.next() ?? nil
            group.cancelAll()
            return first
        }
        store.shutdown()
        guard case .failure(let e)? = result else { Issue.record("no failure within 10 s: \(String(describing: result))"); return }
        #expect(e.code == "store_unavailable" && e.retriable)
    }

    @Test func urlsAndTablePrefixes() throws {
        let s = try PostgresStoreSettings(url: "postgres://app:p%40ss@db.example:6543/state")
        #expect(s.host == "db.example" && s.port == 6543 && s.username == "app" && s.password == "p@ss" && s.database == "state")
        #expect(throws: MeshError.self) { try PostgresStoreSettings(url: "mysql://x@y/z") }
        var bad = PostgresStoreSettings()
        bad.tablePrefix = "x; DROP TABLE y"
        #expect(throws: MeshError.self) { try PostgresSubscriptionStore(settings: bad, logger: Logger(label: "test")) }
    }
}
