import MeshCore

/// What the dead-letter routes make of a request.
public enum DeadLetterDecision: Hashable, Sendable {
    case notDeadLetter
    case refuse(PullError)
    case run(DeadLetterPlan)
}

/// The REST port's dead-letter endpoints, sans-IO: the routing and the answers.
/// - `GET /deadletters/{topic}?limit=&group=`: the records not yet replayed, oldest first;
/// - `POST /deadletters/{topic}/replay` `{"group"?, "max"?, "until_offset"?}`: copy them back.
/// `{topic}` is the original topic; its dead-letter topic comes from ``DeadLetterSettings``.
public enum DeadLetterRoutes {
    public static func decide(method: String, path: String, query: QueryString, body: [UInt8], settings: DeadLetterSettings) -> DeadLetterDecision {
        guard path.hasPrefix("/deadletters") else { return .notDeadLetter }
        var p = Substring(path)
        if p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        let parts = p.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard parts.first == "deadletters" else { return .notDeadLetter }
        switch parts.count {
        case 2:
            guard method == "GET" || method == "HEAD" else { return .refuse(PullError(status: 405, code: 405, message: "\(path) takes GET")) }
            return plan(.inspect, topic: parts[1], settings: settings) { plan in
                if let text = query.first("group") { plan.group = try groupName(text) }
                if let text = query.first("limit") {
                    guard let n = Int(text), n >= 1, n <= settings.maxInspectLimit else {
                        throw PullError.constraint("limit must be 1 to \(settings.maxInspectLimit)")
                    }
                    plan.limit = n
                }
            }
        case 3 where parts[2] == "replay":
            guard method == "POST" else { return .refuse(PullError(status: 405, code: 405, message: "\(path) takes POST")) }
            return plan(.replay, topic: parts[1], settings: settings) { plan in try readReplayBody(body, &plan, settings) }
        default:
            return .refuse(.notFound(path))
        }
    }

    private static func plan(_ kind: DeadLetterPlan.Kind, topic: String, settings: DeadLetterSettings,
                             _ adjust: (inout DeadLetterPlan) throws -> Void) -> DeadLetterDecision {
        guard PullRoutes.isTopic(topic) else { return .refuse(.topicNotFound) }
        if topic.hasPrefix("__") { return .refuse(PullError(status: 403, code: 40301, message: "'\(topic)' is one of Kafka's internal topics")) }
        var plan = DeadLetterPlan(
            kind: kind, topic: topic, deadLetterTopic: settings.deadLetterTopic(for: topic), group: settings.group(for: topic),
            limit: kind == .replay ? settings.defaultReplayMax : settings.defaultInspectLimit,
            batchSize: settings.batchSize, timeout: settings.timeout)
        do {
            try adjust(&plan)
        } catch let e as PullError {
            return .refuse(e)
        } catch let m as JSONReader.Malformed {
            return .refuse(PullError(status: 400, code: 400, message: "the body is not valid JSON: \(m.message) at byte \(m.offset)"))
        } catch {
            return .refuse(PullError(status: 400, code: 400, message: "the body is not valid JSON"))
        }
        return .run(plan)
    }

    private static func groupName(_ text: String) throws(PullError) -> String {
        guard PullRoutes.isName(text) else { throw PullError.constraint("the group id '\(text)' must be 1 to 249 of A-Z a-z 0-9 . _ -") }
        return text
    }

    /// `{"group"?, "max"?, "until_offset"?}`; an empty body asks for the defaults. Unknown fields are refused.
    private static func readReplayBody(_ body: [UInt8], _ plan: inout DeadLetterPlan, _ settings: DeadLetterSettings) throws {
        guard !PullRoutes.isBlank(body) else { return }
        var reader = JSONReader(body)
        guard try reader.nextKind() == .object else { throw PullError.constraint("the body must be an object") }
        try reader.beginObject()
        var first = true
        var seen: Set<String> = []
        while let name = try reader.nextMember(first: first) {
            first = false
            guard seen.insert(name).inserted else { throw PullError.constraint("\(name) is given twice") }
            switch name {
            case "group":
                guard try reader.nextKind() == .string else { throw PullError.constraint("group must be a string") }
                plan.group = try groupName(try reader.string())
            case "max":
                guard try reader.nextKind() == .number, let n = try? reader.integer(in: 1...Int64(settings.maxReplayMax)) else {
                    throw PullError.constraint("max must be an integer from 1 to \(settings.maxReplayMax)")
                }
                plan.limit = Int(n)
            case "until_offset":
                guard try reader.nextKind() == .number, let n = try? reader.integer(in: 0...Int64.max) else {
                    throw PullError.constraint("until_offset must be an offset (an integer from 0)")
                }
                plan.untilOffset = n
            default:
                throw PullError.constraint("unknown field \(JSONWriter.quoted(String(name.prefix(64)))): a replay takes group, max and until_offset")
            }
        }
        try reader.end()
    }

