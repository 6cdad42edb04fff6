import Logging
import MeshCore
import NIOCore
import PostgresNIO

/// ``SubscriptionStore`` on Postgres (postgres-nio): each ``StateBatch`` is one transaction.
///
/// Namespaces and keys are stored as UTF-8 in `bytea` columns, so any key a query makes (a NUL in a
/// GROUP BY value included) can be held. A commit locks what it checks (advisory locks on the names
/// of the rows with preconditions and of the consumer's offsets, so absent rows are covered too, then
/// `SELECT ... FOR UPDATE`), refuses a failed precondition (`state_conflict`) or an offset that would move
/// back (`offset_regression`) by rolling back, then writes in bulk: one `DELETE` for every row the
/// batch deletes, one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` for every row it
/// puts, one upsert for its offsets. A row's version grows by one per put, as the in-memory store's
/// does. Statements per batch are constant, whatever its size.
///
/// Call ``prepare()`` once before use (it creates the tables if missing) and ``shutdown()`` at the end.
public final class PostgresSubscriptionStore: SubscriptionStore {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger
    private let rowsTable: String
    private let offsetsTable: String
    private let timeout: Duration

    public init(settings: PostgresStoreSettings, logger: Logger) throws(MeshError) {
        if let problem = settings.tablePrefixProblem { throw problem }
        var config = PostgresClient.Configuration(host: settings.host, port: settings.port, username: settings.username,
                                                  password: settings.password, database: settings.database, tls: .disable)
        config.options.maximumConnections = settings.maxConnections
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        rowsTable = settings.tablePrefix + "_rows"
        offsetsTable = settings.tablePrefix + "_offsets"
        timeout = settings.operationTimeout
        runner = Task { await client.run() }
    }

    /// Creates the tables when they are missing.
    public func prepare() async throws(MeshError) {
        try await run("prepare the state tables") { [rowsTable, offsetsTable, logger, client] in
            try await client.query("""
                CREATE TABLE IF NOT EXISTS \(unescaped: rowsTable) (
                  namespace bytea NOT NULL, key bytea NOT NULL, value bytea NOT NULL, version bigint NOT NULL,
                  PRIMARY KEY (namespace, key))
                """, logger: logger)
            try await client.query("""
                CREATE TABLE IF NOT EXISTS \(unescaped: offsetsTable) (
                  consumer text NOT NULL, topic text NOT NULL, partition integer NOT NULL, next_offset bigint NOT NULL,
                  PRIMARY KEY (consumer, topic, partition))
                """, logger: logger)
        }
    }

    /// Closes the connections.
    public func shutdown() {
        runner.cancel()
    }

    public func commit(_ batch: StateBatch, _ completion: @escaping @Sendable (Result<Void, MeshError>) -> Void) {
        answer("commit a state batch", completion) { [self] in try await apply(batch) }
    }

    public func rows(namespace: String, _ completion: @escaping @Sendable (Result<[StateRow], MeshError>) -> Void) {
        answer("read state rows", completion) { [rowsTable, logger, client] in
            var out: [StateRow] = []
            let found = try await client.query("SELECT key, value, version FROM \(unescaped: rowsTable) WHERE namespace = \(Self.text(namespace))",
                                               logger: logger)
            for try await (key, value, version) in found.decode((ByteBuffer, ByteBuffer, Int64).self) {
                out.append(StateRow(key: StateKey(namespace, String(buffer: key)), value: Array(buffer: value), version: version))
            }
            return out.sorted { $0.key < $1.key }
        }
    }

    public func offsets(consumer: String, _ completion: @escaping @Sendable (Result<[PartitionOffset], MeshError>) -> Void) {
        answer("read stored offsets", completion) { [self] in
            try await stored(consumer, on: nil).map { PartitionOffset($0.key, $0.value) }.sorted { $0.topicPartition < $1.topicPartition }
        }
    }

