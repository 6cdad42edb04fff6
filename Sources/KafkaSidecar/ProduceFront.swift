import Foundation
import MeshCore

/// Which REST request shape a produce request uses.
public enum ProduceShape: String, Hashable, Sendable {
    /// `POST /producers/{topic}`: `{keyFormat, valueFormat, records:[{key, value, partition?, headers?,
    /// traceabilityId?, correlationId?}]}`.
    case lightMesh
    /// `POST /topics/{topic}[/partitions/{p}]` with `application/vnd.kafka.json.v2+json`: keys and
    /// values are JSON values, stored as the bytes sent (Strimzi's `headers` and `timestamp` accepted too).
    case confluentJSON
    /// The same with `application/vnd.kafka.binary.v2+json`: keys and values are base64.
    case confluentBinary
    /// The same with Strimzi's `application/vnd.kafka.text.v2+json`: keys and values are strings.
    case confluentText

    /// The shape a `/topics/...` request's `Content-Type` names, or `nil` when it names none we take.
    public static func confluent(contentType: String?) -> ProduceShape? {
        guard let type = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() else { return nil }
        switch type {
        case "application/vnd.kafka.json.v2+json": return .confluentJSON
        case "application/vnd.kafka.binary.v2+json": return .confluentBinary
        case "application/vnd.kafka.text.v2+json": return .confluentText
        default: return nil
        }
    }
}

extension ProduceShape {
    /// How keys and values are written when the body does not say.
    var defaultFormat: ProduceFront.Format {
        switch self {
        case .lightMesh, .confluentText: .string
        case .confluentJSON: .json
        case .confluentBinary: .binary
        }
    }
}

/// A produce request that cannot be taken, with the HTTP status and Confluent's error code.
public struct ProduceRequestError: Error, Hashable, Sendable {
    public var status: Int
    /// Confluent REST's error code (40401 unknown topic, 415 content type, 422 constraint, 42201 key,
    /// 42202 value, 41301 too many records, ...).
    public var errorCode: Int
    public var message: String
    public init(status: Int, errorCode: Int, message: String) {
        self.status = status
        self.errorCode = errorCode
        self.message = message
    }
    static func key(_ message: String) -> Self { Self(status: 422, errorCode: 42201, message: message) }
    static func value(_ message: String) -> Self { Self(status: 422, errorCode: 42202, message: message) }
    /// The body is not JSON (or not the JSON shape asked for at all).
    static func body(_ message: String) -> Self { Self(status: 400, errorCode: 400, message: message) }
    /// Well-formed JSON that breaks a rule of the API (empty records, an unknown field, a conflict).
    static func constraint(_ message: String) -> Self { Self(status: 422, errorCode: 422, message: message) }
    /// The Content-Type names no shape the endpoint takes.
    public static func unsupportedMediaType(_ message: String) -> Self { Self(status: 415, errorCode: 415, message: message) }
}

/// Settings of the REST produce front.
public struct ProduceFrontConfig: Hashable, Sendable {
    /// Record headers never written, whatever the request says (compared case-insensitively).
    public var deniedHeaders: Set<String> = ["authorization", "proxy-authorization", "cookie", "set-cookie"]
    /// Records in one request.
    public var maxRecordsPerRequest = 10_000
    /// Produce to topics whose names start with `__` (`__consumer_offsets`, `__transaction_state`):
    /// Kafka's own; off by default.
    public var allowInternalTopics = false
    public init() {}
}

/// What the request carried besides its body: the trace and correlation the records continue.
public struct ProduceContext: Sendable {
    public var traceparent: String?
    public var tracestate: String?
    public var correlationId: String?
    public init(traceparent: String? = nil, tracestate: String? = nil, correlationId: String? = nil) {
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.correlationId = correlationId
    }
}

/// REST produce requests into `ProducerRecord`s and per-record results back into answers, for all
/// the shapes. Pure functions: the NIO front and the simulator's producers call the same ones.
public enum ProduceFront {
    /// Header names the sidecar writes itself on every record (a request's own are dropped).
    static let reservedHeaders: Set<String> = ["traceparent", "tracestate", "x-correlation-id", "x-traceability-id"]

