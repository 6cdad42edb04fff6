import Foundation
import MeshCore

/// Which REST request shape a produce request uses.
public enum ProduceShape: String, Hashable, Sendable {
    /// `POST /producers/{topic}`: `{keyFormat, valueFormat, records:[{key, value, partition?, headers?,
    /// traceabilityId?, correlationId?}]}`.
    case lightMesh
    /// `POST /topics/{topic}[/partitions/{p}]` with `application/vnd.kafka.json.v2+json`: keys and
    /// values are JSON values (Strimzi's `headers` and `timestamp` accepted too).
    case confluentJSON
    /// The same with `application/vnd.kafka.binary.v2+json`: keys and values are base64.
    case confluentBinary

    /// The shape a `/topics/...` request's `Content-Type` names, or `nil` when it names none we take.
    public static func confluent(contentType: String?) -> ProduceShape? {
        guard let type = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() else { return nil }
        switch type {
        case "application/vnd.kafka.json.v2+json": return .confluentJSON
        case "application/vnd.kafka.binary.v2+json": return .confluentBinary
        default: return nil
        }
    }
}

/// A produce request that cannot be taken, with the HTTP status and Confluent's error code.
public struct ProduceRequestError: Error, Hashable, Sendable {
    public var status: Int
    /// Confluent REST's error code (40401 unknown topic, 40601 content type, 42201 key, 42202 value, ...).
    public var errorCode: Int
    public var message: String
    public init(status: Int, errorCode: Int, message: String) {
        self.status = status
        self.errorCode = errorCode
        self.message = message
    }
    static func key(_ message: String) -> Self { Self(status: 422, errorCode: 42201, message: message) }
    static func value(_ message: String) -> Self { Self(status: 422, errorCode: 42202, message: message) }
    static func body(_ message: String) -> Self { Self(status: 400, errorCode: 400, message: message) }
}

/// Settings of the REST produce front.
public struct ProduceFrontConfig: Hashable, Sendable {
    /// Record headers never written, whatever the request says (compared case-insensitively).
    public var deniedHeaders: Set<String> = ["authorization", "proxy-authorization", "cookie", "set-cookie"]
    /// Records in one request.
    public var maxRecordsPerRequest = 10_000
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
/// three shapes. Pure functions: the NIO front and the simulator's producers call the same ones.
public enum ProduceFront {
    /// The records `body` asks to produce to `topic` (and `partition` when the path names one).
    ///
    /// Each record gets the request's trace continued in a new span (`traceparent`, `tracestate`)
    /// and its correlation id (`x-correlation-id`); denied headers (credentials) are never copied.
    public static func decode(
        _ shape: ProduceShape, topic: String, partition: Int32? = nil, body: [UInt8], context: ProduceContext,
        config: ProduceFrontConfig = ProduceFrontConfig(), random: inout some RandomSource
    ) throws(ProduceRequestError) -> [ProducerRecord] {
        guard !body.isEmpty, let json = try? JSONSerialization.jsonObject(with: Data(body)),
              let object = json as? [String: Any] else {
            throw .body("the body is not a JSON object")
        }
        guard let items = object["records"] as? [Any], !items.isEmpty else {
            throw .body("'records' must be a non-empty array")
        }
        guard items.count <= config.maxRecordsPerRequest else {
            throw ProduceRequestError(status: 413, errorCode: 41301, message: "\(items.count) records exceed the limit of \(config.maxRecordsPerRequest) per request")
        }
        let keyFormat: Format, valueFormat: Format
        switch shape {
        case .lightMesh:
            keyFormat = try Format(object["keyFormat"], "keyFormat")
            valueFormat = try Format(object["valueFormat"], "valueFormat")
        case .confluentJSON: (keyFormat, valueFormat) = (.json, .json)
        case .confluentBinary: (keyFormat, valueFormat) = (.binary, .binary)
        }
        var records: [ProducerRecord] = []
        records.reserveCapacity(items.count)
        for (n, item) in items.enumerated() {
            guard let r = item as? [String: Any] else { throw .body("records[\(n)] is not an object") }
            var record = ProducerRecord(topic: topic, partition: partition, value: nil)
            do throws(FieldError) {
                record.key = try keyFormat.bytes(r["key"])
            } catch {
                throw .key("records[\(n)].key: \(error.message)")
            }
            do throws(FieldError) {
                record.value = try valueFormat.bytes(r["value"])
            } catch {
                throw .value("records[\(n)].value: \(error.message)")
            }
            if let p = r["partition"], !(p is NSNull) {
                guard let number = p as? NSNumber, !isBool(number), let exact = Int32(exactly: number.doubleValue), exact >= 0 else {
                    throw .body("records[\(n)].partition must be a non-negative integer")
                }
                if let partition, partition != exact { throw .body("records[\(n)].partition \(exact) contradicts the path's partition \(partition)") }
                record.partition = exact
            }
            if let t = r["timestamp"], !(t is NSNull) {
                guard let number = t as? NSNumber, !isBool(number), let ms = Int64(exactly: number.doubleValue), ms >= 0 else {
                    throw .body("records[\(n)].timestamp must be milliseconds since the epoch")
                }
                record.timestamp = ms
            }
            record.headers = try headers(r["headers"], shape, n, config)
            var correlation = context.correlationId
            if shape == .lightMesh {
                if let c = r["correlationId"] as? String { correlation = c }
                if let t = r["traceabilityId"] as? String { record.headers.append(KafkaHeader("x-traceability-id", Array(t.utf8))) }
            }
            if let correlation { record.headers.append(KafkaHeader("x-correlation-id", Array(correlation.utf8))) }
            let hop = TracePropagation.nextHop(traceparent: context.traceparent, tracestate: context.tracestate, random: &random)
            record.headers.append(KafkaHeader("traceparent", Array(hop.context.traceparent.utf8)))
            if let state = hop.context.traceStateHeaderValue, !state.isEmpty {
                record.headers.append(KafkaHeader("tracestate", Array(state.utf8)))
            }
            records.append(record)
        }
        return records
    }

