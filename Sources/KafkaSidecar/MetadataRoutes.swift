import MeshCore

/// A read-only metadata question of the REST port.
public enum MetadataQuery: Hashable, Sendable {
    /// `GET /topics`: topic names (Kafka's internal `__*` topics left out).
    case topics
    /// `GET /topics/{t}`.
    case topic(String)
    /// `GET /topics/{t}/partitions`.
    case partitions(String)
    /// `GET /topics/{t}/partitions/{p}`.
    case partition(String, Int32)
    /// `GET /topics/{t}/partitions/{p}/offsets`: the first and next offsets.
    case partitionOffsets(String, Int32)
    /// `GET /consumers/{group}/lag`: committed against end offsets, per partition the group committed.
    case lag(group: String)
}

/// What the metadata routes make of a request.
public enum MetadataDecision: Sendable {
    case notMetadata
    case refuse(PullError)
    case query(MetadataQuery)
}

/// The REST port's read-only metadata (Confluent v2 paths, and a lag view of our own), sans-IO: the
/// routing, and the answers once the driver has asked the cluster. The brokers' leaders and
/// replicas are not reported (the sidecar's admin seam does not carry them).
public enum MetadataRoutes {
    public static func decide(method: String, path: String) -> MetadataDecision {
        // Produce (POST) is the hot path: it is not split here.
        guard method == "GET" || method == "HEAD" else { return .notMetadata }
        var p = Substring(path)
        if p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        let parts = p.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        switch parts.count {
        case 1 where parts[0] == "topics":
            return .query(.topics)
        case 2 where parts[0] == "topics":
            return topicName(parts[1]).map { .query(.topic($0)) } ?? topicNotFound
        case 3 where parts[0] == "topics" && parts[2] == "partitions":
            return topicName(parts[1]).map { .query(.partitions($0)) } ?? topicNotFound
        case 4 where parts[0] == "topics" && parts[2] == "partitions":
            guard let t = topicName(parts[1]) else { return topicNotFound }
            guard let n = Int32(parts[3]), n >= 0 else { return .refuse(partitionNotFound) }
            return .query(.partition(t, n))
        case 5 where parts[0] == "topics" && parts[2] == "partitions" && parts[4] == "offsets":
            guard let t = topicName(parts[1]) else { return topicNotFound }
            guard let n = Int32(parts[3]), n >= 0 else { return .refuse(partitionNotFound) }
            return .query(.partitionOffsets(t, n))
        case 3 where parts[0] == "consumers" && parts[2] == "lag":
            guard PullRoutes.isName(parts[1]) else { return .refuse(.constraint("the group id '\(parts[1])' must be 1 to 249 of A-Z a-z 0-9 . _ -")) }
            return .query(.lag(group: parts[1]))
        default:
            return .notMetadata
        }
    }

    // MARK: answers

    /// `["t1","t2"]`, sorted, internal topics left out.
    public static func topics(_ all: [TopicDescription]) -> RESTAnswer {
        var w = JSONWriter()
        w.raw("[")
        for (i, t) in all.filter({ !$0.name.hasPrefix("__") }).map(\.name).sorted().enumerated() {
            if i > 0 { w.raw(",") }
            w.string(t)
        }
        w.raw("]")
        return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: w.bytes)
    }

    /// The answer to a topic question, given what the cluster lists (`nil`: the topic is unknown).
    public static func topic(_ query: MetadataQuery, _ found: TopicDescription?) -> RESTAnswer {
        guard let found else { return PullAnswers.refusal(.topicNotFound, .confluent) }
        var w = JSONWriter()
        func partition(_ n: Int32) { w.raw("{\"partition\":"); w.int(n); w.raw("}") }
        func list() {
            w.raw("[")
            for n in 0..<found.partitions {
                if n > 0 { w.raw(",") }
                partition(n)
            }
            w.raw("]")
        }
        switch query {
        case .topic:
            w.raw("{\"name\":")
            w.string(found.name)
            w.raw(",\"configs\":{},\"partitions\":")
            list()
            w.raw("}")
        case .partitions:
            list()
        case .partition(_, let n):
            guard n < found.partitions else { return PullAnswers.refusal(partitionNotFound, .confluent) }
            partition(n)
        default:
            preconditionFailure("not a topic question: \(query)")
        }
        return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: w.bytes)
    }

    /// `{"beginning_offset","end_offset"}`.
    public static func offsets(_ w: Watermarks) -> RESTAnswer {
        RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: Array("{\"beginning_offset\":\(w.low),\"end_offset\":\(w.high)}".utf8))
    }

    /// `{"group","partitions":[{"topic","partition","committed","end","lag"}]}`: per partition the
    /// group committed, its end offset and the difference (never below zero). Partitions whose end
    /// the brokers did not give in time are left out.
    public static func lag(group: String, committed: [PartitionOffset], ends: [TopicPartition: Int64]) -> RESTAnswer {
        var w = JSONWriter()
        w.raw("{\"group\":")
        w.string(group)
        w.raw(",\"partitions\":[")
        var first = true
        for c in committed.sorted(by: { $0.topicPartition < $1.topicPartition }) {
            guard let end = ends[c.topicPartition] else { continue }
            if !first { w.raw(",") }
            first = false
            w.raw("{\"topic\":")
            w.string(c.topicPartition.topic)
            w.raw(",\"partition\":")
            w.int(c.topicPartition.partition)
            w.raw(",\"committed\":")
            w.int(c.offset)
            w.raw(",\"end\":")
            w.int(end)
            w.raw(",\"lag\":")
            w.int(max(0, end - c.offset))
            w.raw("}")
        }
        w.raw("]}")
        return RESTAnswer(status: 200, contentType: RESTAnswer.kafkaV2Type, body: w.bytes)
    }

    private static func topicName(_ s: String) -> String? { PullRoutes.isTopic(s) ? s : nil }

    private static let topicNotFound = MetadataDecision.refuse(.topicNotFound)
    private static let partitionNotFound = PullError(status: 404, code: 40402, message: "Partition not found.")
}
