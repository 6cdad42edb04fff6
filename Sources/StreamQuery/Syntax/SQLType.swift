/// A column type of the SQL subset: ksqlDB's types. `VARCHAR` reads as `STRING`, `INT` as `INTEGER`.
public indirect enum SQLType: Hashable, Sendable, CustomStringConvertible {
    case boolean
    case integer
    case bigint
    case double
    case decimal(precision: Int, scale: Int)
    case string
    case bytes
    case timestamp
    case date
    case time
    case array(SQLType)
    case map(key: SQLType, value: SQLType)
    case structure([SQLField])

    /// The most digits a DECIMAL may have: what the runtime computes exactly (Foundation.Decimal).
    public static let maxPrecision = 38

    /// The type as ksqlDB writes it in `columnTypes` and schemas: `DECIMAL(10, 2)`,
    /// `ARRAY<STRING>`, `MAP<STRING, INTEGER>`, ``STRUCT<`A` INTEGER, `B` STRING>``.
    public var description: String {
        switch self {
        case .boolean: "BOOLEAN"
        case .integer: "INTEGER"
        case .bigint: "BIGINT"
        case .double: "DOUBLE"
        case .decimal(let p, let s): "DECIMAL(\(p), \(s))"
        case .string: "STRING"
        case .bytes: "BYTES"
        case .timestamp: "TIMESTAMP"
        case .date: "DATE"
        case .time: "TIME"
        case .array(let member): "ARRAY<\(member)>"
        case .map(let k, let v): "MAP<\(k), \(v)>"
        case .structure(let fields): "STRUCT<\(fields.map { "`\($0.name)` \($0.type)" }.joined(separator: ", "))>"
        }
    }

    /// Whether values of this type are numbers (arithmetic and SUM/AVG take them).
    public var isNumeric: Bool {
        switch self {
        case .integer, .bigint, .double, .decimal: true
        default: false
        }
    }
}

/// A named member of a STRUCT type.
public struct SQLField: Hashable, Sendable {
    public var name: String
    public var type: SQLType
    public init(_ name: String, _ type: SQLType) {
        self.name = name
        self.type = type
    }
}
