/// Records to produce to one topic, packed: every key, value and header value is a span of one
/// shared byte buffer (a REST request's body, with whatever had to be decoded appended after it).
///
/// A REST front builds this without an allocation per record, and an adapter hands librdkafka
/// pointers into the one buffer; ``unpacked()`` gives plain ``ProducerRecord``s to any producer
/// that wants them (the simulated cluster).
public struct PackedRecords: Sendable {
    /// A span of ``storage``, or none (a null key or value, which differs from an empty one).
    public struct Span: Hashable, Sendable {
        public var start: Int
        /// -1 for null.
        public var count: Int
        public static let null = Span(start: 0, count: -1)
        public init(start: Int, count: Int) {
            self.start = start
            self.count = count
        }
        public var isNull: Bool { count < 0 }
    }

    /// A header whose value is a span of ``storage``.
    public struct Header: Sendable {
        public var name: String
        public var value: Span
        public init(_ name: String, _ value: Span) {
            self.name = name
            self.value = value
        }
    }

    /// One record: spans of ``storage``, and its own headers as a range of ``headers``.
    public struct Record: Sendable {
        public var key: Span = .null
        public var value: Span = .null
        /// -1: the partitioner chooses.
        public var partition: Int32 = -1
        /// Milliseconds since the epoch; -1: the producer's clock.
        public var timestamp: Int64 = -1
        public var headers: Range<Int> = 0..<0
        public init() {}
    }

    public var topic: String
    /// The bytes every span points into.
    public var storage: [UInt8]
    public var records: [Record] = []
    /// Every record's own headers, in record order (each record names its range).
    public var headers: [Header] = []
    /// Headers every record carries after its own (the request's trace context).
    public var shared: [KafkaHeader] = []

    public init(topic: String, storage: [UInt8]) {
        self.topic = topic
        self.storage = storage
    }

    public var count: Int { records.count }
    public var isEmpty: Bool { records.isEmpty }

    /// Appends `bytes` to the storage and returns their span.
    public mutating func append(_ bytes: some Collection<UInt8>) -> Span {
        let start = storage.count
        storage.append(contentsOf: bytes)
        return Span(start: start, count: storage.count - start)
    }

    /// The bytes of `span`, or `nil` for null.
    public func bytes(_ span: Span) -> ArraySlice<UInt8>? {
        span.isNull ? nil : storage[span.start..<(span.start + span.count)]
    }

    /// Record `i` as a plain ``ProducerRecord`` (its own headers, then the shared ones).
    public func record(_ i: Int) -> ProducerRecord {
        let r = records[i]
        var out = ProducerRecord(topic: topic, partition: r.partition < 0 ? nil : r.partition, key: bytes(r.key).map(Array.init),
                                 value: bytes(r.value).map(Array.init), timestamp: r.timestamp < 0 ? nil : r.timestamp)
        out.headers.reserveCapacity(r.headers.count + shared.count)
        for h in headers[r.headers] { out.headers.append(KafkaHeader(h.name, bytes(h.value).map(Array.init))) }
        out.headers.append(contentsOf: shared)
        return out
    }

    /// Every record as a plain ``ProducerRecord``, in order.
    public func unpacked() -> [ProducerRecord] { records.indices.map(record) }
}

extension KafkaProducer {
    /// Sends packed records as ``sendBatch(_:_:)`` sends plain ones; the default unpacks them.
    public func sendPacked(_ batch: PackedRecords, _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void) {
        sendBatch(batch.unpacked(), completion)
    }
}
