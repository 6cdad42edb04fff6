import MeshCore

/// How a pull consumer's answers are written, per flavour: Confluent v2 or the Strimzi bridge.
public enum PullAnswers {
    /// The answer to `call` on an instance with `settings` (its assigned partitions for Strimzi's
    /// subscription answer).
    public static func encode(_ answer: PullAnswer, call: PullCall, settings: PullConsumerSettings, assigned: [TopicPartition]) -> RESTAnswer {
        switch answer {
        case .refused(let e):
            return refusal(e, settings.flavour)
        case .records(let records):
            return recordsAnswer(records, settings)
        case .done:
            if case .commit = call, settings.flavour == .confluent { return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: Array("[]".utf8)) }
            return .noContent
        case .subscription(let topics):
            var w = JSONWriter()
            w.raw("{\"topics\":[")
            for (i, t) in topics.enumerated() {
                if i > 0 { w.raw(",") }
                w.string(t)
            }
            w.raw("]")
            if settings.flavour == .strimzi {
                // Strimzi adds what is assigned: [{"t1":[0,1]}].
                w.raw(",\"partitions\":[")
                let byTopic = Dictionary(grouping: assigned, by: \.topic)
                for (i, t) in byTopic.keys.sorted().enumerated() {
                    if i > 0 { w.raw(",") }
                    w.raw("{")
                    w.string(t)
                    w.raw(":[")
                    for (k, tp) in byTopic[t]!.sorted().enumerated() {
                        if k > 0 { w.raw(",") }
                        w.int(tp.partition)
                    }
                    w.raw("]}")
                }
                w.raw("]")
            }
            w.raw("}")
            return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: w.bytes)
        case .assignment(let tps):
            var w = JSONWriter()
            w.raw("{\"partitions\":[")
            for (i, tp) in tps.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"topic\":")
                w.string(tp.topic)
                w.raw(",\"partition\":")
                w.int(tp.partition)
                w.raw("}")
            }
            w.raw("]}")
            return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: w.bytes)
        case .committed(let offsets):
            var w = JSONWriter()
            w.raw("{\"offsets\":[")
            for (i, o) in offsets.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"topic\":")
                w.string(o.topicPartition.topic)
                w.raw(",\"partition\":")
                w.int(o.topicPartition.partition)
                w.raw(",\"offset\":")
                w.int(o.offset)
                w.raw(",\"metadata\":\"\"}")
            }
            w.raw("]}")
            return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: w.bytes)
        }
    }

    /// `POST /consumers/{group}`: the instance's id and base URI (`origin` is the scheme and host
    /// the app reached the sidecar by, e.g. `http://localhost:8082`).
    public static func created(group: String, name: String, origin: String) -> RESTAnswer {
        var w = JSONWriter()
        w.raw("{\"instance_id\":")
        w.string(name)
        w.raw(",\"base_uri\":")
        w.string(origin + "/consumers/" + group + "/instances/" + name)
        w.raw("}")
        return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: w.bytes)
    }

    /// A refusal: `{"error_code","message"}` with Confluent's five-digit code, or the HTTP status
    /// for Strimzi.
    public static func refusal(_ e: PullError, _ flavour: APIFlavour) -> RESTAnswer {
        RESTAnswer(status: e.status, contentType: RESTAnswer.kafkaV2Type,
                   body: JSONText.kafkaError(code: flavour == .confluent ? e.code : e.status, message: e.message))
    }

    /// `[{"topic","key","value","partition","offset","timestamp"[,"headers"]}]` in the instance's
    /// format: base64 (binary), the bytes as JSON (json), or a JSON string of them (text). A json
    /// instance writes a key or value that is not JSON as a JSON string rather than failing the
    /// whole answer (Strimzi answers 406 there, and the records it holds back then block the
    /// instance for good). Headers, when a record has any, are `[{"key","value"(base64)}]`.
    static func recordsAnswer(_ records: [ConsumerRecord], _ settings: PullConsumerSettings) -> RESTAnswer {
        var w = JSONWriter(capacity: 64 + records.reduce(0) { $0 + 96 + PullPartition.size($1) * 4 / 3 })
        w.raw("[")
        for (i, r) in records.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"topic\":")
            w.string(r.topicPartition.topic)
            w.raw(",\"key\":")
            embed(r.key, settings.format, &w)
            w.raw(",\"value\":")
            embed(r.value, settings.format, &w)
            w.raw(",\"partition\":")
            w.int(r.topicPartition.partition)
            w.raw(",\"offset\":")
            w.int(r.offset)
            w.raw(",\"timestamp\":")
            w.int(r.timestamp)
            if !r.headers.isEmpty {
                w.raw(",\"headers\":[")
                for (k, h) in r.headers.enumerated() {
                    if k > 0 { w.raw(",") }
                    w.raw("{\"key\":")
                    w.string(h.key)
                    w.raw(",\"value\":")
                    if let v = h.value { w.base64(v) } else { w.raw("null") }
                    w.raw("}")
                }
                w.raw("]")
            }
            w.raw("}")
        }
        w.raw("]")
        return RESTAnswer(status: 200, contentType: settings.format.mediaType, body: w.bytes)
    }

    private static func embed(_ bytes: [UInt8]?, _ format: PullFormat, _ w: inout JSONWriter) {
        guard let bytes else { return w.raw("null") }
        switch format {
        case .binary: w.base64(bytes)
        case .text: w.string(lossy: bytes)
        case .json: if JSONValidator.isValid(bytes) { w.raw(bytes) } else { w.string(lossy: bytes) }
        }
    }
}
