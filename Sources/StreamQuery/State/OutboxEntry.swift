import MeshCore

/// A record a query produced for its sink topic, kept in the store's outbox from the commit of the
/// batch that caused it until the sink acknowledged it. Its sequence counts the query's outputs
/// from 0, is never reused, and rides on the record as the ``OutboxEntry/sequenceHeader`` header,
/// so a reader tells a redelivery (an entry sent again after a crash) from a new change.
public struct OutboxEntry: Hashable, Sendable {
    /// The header naming the query whose output a record is.
    public static let queryHeader = "lightmesh.query"
    /// The header with the record's outbox sequence, in decimal.
    public static let sequenceHeader = "lightmesh.outbox.seq"

    public var sequence: Int64
    /// The record as it goes to the sink, with the two headers above.
    public var record: ProducerRecord

    public init(sequence: Int64, record: ProducerRecord) {
        self.sequence = sequence
        self.record = record
    }

    /// The row key of sequence `n`: fixed-width hex, so rows sorted by key are in sequence order.
    static func rowKey(_ n: Int64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = Array("o/".utf8)
        let u = UInt64(bitPattern: n)
        for shift in stride(from: 60, through: 0, by: -4) { out.append(digits[Int((u >> UInt64(shift)) & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The entry as a stored row's value.
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        StateCodec.int(sequence, &out)
        StateCodec.bytes(Array(record.topic.utf8), &out)
        Self.optionalInt(record.partition.map(Int64.init), &out)
        Self.optionalBytes(record.key, &out)
        Self.optionalBytes(record.value, &out)
        StateCodec.int(Int64(record.headers.count), &out)
        for h in record.headers {
            StateCodec.bytes(Array(h.key.utf8), &out)
            Self.optionalBytes(h.value, &out)
        }
        Self.optionalInt(record.timestamp, &out)
        return out
    }

    /// Reads a stored row back; refuses anything ``encoded()`` did not write.
    init(row bytes: [UInt8]) throws(StateUnreadable) {
        var r = StateCodec.Reader(bytes)
        sequence = try r.int()
        let topic = String(decoding: try r.blob(), as: UTF8.self)
        let partition = try Self.optionalInt(&r)
        guard partition.map({ Int32(exactly: $0) != nil }) ?? true else { throw StateUnreadable(message: "an outbox partition out of range") }
        let key = try Self.optionalBytes(&r)
        let value = try Self.optionalBytes(&r)
        let count = try r.count()
        var headers: [KafkaHeader] = []
        for _ in 0..<count {
            let name = String(decoding: try r.blob(), as: UTF8.self)
            headers.append(KafkaHeader(name, try Self.optionalBytes(&r)))
        }
        let timestamp = try Self.optionalInt(&r)
        guard r.atEnd else { throw StateUnreadable(message: "bytes after the outbox entry \(sequence)") }
        record = ProducerRecord(topic: topic, partition: partition.map { Int32($0) }, key: key, value: value, headers: headers, timestamp: timestamp)
    }

    private static func optionalInt(_ n: Int64?, _ out: inout [UInt8]) {
        guard let n else { out.append(0); return }
        out.append(1)
        StateCodec.int(n, &out)
    }

    private static func optionalBytes(_ b: [UInt8]?, _ out: inout [UInt8]) {
        guard let b else { out.append(0); return }
        out.append(1)
        StateCodec.bytes(b, &out)
    }

    private static func optionalInt(_ r: inout StateCodec.Reader) throws(StateUnreadable) -> Int64? {
        switch try r.byte() {
        case 0: return nil
        case 1: return try r.int()
        case let tag: throw StateUnreadable(message: "unknown presence tag \(tag)")
        }
    }

    private static func optionalBytes(_ r: inout StateCodec.Reader) throws(StateUnreadable) -> [UInt8]? {
        switch try r.byte() {
        case 0: return nil
        case 1: return try r.blob()
        case let tag: throw StateUnreadable(message: "unknown presence tag \(tag)")
        }
    }
}
