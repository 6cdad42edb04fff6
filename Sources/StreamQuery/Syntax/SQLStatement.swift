/// Whether a source is a stream (every record an event) or a table (the latest row per key).
public enum SourceKind: String, Hashable, Sendable {
    case stream = "STREAM"
    case table = "TABLE"
}

/// One statement of the SQL subset (see `docs/stream-query.md` for the grammar).
public enum SQLStatement: Hashable, Sendable {
    /// `CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name (columns) WITH (properties)`.
    case createSource(CreateSource)
    /// `CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (properties)] AS SELECT ...`.
    case createAsSelect(CreateAsSelect)
    /// `INSERT INTO name [(columns)] VALUES (values)`.
    case insertValues(InsertValues)
    /// `INSERT INTO name SELECT ...`: a persistent query writing into an existing stream.
    case insertSelect(target: String, query: SQLQuery)
    /// A transient query: a push query with `EMIT CHANGES`, else a pull query on a table.
    case select(SQLQuery)
    /// `SHOW|LIST STREAMS|TABLES|QUERIES|PROPERTIES|TOPICS`.
    case show(ShowSubject)
    /// `DESCRIBE name [EXTENDED]`.
    case describe(name: String, extended: Bool)
    /// `DROP STREAM|TABLE [IF EXISTS] name [DELETE TOPIC]`.
    case drop(kind: SourceKind, name: String, ifExists: Bool, deleteTopic: Bool)
    /// `TERMINATE queryId` or `TERMINATE ALL`.
    case terminate(queryId: String?)
    /// `SET 'property' = 'value'`.
    case set(property: String, value: String)
    /// `UNSET 'property'`.
    case unset(property: String)
}

public enum ShowSubject: String, Hashable, Sendable {
    case streams = "STREAMS"
    case tables = "TABLES"
    case queries = "QUERIES"
    case properties = "PROPERTIES"
    case topics = "TOPICS"
}

/// A column declared by `CREATE STREAM|TABLE`.
public struct ColumnDefinition: Hashable, Sendable {
    public enum Role: Hashable, Sendable {
        case value
        /// `KEY` (a stream's key column).
        case key
        /// `PRIMARY KEY` (a table's key column).
        case primaryKey
        /// `HEADERS` (all headers) or `HEADER('name')` (one header's bytes).
        case header(String?)
    }

    public var name: String
    public var type: SQLType
    public var role: Role

    public init(_ name: String, _ type: SQLType, role: Role = .value) {
        self.name = name
        self.type = type
        self.role = role
    }
}

/// A `WITH (...)` property value.
public enum PropertyValue: Hashable, Sendable {
    case string(String)
    case integer(Int64)
    case decimal(String)
    case boolean(Bool)

    /// The value as text (what `SHOW PROPERTIES` and the planner compare).
    public var text: String {
        switch self {
        case .string(let s): s
        case .integer(let n): String(n)
        case .decimal(let d): d
        case .boolean(let b): b ? "true" : "false"
        }
    }
}

/// `WITH (name = value, ...)`: names upper-cased, in the order written, each once.
public struct SQLProperties: Hashable, Sendable {
    public private(set) var entries: [(name: String, value: PropertyValue)] = []

    public init() {}

    public subscript(name: String) -> PropertyValue? {
        entries.first { $0.name == name.uppercased() }?.value
    }

    /// Adds a property; false when it is there already.
    mutating func add(_ name: String, _ value: PropertyValue) -> Bool {
        guard self[name] == nil else { return false }
        entries.append((name.uppercased(), value))
        return true
    }

    public static func == (a: SQLProperties, b: SQLProperties) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for e in entries {
            hasher.combine(e.name)
            hasher.combine(e.value)
        }
    }
}

public struct CreateSource: Hashable, Sendable {
    public var kind: SourceKind
    public var name: String
    public var columns: [ColumnDefinition]
    public var properties: SQLProperties
    public var orReplace: Bool
    public var ifNotExists: Bool
}