    /// JSON `true`/`false` arrive as `NSNumber`s whose type is a char; JSON numbers never do.
    private static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    /// Record headers from the body: an object of strings (light-mesh) or Strimzi's list of
    /// `{"key","value"(base64)}`; trace headers and denied ones are dropped.
    private static func headers(_ field: Any?, _ shape: ProduceShape, _ n: Int, _ config: ProduceFrontConfig) throws(ProduceRequestError) -> [KafkaHeader] {
        guard let field, !(field is NSNull) else { return [] }
        var out: [KafkaHeader] = []
        func keep(_ name: String) -> Bool {
            let lower = name.lowercased()
            return !config.deniedHeaders.contains(lower) && lower != "traceparent" && lower != "tracestate" && lower != "x-correlation-id"
        }
        if let object = field as? [String: Any] {
            for name in object.keys.sorted() {
                guard let value = object[name] as? String else { throw .body("records[\(n)].headers.\(name) must be a string") }
                if keep(name) { out.append(KafkaHeader(name, Array(value.utf8))) }
            }
        } else if let list = field as? [Any] {
            for (k, item) in list.enumerated() {
                guard let h = item as? [String: Any], let name = h["key"] as? String else {
                    throw .body("records[\(n)].headers[\(k)] must be {\"key\",\"value\"}")
                }
                var value: [UInt8]?
                if let text = h["value"] as? String {
                    guard let bytes = Base64.decode(text) else { throw .body("records[\(n)].headers[\(k)].value is not base64") }
                    value = bytes
                }
                if keep(name) { out.append(KafkaHeader(name, value)) }
            }
        } else {
            throw .body("records[\(n)].headers must be an object or a list")
        }
        return out
    }

    struct FieldError: Error { var message: String }

    /// How a key or value is written in the body.
    enum Format {
        /// A JSON string whose UTF-8 bytes are the data (light-mesh's default).
        case string
        /// Any JSON value, stored as its JSON text.
        case json
        /// A base64 string.
        case binary

        init(_ field: Any?, _ name: String) throws(ProduceRequestError) {
            guard let field, !(field is NSNull) else { self = .string; return }
            switch (field as? String)?.lowercased() {
            case "string": self = .string
            case "json": self = .json
            case "binary", "base64": self = .binary
            default: throw .body("\(name) must be string, json or binary")
            }
        }

        /// `nil` for a missing or null field (a null key; `""` is an empty key, a different thing).
        func bytes(_ field: Any?) throws(FieldError) -> [UInt8]? {
            guard let field, !(field is NSNull) else { return nil }
            switch self {
            case .string:
                guard let s = field as? String else { throw FieldError(message: "must be a string") }
                return Array(s.utf8)
            case .binary:
                guard let s = field as? String, let bytes = Base64.decode(s) else { throw FieldError(message: "must be base64") }
                return bytes
            case .json:
                guard let data = try? JSONSerialization.data(withJSONObject: field, options: [.fragmentsAllowed, .withoutEscapingSlashes]) else {
                    throw FieldError(message: "is not a JSON value")
                }
                return Array(data)
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
        var w = JSONWriter()
        w.raw("{\"error_code\":")
        w.int(error.errorCode)
        w.raw(",\"message\":")
        w.string(error.message)
        w.raw("}")
        return w.bytes
    }
}
