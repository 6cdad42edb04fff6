import MeshCore

/// Reading a produce request's body into ``PackedRecords``.
extension ProduceFront {
    /// The records `body` asks to produce to `topic` (and `partition` when the path names one),
    /// packed: keys and values that stand in the body as they are sent (strings without escapes,
    /// JSON values) are spans of the body, not copies.
    ///
    /// Every record carries the request's trace continued in one new span (`traceparent`,
    /// `tracestate`: the produce request is one operation, as OpenTelemetry's messaging conventions
    /// let a batch publish share its context) and its correlation id (`x-correlation-id`); denied
    /// headers (credentials) are never copied. A JSON key or value is kept as the bytes sent, so
    /// the same key always lands on the same partition.
    ///
    /// The body is read once. A body refused on the way is read again by the whole-body checks (valid
    /// JSON, the top level's rules, the record limit), whose refusal comes first when there is one:
    /// the answer is the one a reader that validated first would give, at no cost to a good body.
    public static func decode(
        _ shape: ProduceShape, topic: String, partition: Int32? = nil, body: [UInt8], context: ProduceContext,
        config: ProduceFrontConfig = ProduceFrontConfig(), random: inout some RandomSource
    ) throws(ProduceRequestError) -> PackedRecords {
        var reader = BodyReader(body: body, shape: shape, partition: partition, config: config)
        if let correlation = context.correlationId { reader.correlation = reader.append(Array(correlation.utf8)) }
        do {
            try reader.read()
        } catch {
            var check = JSONReader(body)
            _ = try envelope(shape, &check, config)
            throw refusal(error)
        }
        var batch = PackedRecords(topic: topic, storage: body)
        if !reader.extra.isEmpty { batch.storage.append(contentsOf: reader.extra) }
        batch.records = reader.records
        batch.headers = reader.headers
        let hop = TracePropagation.nextHop(traceparent: context.traceparent, tracestate: context.tracestate, random: &random)
        batch.shared.append(KafkaHeader("traceparent", Array(hop.context.traceparent.utf8)))
        if let state = hop.context.traceStateHeaderValue, !state.isEmpty {
            batch.shared.append(KafkaHeader("tracestate", Array(state.utf8)))
        }
        return batch
    }

    /// What a failure while reading the body answers: a refusal as it is, malformed JSON as 400.
    static func refusal(_ error: any Error) -> ProduceRequestError {
        switch error {
        case let refused as ProduceRequestError: refused
        case let malformed as JSONReader.Malformed: .body("the body is not valid JSON: \(malformed.message) at byte \(malformed.offset)")
        default: .body("\(error)")
        }
    }

    /// The top level, checked whole: where `records` starts, how many it holds, the key and value
    /// formats. Run on a refused body only (see ``decode(_:topic:partition:body:context:config:random:)``).
    static func envelope(_ shape: ProduceShape, _ reader: inout JSONReader, _ config: ProduceFrontConfig)
        throws(ProduceRequestError) -> (records: Int, count: Int, formats: (key: Format, value: Format)) {
        var records: (start: Int, count: Int)?
        var keyFormat = shape.defaultFormat, valueFormat = shape.defaultFormat
        do {
            guard try reader.nextKind() == .object else { throw ProduceRequestError.body("the body is not a JSON object") }
            try reader.beginObject()
            var seen: Set<String> = []
            while let name = try reader.nextMember(first: seen.isEmpty) {
                guard seen.insert(name).inserted else { throw ProduceRequestError.constraint("'\(name)' is given twice") }
                switch (name, shape) {
                case ("records", _):
                    guard try reader.nextKind() == .array else { throw ProduceRequestError.constraint("'records' must be an array") }
                    reader.skipSpace()
                    let start = reader.index
                    try reader.beginArray()
                    var count = 0
                    while try reader.nextElement(first: count == 0) {
                        count += 1
                        guard count <= config.maxRecordsPerRequest else { throw tooMany(config) }
                        _ = try reader.skipValue()
                    }
                    records = (start, count)
                case ("keyFormat", .lightMesh): keyFormat = try Format(&reader, name)
                case ("valueFormat", .lightMesh): valueFormat = try Format(&reader, name)
                case ("key_schema", _), ("key_schema_id", _), ("value_schema", _), ("value_schema_id", _):
                    throw ProduceRequestError.constraint("'\(name)': schema formats are not supported")
                default:
                    throw ProduceRequestError.constraint("unknown field '\(name)'")
                }
            }
            try reader.end()
        } catch {
            throw refusal(error)
        }
        guard let records else { throw ProduceRequestError.constraint("'records' is missing") }
        guard records.count > 0 else { throw ProduceRequestError.constraint("'records' must not be empty") }
        return (records.start, records.count, (keyFormat, valueFormat))
    }

