import Foundation
import MeshCore

/// Where the Postgres store lives and what its tables are called.
public struct PostgresStoreSettings: Hashable, Sendable {
    public var host = "127.0.0.1"
    public var port = 5432
    public var username = "postgres"
    public var password: String?
    public var database: String?
    /// The store's tables are `<prefix>_rows` and `<prefix>_offsets`; lower-case letters, digits and `_`.
    public var tablePrefix = "lightmesh_state"
    /// Connections the store keeps open at most.
    public var maxConnections = 4
    /// How long one operation (a batch's transaction, a read) may take, waiting for a connection
    /// included, before it fails with a retriable `store_unavailable`.
    public var operationTimeout: Duration = .seconds(10)

    public init() {}

    /// Settings from a URL: `postgres://user[:password]@host[:port]/database` (`postgresql://` too).
    /// The password is percent-decoded; nothing of it ever appears in an error.
    public init(url: String) throws(MeshError) {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, ["postgres", "postgresql"].contains(scheme.lowercased()),
              let host = parts.host, !host.isEmpty else {
            throw MeshError(code: "invalid_postgres_url", message: "the Postgres URL must look like postgres://user:password@host:5432/database")
        }
        self.host = host
        port = parts.port ?? 5432
        if let user = parts.user, !user.isEmpty { username = user.removingPercentEncoding ?? user }
        password = parts.password.map { $0.removingPercentEncoding ?? $0 }
        let path = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        database = path.isEmpty ? nil : path
    }

    /// Refuses settings the store could not use (today: a table prefix that cannot name tables).
    public func validate() throws(MeshError) {
        if let problem = tablePrefixProblem { throw problem }
    }

    /// Why `tablePrefix` cannot name tables, or `nil`: it is spliced into SQL, so only `[a-z_][a-z0-9_]*`.
    var tablePrefixProblem: MeshError? {
        let bytes = Array(tablePrefix.utf8)
        let legal = !bytes.isEmpty && bytes.count <= 40 && !(bytes[0] >= 0x30 && bytes[0] <= 0x39)
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
        return legal ? nil : MeshError(code: "invalid_table_prefix", message: "the table prefix '\(tablePrefix)' must match [a-z_][a-z0-9_]* (at most 40)")
    }
}
