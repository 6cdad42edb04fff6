import Synchronization

/// The embedded default ``SubscriptionStore``: atomic batches in process memory.
///
/// Used by `light-mesh up` when no Postgres is configured, and by the simulator, which keeps the store
/// outside the crashing host so it plays the part of a durable database. Completions run synchronously.
public final class InMemorySubscriptionStore: SubscriptionStore {
    private struct Contents {
        var rows: [StateKey: StateRow] = [:]
        var offsets: [String: [TopicPartition: Int64]] = [:]
    }
    private let contents = Mutex(Contents())

    public init() {}

    public func commit(_ batch: StateBatch, _ completion: @escaping @Sendable (Result<Void, MeshError>) -> Void) {
        let result: Result<Void, MeshError> = contents.withLock { c in
            for (key, expected) in batch.expectedVersions.sorted(by: { $0.key < $1.key }) {
                let actual = c.rows[key]?.version ?? 0
                if actual != expected {
                    return .failure(MeshError(code: "state_conflict", message: "\(key.namespace)/\(key.key) is at version \(actual), expected \(expected)"))
                }
            }
            let current = c.offsets[batch.consumer] ?? [:]
            for o in batch.offsets where (current[o.topicPartition] ?? -1) > o.offset {
                return .failure(MeshError(code: "offset_regression", message: "\(batch.consumer) \(o.topicPartition) would move back to \(o.offset)"))
            }
            for write in batch.writes {
                switch write {
                case .put(let key, let value):
                    let version = (c.rows[key]?.version ?? 0) + 1
                    c.rows[key] = StateRow(key: key, value: value, version: version)
                case .delete(let key):
                    c.rows[key] = nil
                }
            }
            for o in batch.offsets { c.offsets[batch.consumer, default: [:]][o.topicPartition] = o.offset }
            return .success(())
        }
        completion(result)
    }

    public func rows(namespace: String, _ completion: @escaping @Sendable (Result<[StateRow], MeshError>) -> Void) {
        let rows = contents.withLock { c in c.rows.values.filter { $0.key.namespace == namespace } }
        completion(.success(rows.sorted { $0.key < $1.key }))
    }

    public func offsets(consumer: String, _ completion: @escaping @Sendable (Result<[PartitionOffset], MeshError>) -> Void) {
        let offsets = contents.withLock { c in c.offsets[consumer] ?? [:] }
        completion(.success(offsets.map { PartitionOffset($0.key, $0.value) }.sorted { $0.topicPartition < $1.topicPartition }))
    }
}
