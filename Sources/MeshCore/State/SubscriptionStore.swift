/// A key in the subscription-state store: a namespace (a query's materialized table, or `meta`) and a key.
public struct StateKey: Hashable, Comparable, Sendable {
    public var namespace: String
    public var key: String
    public init(_ namespace: String, _ key: String) {
        self.namespace = namespace
        self.key = key
    }
    public static func < (a: StateKey, b: StateKey) -> Bool { (a.namespace, a.key) < (b.namespace, b.key) }
}

/// A row with its version; the version increases by one with every committed write of the row.
public struct StateRow: Hashable, Sendable {
    public var key: StateKey
    public var value: [UInt8]
    public var version: Int64
    public init(key: StateKey, value: [UInt8], version: Int64) {
        self.key = key
        self.value = value
        self.version = version
    }
}

/// One atomic unit of work: row writes, offset advances, and optional preconditions.
///
/// Materialized rows and the consumed offsets that produced them go into the same batch, so a crash
/// either keeps both or neither: replaying from the stored offset never double-counts.
public struct StateBatch: Hashable, Sendable {
    public enum Write: Hashable, Sendable {
        case put(StateKey, [UInt8])
        case delete(StateKey)
    }
    /// Writes applied in order.
    public var writes: [Write] = []
    /// Offsets to store for `consumer` (a query id); each must not go backwards.
    public var offsets: [PartitionOffset] = []
    /// The consumer whose offsets advance.
    public var consumer: String = ""
    /// Optimistic-concurrency preconditions: the row must currently have this version (0 = absent).
    public var expectedVersions: [StateKey: Int64] = [:]
    public init() {}
}

/// Seam: durable subscription state (query definitions, offsets, materialized tables).
///
/// Contract for the Postgres adapter and the in-memory store alike:
/// - `commit` applies the whole batch atomically or nothing; on failure nothing is half-applied.
/// - A batch whose precondition fails is rejected with `state_conflict` and changes nothing.
/// - An offset never moves backwards: a batch that tries is rejected with `offset_regression`.
/// - Once `commit` reported success, the batch survives a crash of the caller.
/// - Reads return committed state only; rows are returned sorted by key.
public protocol SubscriptionStore: AnyObject, Sendable {
    func commit(_ batch: StateBatch, _ completion: @escaping @Sendable (Result<Void, MeshError>) -> Void)
    func rows(namespace: String, _ completion: @escaping @Sendable (Result<[StateRow], MeshError>) -> Void)
    func offsets(consumer: String, _ completion: @escaping @Sendable (Result<[PartitionOffset], MeshError>) -> Void)
}
