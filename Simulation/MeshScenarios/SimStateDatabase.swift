import MeshCore
import MeshSimulator

/// The database the stream-query pods keep their state in: the in-memory store (the same contract
/// the Postgres adapter passes) outside every pod, so it outlives their crashes. The pods reach it
/// through ``StreamQueryPod``'s calls, which add a round trip and the faults a real connection has.
final class SimStateDatabase {
    let store = InMemorySubscriptionStore()

    /// The store's rows and offsets for a query, read at once (the in-memory store answers in line).
    func load(_ namespace: String) -> Result<(rows: [StateRow], offsets: [PartitionOffset]), MeshError> {
        let result = Answer<Result<(rows: [StateRow], offsets: [PartitionOffset]), MeshError>>()
        let rows = Answer<Result<[StateRow], MeshError>>()
        store.rows(namespace: namespace) { rows.value = $0 }
        store.offsets(consumer: namespace) { offsets in
            switch (rows.value, offsets) {
            case (.success(let r)?, .success(let o)): result.value = .success((r, o))
            case (.failure(let e)?, _), (_, .failure(let e)): result.value = .failure(e)
            case (nil, _): result.value = .failure(MeshError(code: "store_unavailable", message: "no rows"))
            }
        }
        return result.value ?? .failure(MeshError(code: "store_unavailable", message: "no answer"))
    }

    /// Applies `batch` at once (atomically, or not at all).
    func commit(_ batch: StateBatch) -> Result<Void, MeshError> {
        let result = Answer<Result<Void, MeshError>>()
        store.commit(batch) { result.value = $0 }
        return result.value ?? .failure(MeshError(code: "store_unavailable", message: "no answer"))
    }
}

/// An answer the in-memory store gives in line (the simulator is single-threaded).
private final class Answer<Value>: @unchecked Sendable {
    var value: Value?
}