public struct CreateAsSelect: Hashable, Sendable {
    public var kind: SourceKind
    public var name: String
    public var properties: SQLProperties
    public var query: SQLQuery
    public var orReplace: Bool
    public var ifNotExists: Bool
}

public struct InsertValues: Hashable, Sendable {
    public var target: String
    /// The columns named, or nil for all of the target's columns in order.
    public var columns: [String]?
    public var values: [SQLExpression]

    public init(target: String, columns: [String]?, values: [SQLExpression]) {
        self.target = target
        self.columns = columns
        self.values = values
    }
}

/// `SELECT items FROM source [JOIN ...] [WINDOW ...] [WHERE ...] [GROUP BY ...] [HAVING ...]
/// [PARTITION BY ...] [EMIT CHANGES|FINAL] [LIMIT n]`.
public struct SQLQuery: Hashable, Sendable {
    public var items: [SelectItem]
    public var from: SourceReference
    public var joins: [SQLJoin] = []
    public var window: WindowSpec?
    public var filter: SQLExpression?
    public var groupBy: [SQLExpression] = []
    public var having: SQLExpression?
    public var partitionBy: [SQLExpression] = []
    public var emit: Emit?
    public var limit: Int?

    public enum Emit: String, Hashable, Sendable {
        case changes = "CHANGES"
        case final = "FINAL"
    }
}

/// One item of a SELECT list.
public enum SelectItem: Hashable, Sendable {
    /// `*`.
    case all
    /// `source.*`.
    case allOf(String)
    /// An expression with an optional `AS` alias.
    case expression(SQLExpression, alias: String?)
}

/// A source in FROM or JOIN, with an optional alias.
public struct SourceReference: Hashable, Sendable {
    public var name: String
    public var alias: String?
    public init(_ name: String, alias: String? = nil) {
        self.name = name
        self.alias = alias
    }
    /// How columns of this source are qualified: the alias, else the name.
    public var qualifier: String { alias ?? name }
}

public struct SQLJoin: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        case inner = "INNER"
        case left = "LEFT"
        case full = "FULL"
        case right = "RIGHT"
    }
    public var kind: Kind
    public var source: SourceReference
    public var condition: SQLExpression
    /// `WITHIN n UNIT` (stream-stream joins).
    public var within: WindowDuration?

    public init(kind: Kind, source: SourceReference, condition: SQLExpression, within: WindowDuration?) {
        self.kind = kind
        self.source = source
        self.condition = condition
        self.within = within
    }
}

/// A duration in a window clause: `10 SECONDS`.
public struct WindowDuration: Hashable, Sendable {
    public var amount: Int64
    public var unit: Unit

    public enum Unit: String, Hashable, Sendable, CaseIterable {
        case milliseconds = "MILLISECONDS"
        case seconds = "SECONDS"
        case minutes = "MINUTES"
        case hours = "HOURS"
        case days = "DAYS"

        var milliseconds: Int64 {
            switch self {
            case .milliseconds: 1
            case .seconds: 1000
            case .minutes: 60_000
            case .hours: 3_600_000
            case .days: 86_400_000
            }
        }
    }

    public init(_ amount: Int64, _ unit: Unit) {
        self.amount = amount
        self.unit = unit
    }

    /// The duration in milliseconds, nil when it does not fit 64 bits.
    public var milliseconds: Int64? {
        let (ms, overflow) = amount.multipliedReportingOverflow(by: unit.milliseconds)
        return overflow ? nil : ms
    }
}

/// `WINDOW TUMBLING (SIZE d [, GRACE PERIOD g])`, `WINDOW HOPPING (SIZE d, ADVANCE BY a [, GRACE
/// PERIOD g])` or `WINDOW SESSION (gap [, GRACE PERIOD g])`.
public struct WindowSpec: Hashable, Sendable {
    public enum Shape: Hashable, Sendable {
        case tumbling(size: WindowDuration)
        case hopping(size: WindowDuration, advance: WindowDuration)
        case session(gap: WindowDuration)
    }
    public var shape: Shape
    public var grace: WindowDuration?

    public init(shape: Shape, grace: WindowDuration?) {
        self.shape = shape
        self.grace = grace
    }
}
