import MeshCore

/// One input record as an operator sees it: its source's column values (decoded from the record's
/// key and value), the record's timestamp, and where it came from.
public struct QueryInput: Hashable, Sendable {
    public var row: [SQLValue]
    /// The record's timestamp (milliseconds since the epoch).
    public var timestamp: Int64
    public var topicPartition: TopicPartition
    public var offset: Int64

    public init(row: [SQLValue], timestamp: Int64, topicPartition: TopicPartition, offset: Int64) {
        self.row = row
        self.timestamp = timestamp
        self.topicPartition = topicPartition
        self.offset = offset
    }
}

/// One output change: a row of the query's output columns (key first), or, for a table, the
/// deletion of a key (`values` nil: a tombstone), with its window when the output is windowed.
public struct QueryOutput: Hashable, Sendable {
    public var key: SQLValue
    /// The value columns in output order; nil deletes the key's row.
    public var values: [SQLValue]?
    /// `[start, end)` of the row's window, in milliseconds.
    public var window: Range<Int64>?
    /// The output record's timestamp: the input's, or for an aggregate the latest event time in its group.
    public var timestamp: Int64

    public init(key: SQLValue, values: [SQLValue]?, window: Range<Int64>? = nil, timestamp: Int64) {
        self.key = key
        self.values = values
        self.window = window
        self.timestamp = timestamp
    }
}