    static func tooMany(_ config: ProduceFrontConfig) -> ProduceRequestError {
        ProduceRequestError(status: 413, errorCode: 41301, message: "more than \(config.maxRecordsPerRequest) records in one request")
    }

    struct FieldError: Error { var message: String }

    /// How a key or value is written in the body.
    enum Format: Hashable {
        /// A JSON string whose UTF-8 bytes are the data (light-mesh's default, Strimzi's text).
        case string
        /// Any JSON value, stored as the bytes it was sent as.
        case json
        /// A base64 string.
        case binary

        init(_ reader: inout JSONReader, _ name: String) throws(ProduceRequestError) {
            if reader.null() { self = .string; return }
            guard (try? reader.nextKind()) == .string, let text = try? reader.string() else { throw ProduceRequestError.constraint("\(name) must be string, json or binary") }
            switch text.lowercased() {
            case "string": self = .string
            case "json": self = .json
            case "binary", "base64": self = .binary
            default: throw ProduceRequestError.constraint("\(name) must be string, json or binary")
            }
        }
    }
}

/// One pass over a produce body, building the packed records as it goes.
///
/// Spans below `body.count` point into the body; bytes that had to be decoded (escaped strings,
/// base64) go to ``extra``, which the caller appends after the body, so their spans start there.
struct BodyReader {
    private var reader: JSONReader
    private let base: Int
    private let shape: ProduceShape
    private let partition: Int32?
    private let config: ProduceFrontConfig
    private(set) var records: [PackedRecords.Record] = []
    private(set) var headers: [PackedRecords.Header] = []
    private(set) var extra: [UInt8] = []
    /// The request's correlation id, for records that name none of their own.
    var correlation: PackedRecords.Span?

    init(body: [UInt8], shape: ProduceShape, partition: Int32?, config: ProduceFrontConfig) {
        reader = JSONReader(body)
        base = body.count
        self.shape = shape
        self.partition = partition
        self.config = config
    }

    /// `bytes` added to ``extra``; their span in the storage-to-be.
    mutating func append(_ bytes: [UInt8]) -> PackedRecords.Span {
        let start = base + extra.count
        extra.append(contentsOf: bytes)
        return PackedRecords.Span(start: start, count: bytes.count)
    }

    /// The whole body. Any refusal is thrown as found; the caller decides which refusal answers.
    mutating func read() throws {
        guard try reader.nextKind() == .object else { throw ProduceRequestError.body("the body is not a JSON object") }
        try reader.beginObject()
        var formats = (key: shape.defaultFormat, value: shape.defaultFormat)
        // Where `records` starts and the formats it was read with: a format named after the records
        // (light-mesh lets the members come in any order) reads them again.
        var recordsRead: (start: Int, extra: Int, key: ProduceFront.Format, value: ProduceFront.Format)?
        var keyFormatSeen = false, valueFormatSeen = false
        var first = true
        while let name = try reader.nextMember(first: first) {
            first = false
            switch (name, shape) {
            case ("records", _) where recordsRead == nil:
                guard try reader.nextKind() == .array else { throw ProduceRequestError.constraint("'records' must be an array") }
                recordsRead = (reader.index, extra.count, formats.key, formats.value)
                try readRecords(formats)
            case ("keyFormat", .lightMesh) where !keyFormatSeen:
                keyFormatSeen = true
                formats.key = try ProduceFront.Format(&reader, name)
            case ("valueFormat", .lightMesh) where !valueFormatSeen:
                valueFormatSeen = true
                formats.value = try ProduceFront.Format(&reader, name)
            default:
                throw ProduceRequestError.constraint("'\(name)' is not a field here, or is given twice")
            }
        }
        try reader.end()
        guard let read = recordsRead else { throw ProduceRequestError.constraint("'records' is missing") }
        if (read.key, read.value) != (formats.key, formats.value) {
            let end = reader.index
            records.removeAll(keepingCapacity: true)
            headers.removeAll(keepingCapacity: true)
            extra.removeSubrange(read.extra...)
            reader.seek(to: read.start)
            try readRecords(formats)
            reader.seek(to: end)
        }
        guard !records.isEmpty else { throw ProduceRequestError.constraint("'records' must not be empty") }
    }