    // MARK: answers

    /// A second replay of a topic while one runs on this sidecar.
    public static func replayRunning(_ topic: String) -> PullError {
        PullError(status: 409, code: 40904, message: "a replay of \(topic) is already running on this sidecar")
    }

    /// The answer to a finished job.
    public static func answer(_ report: DeadLetterReport) -> RESTAnswer {
        if report.notFound {
            return PullAnswers.refusal(PullError(status: 404, code: 40401, message: "Topic not found: \(report.plan.deadLetterTopic)"), .confluent)
        }
        var w = JSONWriter()
        if let failure = report.failure {
            w.raw("{\"error_code\":")
            w.int(failure.retriable ? 50003 : 50002)
            w.raw(",\"message\":")
            w.string("Kafka error: \(failure.message)")
            w.raw(",")
        } else {
            w.raw("{")
        }
        w.raw("\"topic\":")
        w.string(report.plan.topic)
        w.raw(",\"dead_letter_topic\":")
        w.string(report.plan.deadLetterTopic)
        w.raw(",\"group\":")
        w.string(report.plan.group)
        switch report.plan.kind {
        case .replay:
            w.raw(",\"replayed\":")
            w.int(report.copied)
            w.raw(",\"skipped\":")
            w.int(report.skipped)
            w.raw(",\"complete\":")
            w.bool(report.complete)
        case .inspect:
            w.raw(",\"pending\":")
            w.int(report.partitions.reduce(Int64(0)) { $0 + max(0, $1.stop - $1.from) })
        }
        w.raw(",\"partitions\":[")
        for (i, p) in report.partitions.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"partition\":")
            w.int(p.partition)
            w.raw(",\"from\":")
            w.int(p.from)
            if report.plan.kind == .replay {
                w.raw(",\"to\":")
                w.int(p.to)
            }
            w.raw(",\"end\":")
            w.int(p.stop)
            w.raw("}")
        }
        w.raw("]")
        if report.plan.kind == .inspect {
            w.raw(",\"records\":[")
            for (i, e) in report.entries.enumerated() {
                if i > 0 { w.raw(",") }
                entry(e, &w)
            }
            w.raw("]")
        }
        w.raw("}")
        let status = report.failure == nil ? 200 : 500
        return RESTAnswer(status: status, contentType: "application/json", body: w.bytes)
    }

    /// One record: where it is, why it is there (from its newest `lightmesh.dlq.*` headers), and
    /// its key, value and headers as base64.
    private static func entry(_ e: DeadLetterEntry, _ w: inout JSONWriter) {
        let r = e.record
        w.raw("{\"partition\":")
        w.int(r.topicPartition.partition)
        w.raw(",\"offset\":")
        w.int(r.offset)
        w.raw(",\"timestamp\":")
        w.int(r.timestamp)
        func text(_ name: String, _ header: String) {
            w.raw(",")
            w.string(name)
            w.raw(":")
            if let v = e.header(header) { w.string(v) } else { w.raw("null") }
        }
        func number(_ name: String, _ header: String) {
            w.raw(",")
            w.string(name)
            w.raw(":")
            if let v = e.header(header).flatMap(Int64.init) { w.int(v) } else { w.raw("null") }
        }
        text("reason", "reason")
        number("attempts", "attempts")
        text("original_topic", "original.topic")
        number("original_partition", "original.partition")
        number("original_offset", "original.offset")
        number("first_failure_ms", "first.failure.ms")
        w.raw(",\"key\":")
        if let k = r.key { w.base64(k) } else { w.raw("null") }
        w.raw(",\"value\":")
        if let v = r.value { w.base64(v) } else { w.raw("null") }
        w.raw(",\"headers\":[")
        for (i, h) in r.headers.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"key\":")
            w.string(h.key)
            w.raw(",\"value\":")
            if let v = h.value { w.base64(v) } else { w.raw("null") }
            w.raw("}")
        }
        w.raw("]}")
    }
}