    /// Why `topic` cannot be produced to, or `nil`: Kafka's legal names (`[a-zA-Z0-9._-]`, at most
    /// 249, not `.` or `..`), and Kafka's internal topics (`__` prefix) unless allowed.
    public static func topicProblem(_ topic: String, config: ProduceFrontConfig = ProduceFrontConfig()) -> ProduceRequestError? {
        let legal = !topic.isEmpty && topic.utf8.count <= 249 && topic != "." && topic != ".."
            && topic.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
            }
        guard legal else {
            return ProduceRequestError(status: 400, errorCode: 40003, message: "'\(topic)' is not a legal topic name ([a-zA-Z0-9._-], at most 249)")
        }
        // ci/mutants: internal-topic-accepted (the next line)
        if topic.hasPrefix("__") && !config.allowInternalTopics {
            return ProduceRequestError(status: 403, errorCode: 40301, message: "'\(topic)' is one of Kafka's internal topics")
        }
        return nil
    }

    /// The records `body` asks to produce to `topic` (and `partition` when the path names one).
    ///
    /// Each record gets the request's trace continued in a new span (`traceparent`, `tracestate`)
    /// and its correlation id (`x-correlation-id`); denied headers (credentials) are never copied.
    /// The body is read twice without building a tree of it: once to count the records (refused at
    /// the limit before any is decoded) and once to decode them. A JSON key or value is kept as the
    /// bytes sent, so the same key always lands on the same partition.
    public static func decode(
        _ shape: ProduceShape, topic: String, partition: Int32? = nil, body: [UInt8], context: ProduceContext,
        config: ProduceFrontConfig = ProduceFrontConfig(), random: inout some RandomSource
    ) throws(ProduceRequestError) -> [ProducerRecord] {
        var reader = JSONReader(body)
        let top = try envelope(shape, &reader, config)
        do {
            reader.seek(to: top.records)
            var records: [ProducerRecord] = []
            records.reserveCapacity(top.count)
            try reader.beginArray()
            var n = 0
            while try reader.nextElement(first: n == 0) {
                records.append(try record(n, &reader, shape: shape, formats: top.formats, topic: topic, partition: partition,
                                          context: context, config: config, random: &random))
                n += 1
            }
            return records
        } catch {
            throw refusal(error)
        }
    }

    /// What a failure while reading the body answers: a refusal as it is, malformed JSON as 400.
    private static func refusal(_ error: any Error) -> ProduceRequestError {
        switch error {
        case let refused as ProduceRequestError: refused
        case let malformed as JSONReader.Malformed: .body("the body is not valid JSON: \(malformed.message) at byte \(malformed.offset)")
        default: .body("\(error)")
        }
    }

    /// The top level: where `records` starts, how many it holds, the key and value formats.
    private static func envelope(_ shape: ProduceShape, _ reader: inout JSONReader, _ config: ProduceFrontConfig)
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
                        guard count <= config.maxRecordsPerRequest else {
                            throw ProduceRequestError(status: 413, errorCode: 41301,
                                                      message: "more than \(config.maxRecordsPerRequest) records in one request")
                        }
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

    /// Record `n`, read from its opening brace.
    private static func record(
        _ n: Int, _ reader: inout JSONReader, shape: ProduceShape, formats: (key: Format, value: Format), topic: String,
        partition: Int32?, context: ProduceContext, config: ProduceFrontConfig, random: inout some RandomSource
    ) throws -> ProducerRecord {
        var record = ProducerRecord(topic: topic, partition: partition, value: nil)
        var correlation = context.correlationId
        var traceability: String?
        guard try reader.nextKind() == .object else { throw JSONReader.Malformed(offset: reader.index, message: "records[\(n)] is not an object") }
        try reader.beginObject()
        // The known fields seen so far, a bit each (unknown ones are refused below anyway): no set
        // of strings to hash per record.
        var seen: UInt8 = 0, first = true
        while let name = try reader.nextMember(first: first) {
            first = false
            let bit = Self.recordFieldBit(name)
            guard seen & bit == 0 else { throw ProduceRequestError.constraint("records[\(n)].\(name) is given twice") }
            seen |= bit
            switch name {
            case "key":
                do throws(FieldError) { record.key = try formats.key.bytes(&reader) } catch {
                    throw ProduceRequestError.key("records[\(n)].key: \(error.message)")
                }
            case "value":
                do throws(FieldError) { record.value = try formats.value.bytes(&reader) } catch {
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
                record.headers = try headers(&reader, n, config)
            case "correlationId" where shape == .lightMesh:
                if !reader.null() { correlation = try reader.string() }
            case "traceabilityId" where shape == .lightMesh:
                if !reader.null() { traceability = try reader.string() }
            default:
                throw ProduceRequestError.constraint("records[\(n)] has an unknown field '\(name)'")
            }
        }
        if let traceability { record.headers.append(KafkaHeader("x-traceability-id", Array(traceability.utf8))) }
        if let correlation { record.headers.append(KafkaHeader("x-correlation-id", Array(correlation.utf8))) }
        let hop = TracePropagation.nextHop(traceparent: context.traceparent, tracestate: context.tracestate, random: &random)
        record.headers.append(KafkaHeader("traceparent", Array(hop.context.traceparent.utf8)))
        if let state = hop.context.traceStateHeaderValue, !state.isEmpty {
            record.headers.append(KafkaHeader("tracestate", Array(state.utf8)))
        }
        return record
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

    /// Record headers from the body: an object of strings (light-mesh) or Strimzi's list of
    /// `{"key","value"(base64)}`. Names must be non-empty and free of control bytes (librdkafka cuts
    /// a name at NUL, which would let `Authorization\u0000x` past the filters); a reserved or denied
    /// name given twice is refused; trace headers and denied ones given once are dropped.
    private static func headers(_ reader: inout JSONReader, _ n: Int, _ config: ProduceFrontConfig) throws -> [KafkaHeader] {
        if reader.null() { return [] }
        var out: [KafkaHeader] = []
        var special: [String: Int] = [:]
        func add(_ name: String, _ value: [UInt8]?, _ at: String) throws {
            // ci/mutants: header-controls-kept (the next line)
            guard !name.isEmpty, !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
                throw ProduceRequestError.constraint("\(at): a header name must be non-empty and free of control characters")
            }
            let lower = name.lowercased()
            // ci/mutants: credentials-copied (the next line)
            if config.deniedHeaders.contains(lower) || reservedHeaders.contains(lower) {
                special[lower, default: 0] += 1
                guard special[lower]! == 1 else { throw ProduceRequestError.constraint("\(at): the header '\(name)' is given more than once") }
                return
            }
            out.append(KafkaHeader(name, value))
        }
        switch try reader.nextKind() {
        case .object:
            try reader.beginObject()
            var seen: Set<String> = []
            while let name = try reader.nextMember(first: seen.isEmpty) {
                guard seen.insert(name).inserted else { throw ProduceRequestError.constraint("records[\(n)].headers.\(name) is given twice") }
                guard try reader.nextKind() == .string else { throw ProduceRequestError.constraint("records[\(n)].headers.\(name) must be a string") }
                try add(name, Array(try reader.string().utf8), "records[\(n)].headers")
            }
        case .array:
            try reader.beginArray()
            var k = 0
            while try reader.nextElement(first: k == 0) {
                let at = "records[\(n)].headers[\(k)]"
                guard try reader.nextKind() == .object else { throw ProduceRequestError.constraint("\(at) must be {\"key\",\"value\"}") }
                try reader.beginObject()
                var name: String?, value: [UInt8]?, first = true
                while let member = try reader.nextMember(first: first) {
                    first = false
                    switch member {
                    case "key" where name == nil:
                        guard try reader.nextKind() == .string else { throw ProduceRequestError.constraint("\(at).key must be a string") }
                        name = try reader.string()
                    case "value" where value == nil:
                        if reader.null() { break }
                        guard try reader.nextKind() == .string, let bytes = Base64.decode(try reader.string()) else {
                            throw ProduceRequestError.constraint("\(at).value is not base64")
                        }
                        value = bytes
                    default:
                        throw ProduceRequestError.constraint("\(at) must be {\"key\",\"value\"}")
                    }
                }
                guard let name else { throw ProduceRequestError.constraint("\(at) has no key") }
                try add(name, value, at)
                k += 1
            }
        default:
            throw ProduceRequestError.constraint("records[\(n)].headers must be an object or a list")
        }
        return out
    }

    struct FieldError: Error { var message: String }

    /// How a key or value is written in the body.
    enum Format {
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

        /// `nil` for a null field (a null key; `""` is an empty key, a different thing).
        func bytes(_ reader: inout JSONReader) throws(FieldError) -> [UInt8]? {
            if reader.null() { return nil }
            switch self {
            case .string:
                guard (try? reader.nextKind()) == .string, let bytes = try? reader.stringBytes() else { throw FieldError(message: "must be a string") }
                return bytes
            case .binary:
                guard (try? reader.nextKind()) == .string, let s = try? reader.string(), let bytes = Base64.decode(s) else {
                    throw FieldError(message: "must be base64")
                }
                return bytes
            case .json:
                guard let span = try? reader.skipValue() else { throw FieldError(message: "is not a JSON value") }
                return Array(reader.slice(span))
            }
        }
    }

    // MARK: answers

    /// The Confluent v2 produce answer: one entry per record, in request order; failures carry
    /// 50003 when retriable, else 50002.
    public static func confluentAnswer(_ results: [Result<RecordMetadata, KafkaError>]) -> [UInt8] {
        var w = JSONWriter(capacity: 32 + results.count * 72)
        w.raw("{\"offsets\":[")
        for (n, result) in results.enumerated() {
            if n > 0 { w.raw(",") }
            switch result {
            case .success(let m):
                w.raw("{\"partition\":")
                w.int(m.topicPartition.partition)
                w.raw(",\"offset\":")
                w.int(m.offset)
                w.raw(",\"error_code\":null,\"error\":null}")
            case .failure(let e):
                w.raw("{\"partition\":null,\"offset\":null,\"error_code\":")
                w.int(e.retriable ? 50003 : 50002)
                w.raw(",\"error\":")
                w.string(e.description)
                w.raw("}")
            }
        }
        w.raw("],\"key_schema_id\":null,\"value_schema_id\":null}")
        return w.bytes
    }

    /// The light-mesh produce answer: `{"results":[{"topic","partition","offset"} | {"error":{"code",
    /// "message","retriable"}}]}`, in request order.
    public static func lightMeshAnswer(_ results: [Result<RecordMetadata, KafkaError>]) -> [UInt8] {
        var w = JSONWriter(capacity: 32 + results.count * 72)
        w.raw("{\"results\":[")
        for (n, result) in results.enumerated() {
            if n > 0 { w.raw(",") }
            switch result {
            case .success(let m):
                w.raw("{\"topic\":")
                w.string(m.topicPartition.topic)
                w.raw(",\"partition\":")
                w.int(m.topicPartition.partition)
                w.raw(",\"offset\":")
                w.int(m.offset)
                w.raw("}")
            case .failure(let e):
                w.raw("{\"error\":{\"code\":")
                w.string(e.code)
                w.raw(",\"message\":")
                w.string(e.message)
                w.raw(",\"retriable\":")
                w.bool(e.retriable)
                w.raw("}}")
            }
        }
        w.raw("]}")
        return w.bytes
    }

    /// The HTTP status of a produce answer: 200 when every record was stored; 404 (40401) when the
    /// topic does not exist; 207 when some were; 503 when none was and all may be retried; else 500.
    public static func status(_ results: [Result<RecordMetadata, KafkaError>]) -> Int {
        var ok = 0, retriable = 0, unknownTopic = 0
        for r in results {
            switch r {
            case .success: ok += 1
            case .failure(let e):
                if e.retriable { retriable += 1 }
                if e.code.hasPrefix("unknown_topic") { unknownTopic += 1 }
            }
        }
        if ok == results.count { return 200 }
        if unknownTopic == results.count { return 404 }
        if ok > 0 { return 207 }
        return retriable == results.count ? 503 : 500
    }

    /// A Confluent-style error body.
    public static func errorBody(_ error: ProduceRequestError) -> [UInt8] {
        JSONText.kafkaError(code: error.errorCode, message: error.message)
    }
}