    private mutating func readRecords(_ formats: (key: ProduceFront.Format, value: ProduceFront.Format)) throws {
        try reader.beginArray()
        var n = 0
        while try reader.nextElement(first: n == 0) {
            guard n < config.maxRecordsPerRequest else { throw ProduceFront.tooMany(config) }
            try readRecord(n, formats)
            n += 1
        }
    }

    /// Record `n`, read from its opening brace.
    private mutating func readRecord(_ n: Int, _ formats: (key: ProduceFront.Format, value: ProduceFront.Format)) throws {
        var record = PackedRecords.Record()
        if let partition { record.partition = partition }
        let headersStart = headers.count
        var correlation = self.correlation
        var traceability: PackedRecords.Span?
        guard try reader.nextKind() == .object else { throw JSONReader.Malformed(offset: reader.index, message: "records[\(n)] is not an object") }
        try reader.beginObject()
        // The known fields seen so far, a bit each (unknown ones are refused below anyway).
        var seen: UInt8 = 0, first = true
        while let name = try reader.nextMember(first: first) {
            first = false
            let bit = Self.recordFieldBit(name)
            guard seen & bit == 0 else { throw ProduceRequestError.constraint("records[\(n)].\(name) is given twice") }
            seen |= bit
            switch name {
            case "key":
                do throws(ProduceFront.FieldError) { record.key = try field(formats.key) } catch {
                    throw ProduceRequestError.key("records[\(n)].key: \(error.message)")
                }
            case "value":
                do throws(ProduceFront.FieldError) { record.value = try field(formats.value) } catch {
                    throw ProduceRequestError.value("records[\(n)].value: \(error.message)")
                }
            case "partition":
                if reader.null() { break }
                guard let exact = try? reader.integer(in: 0...Int64(Int32.max)) else {
                    throw ProduceRequestError.constraint("records[\(n)].partition must be a non-negative integer")
                }
                if partition != nil { throw ProduceRequestError.constraint("records[\(n)].partition is given in the body and in the path") }
                record.partition = Int32(exact)
            case "timestamp":
                if reader.null() { break }
                guard let ms = try? reader.integer(in: 0...Int64.max) else {
                    throw ProduceRequestError.constraint("records[\(n)].timestamp must be milliseconds since the epoch")
                }
                record.timestamp = ms
            case "headers":
                try readHeaders(n)
            case "correlationId" where shape == .lightMesh:
                if !reader.null() { correlation = try stringSpan() }
            case "traceabilityId" where shape == .lightMesh:
                if !reader.null() { traceability = try stringSpan() }
            default:
                throw ProduceRequestError.constraint("records[\(n)] has an unknown field '\(name)'")
            }
        }
        if let traceability { headers.append(PackedRecords.Header("x-traceability-id", traceability)) }
        if let correlation { headers.append(PackedRecords.Header("x-correlation-id", correlation)) }
        record.headers = headersStart..<headers.count
        records.append(record)
    }

    private static func recordFieldBit(_ name: String) -> UInt8 {
        switch name {
        case "key": 1
        case "value": 2
        case "partition": 4
        case "timestamp": 8
        case "headers": 16
        case "correlationId": 32
        case "traceabilityId": 64
        default: 0
        }
    }

    /// A JSON string's UTF-8: its span in the body when it has no escapes, else decoded into ``extra``.
    private mutating func stringSpan() throws(JSONReader.Malformed) -> PackedRecords.Span {
        let (span, escaped) = try reader.stringContent()
        guard escaped else { return PackedRecords.Span(start: span.lowerBound, count: span.count) }
        return append(try reader.unescaped(span))
    }