    /// Runs `body` on a task (through ``run(_:_:)``) and hands its result to `completion`.
    private func answer<T: Sendable>(_ what: String, _ completion: @escaping @Sendable (Result<T, MeshError>) -> Void,
                                     _ body: @escaping @Sendable () async throws -> T) {
        Task {
            do throws(MeshError) {
                completion(.success(try await run(what, body)))
            } catch {
                completion(.failure(error))
            }
        }
    }

    // MARK: The transaction

    /// A refusal decided inside the transaction: thrown to roll it back, then reported as it is.
    private struct Refusal: Error { var error: MeshError }
    private struct TimedOut: Error {}

    private func apply(_ batch: StateBatch) async throws {
        let (rowsTable, offsetsTable, logger) = (self.rowsTable, self.offsetsTable, self.logger)
        let plan = WritePlan(batch)
        try await client.withTransaction(logger: logger) { connection in
            // Row locks cannot lock a row that is not there yet (a precondition of "absent", a
            // consumer's first offsets): transaction-scoped advisory locks on the names do, taken in
            // one sorted order so two batches cannot deadlock on them.
            let locks = Set((plan.offsets.isEmpty ? [] : [Self.lockID("offsets", batch.consumer)])
                + batch.expectedVersions.keys.map { Self.lockID($0.namespace, $0.key) }).sorted()
            // ci/mutants: postgres-absent-row-unlocked (the next line)
            if !locks.isEmpty {
                try await connection.query("""
                    SELECT pg_advisory_xact_lock(n) FROM unnest(\(locks)::bigint[]) WITH ORDINALITY AS l(n, i) ORDER BY i
                    """, logger: logger)
            }
            if !batch.expectedVersions.isEmpty {
                let keys = batch.expectedVersions.keys.sorted()
                let found = try await connection.query("""
                    SELECT namespace, key, version FROM \(unescaped: rowsTable)
                    WHERE (namespace, key) IN (SELECT * FROM unnest(\(keys.map { Self.text($0.namespace) })::bytea[], \(keys.map { Self.text($0.key) })::bytea[]))
                    FOR UPDATE
                    """, logger: logger)
                var actual: [StateKey: Int64] = [:]
                for try await (namespace, key, version) in found.decode((ByteBuffer, ByteBuffer, Int64).self) {
                    actual[StateKey(String(buffer: namespace), String(buffer: key))] = version
                }
                for key in keys where (actual[key] ?? 0) != batch.expectedVersions[key]! {
                    throw Refusal(error: MeshError(code: "state_conflict",
                                                   message: "\(key.namespace)/\(key.key) is at version \(actual[key] ?? 0), expected \(batch.expectedVersions[key]!)"))
                }
            }
            if !plan.offsets.isEmpty {
                let current = try await self.stored(batch.consumer, on: connection)
                for o in batch.offsets where (current[o.topicPartition] ?? -1) > o.offset {
                    throw Refusal(error: MeshError(code: "offset_regression", message: "\(batch.consumer) \(o.topicPartition) would move back to \(o.offset)"))
                }
            }
            if !plan.deletes.isEmpty {
                try await connection.query("""
                    DELETE FROM \(unescaped: rowsTable)
                    WHERE (namespace, key) IN (SELECT * FROM unnest(\(plan.deletes.map { Self.text($0.namespace) })::bytea[],
                                                                    \(plan.deletes.map { Self.text($0.key) })::bytea[]))
                    """, logger: logger)
            }
            if !plan.puts.isEmpty {
                let values = plan.puts.map { ByteBuffer(bytes: $0.value) }
                try await connection.query("""
                    INSERT INTO \(unescaped: rowsTable) AS r (namespace, key, value, version)
                    SELECT * FROM unnest(\(plan.puts.map { Self.text($0.key.namespace) })::bytea[], \(plan.puts.map { Self.text($0.key.key) })::bytea[],
                                         \(values)::bytea[],
                                         \(plan.puts.map(\.count))::bigint[])
                    ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = r.version + excluded.version
                    """, logger: logger)
            }
            if !plan.offsets.isEmpty {
                try await connection.query("""
                    INSERT INTO \(unescaped: offsetsTable) (consumer, topic, partition, next_offset)
                    SELECT \(batch.consumer), * FROM unnest(\(plan.offsets.map(\.topicPartition.topic))::text[],
                                                            \(plan.offsets.map(\.topicPartition.partition))::integer[], \(plan.offsets.map(\.offset))::bigint[])
                    ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset
                    """, logger: logger)
            }
        }
    }

