/// A stream or table the catalog knows: its columns, where its records live and how they are
/// written. Built from `CREATE STREAM|TABLE` (or from the output of a persistent query).
public struct SourceDescription: Hashable, Sendable {
    public enum Format: String, Hashable, Sendable {
        case json = "JSON"
        case delimited = "DELIMITED"
        case kafka = "KAFKA"
    }

    public var name: String
    public var kind: SourceKind
    public var columns: [ColumnDefinition]
    public var topic: String
    public var keyFormat: Format
    public var valueFormat: Format
    /// The column whose value is the record's event time (`WITH (timestamp='col')`); nil: the
    /// record's own timestamp.
    public var timestampColumn: String?
    /// Partitions to create the topic with, when the statement says.
    public var partitions: Int?
    /// Whether rows are keyed by a window as well (the output of a windowed aggregation).
    public var windowed = false

    public init(name: String, kind: SourceKind, columns: [ColumnDefinition], topic: String, keyFormat: Format = .kafka,
                valueFormat: Format = .json, timestampColumn: String? = nil, partitions: Int? = nil, windowed: Bool = false) {
        self.name = name
        self.kind = kind
        self.columns = columns
        self.topic = topic
        self.keyFormat = keyFormat
        self.valueFormat = valueFormat
        self.timestampColumn = timestampColumn
        self.partitions = partitions
        self.windowed = windowed
    }

    /// The key column, if the source has one.
    public var keyColumn: ColumnDefinition? {
        columns.first { $0.role == .key || $0.role == .primaryKey }
    }

    /// The columns as a query over this source reads them, qualified by `qualifier`.
    public func schema(qualifier: String) -> RowSchema {
        RowSchema(columns.map { RowSchema.Column($0.name, $0.type, source: qualifier) })
    }

    /// The properties this step understands; any other is refused rather than ignored.
    static let knownProperties: Set<String> = ["KAFKA_TOPIC", "VALUE_FORMAT", "KEY_FORMAT", "FORMAT", "PARTITIONS", "TIMESTAMP", "REPLICAS"]

    /// A source from its `CREATE STREAM|TABLE` statement, checked: the topic, formats and timestamp
    /// column are known, a table has exactly one PRIMARY KEY, a stream at most one KEY.
    public init(_ create: CreateSource) throws(PlanError) {
        try self.init(name: create.name, kind: create.kind, columns: create.columns, properties: create.properties, defaultTopic: nil)
    }

    init(name: String, kind: SourceKind, columns: [ColumnDefinition], properties: SQLProperties, defaultTopic: String?) throws(PlanError) {
        for entry in properties.entries where !Self.knownProperties.contains(entry.name) {
            throw PlanError("unknown property \(entry.name) (known: \(Self.knownProperties.sorted().joined(separator: ", ")))")
        }
        guard let topic = properties["KAFKA_TOPIC"]?.text ?? defaultTopic, !topic.isEmpty else {
            throw PlanError("\(name) needs WITH (KAFKA_TOPIC='...')")
        }
        func format(_ property: String, _ fallback: Format) throws(PlanError) -> Format {
            guard let text = properties[property]?.text ?? properties["FORMAT"]?.text else { return fallback }
            guard let f = Format(rawValue: text.uppercased()) else { throw PlanError("\(property) must be JSON, DELIMITED or KAFKA, not '\(text)'") }
            return f
        }
        let keys = columns.filter { $0.role == .key || $0.role == .primaryKey }
        if kind == .table && keys.count != 1 { throw PlanError("the table \(name) needs exactly one PRIMARY KEY column") }
        if keys.count > 1 { throw PlanError("\(name) has more than one key column") }
        var timestampColumn: String?
        if let ts = properties["TIMESTAMP"]?.text {
            guard let column = columns.first(where: { $0.name == ts.uppercased() || $0.name == ts }) else {
                throw PlanError("the TIMESTAMP column \(ts) is not a column of \(name)")
            }
            guard column.type == .timestamp || column.type == .bigint else { throw PlanError("the TIMESTAMP column \(column.name) must be TIMESTAMP or BIGINT") }
            timestampColumn = column.name
        }
        var partitions: Int?
        if let p = properties["PARTITIONS"] {
            guard case .integer(let n) = p, n >= 1, n <= 10_000 else { throw PlanError("PARTITIONS must be an integer from 1 to 10000") }
            partitions = Int(n)
        }
        self.init(name: name, kind: kind, columns: columns, topic: topic, keyFormat: try format("KEY_FORMAT", .kafka),
                  valueFormat: try format("VALUE_FORMAT", .json), timestampColumn: timestampColumn, partitions: partitions)
    }
}