    /// A JSON string of base64, decoded into ``extra``; `nil` when it is not base64. (Escapes are
    /// resolved first: some encoders write `/` as `\/`.)
    private mutating func base64() throws(JSONReader.Malformed) -> PackedRecords.Span? {
        let (span, escaped) = try reader.stringContent()
        let start = base + extra.count
        let decoded = escaped ? Base64.decode(try reader.unescaped(span)[...], into: &extra) : Base64.decode(reader.slice(span), into: &extra)
        return decoded ? PackedRecords.Span(start: start, count: base + extra.count - start) : nil
    }

    /// A key or value in `format`; null for a null field (`""` is an empty one, a different thing).
    private mutating func field(_ format: ProduceFront.Format) throws(ProduceFront.FieldError) -> PackedRecords.Span {
        if reader.null() { return .null }
        switch format {
        case .string:
            guard (try? reader.nextKind()) == .string, let span = try? stringSpan() else { throw ProduceFront.FieldError(message: "must be a string") }
            return span
        case .binary:
            guard (try? reader.nextKind()) == .string, let span = try? base64() else { throw ProduceFront.FieldError(message: "must be base64") }
            return span
        case .json:
            guard let span = try? reader.skipValue() else { throw ProduceFront.FieldError(message: "is not a JSON value") }
            return PackedRecords.Span(start: span.lowerBound, count: span.count)
        }
    }

    /// Record headers from the body: an object of strings (light-mesh) or Strimzi's list of
    /// `{"key","value"(base64)}`. Names must be non-empty and free of control bytes (librdkafka cuts
    /// a name at NUL, which would let `Authorization\u0000x` past the filters); a reserved or denied
    /// name given twice is refused; trace headers and denied ones given once are dropped.
    private mutating func readHeaders(_ n: Int) throws {
        if reader.null() { return }
        var special: [String: Int] = [:]
        let config = self.config
        func admit(_ name: String, _ at: String) throws -> Bool {
            // ci/mutants: header-controls-kept (the next line)
            guard !name.isEmpty, !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
                throw ProduceRequestError.constraint("\(at): a header name must be non-empty and free of control characters")
            }
            let lower = name.lowercased()
            // ci/mutants: credentials-copied (the next line)
            if config.deniedHeaders.contains(lower) || ProduceFront.reservedHeaders.contains(lower) {
                special[lower, default: 0] += 1
                guard special[lower]! == 1 else { throw ProduceRequestError.constraint("\(at): the header '\(name)' is given more than once") }
                return false
            }
            return true
        }
        switch try reader.nextKind() {
        case .object:
            try reader.beginObject()
            var seen: Set<String> = []
            while let name = try reader.nextMember(first: seen.isEmpty) {
                guard seen.insert(name).inserted else { throw ProduceRequestError.constraint("records[\(n)].headers.\(name) is given twice") }
                guard try reader.nextKind() == .string else { throw ProduceRequestError.constraint("records[\(n)].headers.\(name) must be a string") }
                let value = try stringSpan()
                if try admit(name, "records[\(n)].headers") { headers.append(PackedRecords.Header(name, value)) }
            }
        case .array:
            try reader.beginArray()
            var k = 0
            while try reader.nextElement(first: k == 0) {
                let at = "records[\(n)].headers[\(k)]"
                guard try reader.nextKind() == .object else { throw ProduceRequestError.constraint("\(at) must be {\"key\",\"value\"}") }
                try reader.beginObject()
                var name: String?, value: PackedRecords.Span?, first = true
                while let member = try reader.nextMember(first: first) {
                    first = false
                    switch member {
                    case "key" where name == nil:
                        guard try reader.nextKind() == .string else { throw ProduceRequestError.constraint("\(at).key must be a string") }
                        name = try reader.string()
                    case "value" where value == nil:
                        if reader.null() {
                            value = .null
                            break
                        }
                        guard try reader.nextKind() == .string, let span = try base64() else {
                            throw ProduceRequestError.constraint("\(at).value is not base64")
                        }
                        value = span
                    default:
                        throw ProduceRequestError.constraint("\(at) must be {\"key\",\"value\"}")
                    }
                }
                guard let name else { throw ProduceRequestError.constraint("\(at) has no key") }
                if try admit(name, at) { headers.append(PackedRecords.Header(name, value ?? .null)) }
                k += 1
            }
        default:
            throw ProduceRequestError.constraint("records[\(n)].headers must be an object or a list")
        }
    }
}