    /// A namespace or key as stored: its UTF-8 in a `bytea` (a `text` column refuses NUL, and a key
    /// made of data, such as a GROUP BY value, may hold one).
    static func text(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    /// The advisory lock of a name: 64-bit FNV-1a of its two parts (a collision only makes two batches
    /// wait for each other).
    static func lockID(_ a: String, _ b: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in a.utf8 + [0] + b.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return Int64(bitPattern: hash)
    }

    /// The offsets stored for `consumer`, locked for the transaction when read on `connection`.
    private func stored(_ consumer: String, on connection: PostgresConnection?) async throws -> [TopicPartition: Int64] {
        var out: [TopicPartition: Int64] = [:]
        let found: PostgresRowSequence
        if let connection {
            found = try await connection.query(
                "SELECT topic, partition, next_offset FROM \(unescaped: offsetsTable) WHERE consumer = \(consumer) FOR UPDATE", logger: logger)
        } else {
            found = try await client.query("SELECT topic, partition, next_offset FROM \(unescaped: offsetsTable) WHERE consumer = \(consumer)", logger: logger)
        }
        for try await (topic, partition, offset) in found.decode((String, Int32, Int64).self) { out[TopicPartition(topic, partition)] = offset }
        return out
    }

    /// Runs `body` within ``PostgresStoreSettings/operationTimeout``, turning a refusal into its error
    /// and anything else (the database unreachable, a statement failing, the time running out) into a
    /// retriable `store_unavailable` naming what was being done. postgres-nio's pool waits for a
    /// connection as long as it takes, so the bound is kept here: a caller always hears back.
    private func run<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws(MeshError) -> T {
        let timeout = self.timeout
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await body() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else { throw TimedOut() }
                return value
            }
        } catch is TimedOut {
            logger.warning("postgres store: could not \(what) within \(timeout)")
            throw MeshError(code: "store_unavailable", message: "could not \(what) in Postgres within \(timeout)", retriable: true)
        } catch let refusal as Refusal {
            throw refusal.error
        } catch let refusal as PostgresTransactionError where refusal.closureError is Refusal {
            throw (refusal.closureError as! Refusal).error
        } catch {
            logger.warning("postgres store: could not \(what): \(String(reflecting: error))")
            throw MeshError(code: "store_unavailable", message: "could not \(what) in Postgres", retriable: true)
        }
    }
}

/// A batch's writes as the statements apply them: per row, only its last state matters, with the
/// number of puts since its last delete (its version grows by that many).
struct WritePlan {
    struct Put { var key: StateKey; var value: [UInt8]; var count: Int64 }
    /// Rows the batch deletes (including rows it deletes and then puts again).
    var deletes: [StateKey] = []
    var puts: [Put] = []
    /// The last offset per partition.
    var offsets: [PartitionOffset] = []

    init(_ batch: StateBatch) {
        var last: [StateKey: (value: [UInt8]?, count: Int64, deleted: Bool)] = [:]
        var order: [StateKey] = []
        for write in batch.writes {
            switch write {
            case .put(let key, let value):
                if last[key] == nil { order.append(key) }
                var entry = last[key] ?? (nil, 0, false)
                entry.value = value
                entry.count += 1
                last[key] = entry
            case .delete(let key):
                if last[key] == nil { order.append(key) }
                last[key] = (nil, 0, true)
            }
        }
        for key in order {
            let entry = last[key]!
            if entry.deleted { deletes.append(key) }
            if let value = entry.value { puts.append(Put(key: key, value: value, count: entry.count)) }
        }
        var offsetIndex: [TopicPartition: Int] = [:]
        for o in batch.offsets {
            if let i = offsetIndex[o.topicPartition] { offsets[i] = o } else {
                offsetIndex[o.topicPartition] = offsets.count
                offsets.append(o)
            }
        }
    }
}
