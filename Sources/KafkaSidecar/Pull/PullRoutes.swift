import MeshCore

/// A REST request as the pull consumer routes read it.
public struct PullRequest: Sendable {
    public var method: String
    /// The path without the query.
    public var path: String
    public var query: QueryString
    public var accept: String?
    /// The body (ignored on GET and DELETE, except `GET …/offsets`, which Confluent's clients send
    /// with a body).
    public var body: [UInt8]

    public init(method: String, path: String, query: QueryString = QueryString(""), accept: String? = nil, body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.accept = accept
        self.body = body
    }
}

/// One call on an existing instance, before it has a call number (see ``PullConsumer/Event``).
public enum PullCall: Hashable, Sendable {
    case subscribe([String])
    case unsubscribe
    case assign([TopicPartition])
    case subscription
    case assignment
    case fetch(timeout: Duration?, maxBytes: Int?)
    case commit([PartitionOffset]?)
    /// Committed offsets of these partitions (none named: every assigned one).
    case committed([TopicPartition]?)
    case seek([PartitionSeek])
    case delete

    /// The engine's event for this call, numbered `call`.
    public func event(call: UInt64, assigned: [TopicPartition]) -> PullConsumer.Event {
        switch self {
        case .subscribe(let topics): .subscribe(call: call, topics: topics)
        case .unsubscribe: .unsubscribe(call: call)
        case .assign(let tps): .assign(call: call, tps)
        case .subscription: .subscription(call: call)
        case .assignment: .assignment(call: call)
        case .fetch(let timeout, let maxBytes): .fetch(call: call, timeout: timeout, maxBytes: maxBytes)
        case .commit(let offsets): .commit(call: call, offsets: offsets)
        case .committed(let tps): .committed(call: call, tps ?? assigned)
        case .seek(let seeks): .seek(call: call, seeks)
        case .delete: .delete(call: call)
        }
    }
}

/// What the routes make of a request.
public enum PullDecision: Sendable {
    /// Not a consumer path: another route may take it.
    case notPull
    /// Refused before any instance was involved.
    case refuse(PullError)
    /// `POST /consumers/{group}`: make an instance (the name is checked by the registry).
    case create(group: String, name: String?, settings: PullConsumerSettings)
    /// A call on instance `name` of `group`; `accept` is checked against the instance's format for a fetch.
    case call(group: String, name: String, PullCall)
}

/// The pull consumer REST endpoints, sans-IO (Confluent REST Proxy v2 paths, with the Strimzi
/// bridge's differences): routing and every check of paths, queries and bodies. The NIO driver and
/// the simulator's apps both run it.
public enum PullRoutes {
    /// Decides `request`; `flavour` is the sidecar's default for instances created without
    /// `api_flavour`.
    public static func decide(_ request: PullRequest, flavour: APIFlavour) -> PullDecision {
        var path = Substring(request.path)
        if path.count > 1 && path.hasSuffix("/") { path = path.dropLast() }  // base URLs with and without a trailing slash
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0].isEmpty, parts[1] == "consumers" else { return .notPull }
        let group = String(parts[2])
        guard isName(group) else { return .refuse(.constraint("the group id '\(group)' must be 1 to 249 of A-Z a-z 0-9 . _ -")) }
        let method = request.method
        if parts.count == 3 {
            guard method == "POST" else { return .refuse(methodNotAllowed(request.path, "POST")) }
            return create(group, request.body, defaultFlavour: flavour)
        }
        guard parts.count >= 5, parts[3] == "instances" else { return .refuse(.notFound(request.path)) }
        let name = String(parts[4])
        guard isName(name) else { return .refuse(.instanceNotFound) }
        let rest = parts.dropFirst(5).joined(separator: "/")
        let call: Result<PullCall, PullError>
        switch (rest, method) {
        case ("", "DELETE"): call = .success(.delete)
        case ("subscription", "POST"): call = subscription(request.body)
        case ("subscription", "GET"): call = .success(.subscription)
        case ("subscription", "DELETE"): call = .success(.unsubscribe)
        case ("assignments", "POST"): call = partitions(request.body, "partitions").map { .assign($0) }
        case ("assignments", "GET"): call = .success(.assignment)
        case ("records", "GET"): call = fetch(request.query)
        case ("offsets", "POST"): call = commit(request.body)
        case ("offsets", "GET"):
            call = isBlank(request.body) ? .success(.committed(nil)) : partitions(request.body, "partitions").map { .committed($0) }
        case ("positions", "POST"): call = positions(request.body)
        case ("positions/beginning", "POST"): call = partitions(request.body, "partitions").map { .seek($0.map { PartitionSeek($0, .beginning) }) }
        case ("positions/end", "POST"): call = partitions(request.body, "partitions").map { .seek($0.map { PartitionSeek($0, .end) }) }
        case ("", _): return .refuse(methodNotAllowed(request.path, "DELETE"))
        case ("subscription", _): return .refuse(methodNotAllowed(request.path, "POST, GET, DELETE"))
        case ("assignments", _), ("offsets", _): return .refuse(methodNotAllowed(request.path, "POST, GET"))
        case ("records", _): return .refuse(methodNotAllowed(request.path, "GET"))
        case ("positions", _), ("positions/beginning", _), ("positions/end", _): return .refuse(methodNotAllowed(request.path, "POST"))
        default: return .refuse(.notFound(request.path))
        }
        switch call {
        case .success(let c): return .call(group: group, name: name, c)
        case .failure(let e): return .refuse(e)
        }
    }

    /// Whether `accept` asks for records in `format`. Confluent negotiates (no Accept, `*/*` and
    /// `application/vnd.kafka.v2+json` mean binary); Strimzi wants the exact type.
    public static func acceptProblem(_ accept: String?, format: PullFormat, flavour: APIFlavour) -> PullError? {
        // Each listed type without its parameters (`; q=1`) and the blanks around it (one word, or no match).
        let types = (accept ?? "").split(separator: ",").map { item in
            let words = item.prefix { $0 != ";" }.split { $0 == " " || $0 == "\t" }
            return words.count == 1 ? words[0].lowercased() : ""
        }
        if types.contains(format.mediaType) { return nil }
        if flavour == .confluent && format == .binary && (accept == nil || types.contains("*/*") || types.contains(RESTAnswer.kafkaV2Type)) {
            return nil
        }
        return PullError(status: 406, code: 40601,
                         message: "The requested embedded data format does not match the deserializer for this consumer instance (\(format.mediaType))")
    }

    // MARK: bodies

    private static func create(_ group: String, _ body: [UInt8], defaultFlavour: APIFlavour) -> PullDecision {
        var settings = PullConsumerSettings()
        settings.flavour = defaultFlavour
        var name: String?
        var legacyId: String?
        if !isBlank(body) {
            var reader = JSONReader(body)
            do {
                guard try reader.nextKind() == .object else { return .refuse(.constraint("the body must be a JSON object")) }
                try reader.beginObject()
                var first = true
                while let field = try reader.nextMember(first: first) {
                    first = false
                    switch field {
                    case "name": name = try optionalString(&reader, field)
                    case "id": legacyId = try optionalString(&reader, field)
                    case "format":
                        guard let text = try optionalString(&reader, field) else { continue }
                        guard let f = PullFormat(rawValue: text.lowercased()) else {
                            return .refuse(PullError(status: 422, code: 422, message: "Error: 422 : Invalid format type."))
                        }
                        settings.format = f
                    case "auto.offset.reset":
                        guard let text = try optionalString(&reader, field) else { continue }
                        switch text.lowercased() {
                        case "earliest", "smallest": settings.resetPolicy = .earliest
                        case "latest", "largest": settings.resetPolicy = .latest
                        default: return .refuse(.constraint("auto.offset.reset must be earliest or latest, not '\(text)'"))
                        }
                    case "auto.commit.enable", "enable.auto.commit":
                        guard let b = try flexibleBool(&reader) else { return .refuse(.constraint("\(field) must be true or false")) }
                        settings.autoCommit = b
                    case "fetch.min.bytes", "responseMinBytes":
                        guard let n = try flexibleInt(&reader, in: -1...Int64(64 << 20)) else { return .refuse(.constraint("\(field) must be a number of bytes")) }
                        settings.fetchMinBytes = Int(max(0, n))
                    case "consumer.request.timeout.ms", "requestWaitMs":
                        guard let n = try flexibleInt(&reader, in: 0...3_600_000) else { return .refuse(.constraint("\(field) must be milliseconds")) }
                        settings.requestTimeout = .milliseconds(n)
                    case "api_flavour":
                        guard let text = try optionalString(&reader, field), let f = APIFlavour(rawValue: text) else {
                            return .refuse(.constraint("api_flavour must be confluent or strimzi"))
                        }
                        settings.flavour = f
                    default:
                        _ = try reader.skipValue()  // other consumer properties (isolation.level, …) are not ours to refuse
                    }
                }
                try reader.end()
            } catch let e as PullError {
                return .refuse(e)
            } catch {
                return .refuse(malformed(error))
            }
        }
        if let chosen = legacyId ?? name, !isName(chosen) {
            return .refuse(.constraint("the consumer name '\(chosen)' must be 1 to 249 of A-Z a-z 0-9 . _ -"))
        }
        return .create(group: group, name: legacyId ?? name, settings: settings)
    }

    private static func subscription(_ body: [UInt8]) -> Result<PullCall, PullError> {
        var topics: [String]?
        var pattern: String?
        do {
            var reader = JSONReader(body)
            try reader.beginObject()
            var first = true
            while let field = try reader.nextMember(first: first) {
                first = false
                switch field {
                case "topics": topics = try stringArray(&reader, field)
                case "topic_pattern": pattern = try optionalString(&reader, field)
                default: _ = try reader.skipValue()
                }
            }
            try reader.end()
        } catch let e as PullError {
            return .failure(e)
        } catch {
            return .failure(malformed(error))
        }
        if topics != nil && pattern != nil { return .failure(PullError(status: 409, code: 40903, message: "Illegal state: give topics or topic_pattern, not both")) }
        if let pattern { return TopicPattern.subscription(pattern).map { .subscribe([$0]) } }
        guard let topics, !topics.isEmpty else { return .failure(.constraint("the body must name topics: {\"topics\":[\"t\"]}")) }
        for t in topics where !isTopic(t) { return .failure(.constraint("'\(t)' is not a topic name")) }
        return .success(.subscribe(Array(Set(topics)).sorted()))
    }

    private static func fetch(_ query: QueryString) -> Result<PullCall, PullError> {
        var timeout: Duration?
        var maxBytes: Int?
        if let t = query.first("timeout") {
            guard let ms = Int64(t), ms >= -1 else { return .failure(.constraint("timeout must be milliseconds")) }
            if ms >= 0 { timeout = .milliseconds(ms) }
        }
        if let b = query.first("max_bytes") {
            guard let n = Int(b), n >= -1 else { return .failure(.constraint("max_bytes must be a number of bytes")) }
            if n >= 0 { maxBytes = n }
        }
        return .success(.fetch(timeout: timeout, maxBytes: maxBytes))
    }

    private static func commit(_ body: [UInt8]) -> Result<PullCall, PullError> {
        if isBlank(body) { return .success(.commit(nil)) }
        do {
            var reader = JSONReader(body)
            if reader.null() { try reader.end(); return .success(.commit(nil)) }
            try reader.beginObject()
            var offsets: [PartitionOffset]?
            var first = true
            while let field = try reader.nextMember(first: first) {
                first = false
                if field == "offsets" {
                    offsets = try entries(&reader, field, needsOffset: true).map { PartitionOffset($0.tp, $0.offset!) }
                } else {
                    _ = try reader.skipValue()
                }
            }
            try reader.end()
            return .success(.commit(offsets.flatMap { $0.isEmpty ? nil : $0 }))  // `{}` and an empty list: everything returned so far
        } catch let e as PullError {
            return .failure(e)
        } catch {
            return .failure(malformed(error))
        }
    }

    private static func positions(_ body: [UInt8]) -> Result<PullCall, PullError> {
        do {
            var reader = JSONReader(body)
            try reader.beginObject()
            var seeks: [PartitionSeek] = []
            var first = true
            while let field = try reader.nextMember(first: first) {
                first = false
                switch field {
                case "offsets": seeks += try entries(&reader, field, needsOffset: true).map { PartitionSeek($0.tp, .offset($0.offset!)) }
                case "timestamps":
                    if reader.null() { continue }
                    return .failure(.constraint("seeking by timestamp is not supported by this sidecar: give offsets"))
                default: _ = try reader.skipValue()
                }
            }
            try reader.end()
            guard !seeks.isEmpty else { return .failure(.constraint("the body must name offsets: {\"offsets\":[{\"topic\":\"t\",\"partition\":0,\"offset\":5}]}")) }
            return .success(.seek(seeks))
        } catch let e as PullError {
            return .failure(e)
        } catch {
            return .failure(malformed(error))
        }
    }

    /// `{"<field>":[{"topic","partition"}, …]}`: the partitions named, at least one.
    private static func partitions(_ body: [UInt8], _ name: String) -> Result<[TopicPartition], PullError> {
        do {
            var reader = JSONReader(body)
            try reader.beginObject()
            var out: [TopicPartition] = []
            var first = true
            while let field = try reader.nextMember(first: first) {
                first = false
                if field == name { out += try entries(&reader, field, needsOffset: false).map(\.tp) } else { _ = try reader.skipValue() }
            }
            try reader.end()
            guard !out.isEmpty else { return .failure(.constraint("the body must name partitions: {\"\(name)\":[{\"topic\":\"t\",\"partition\":0}]}")) }
            return .success(out)
        } catch let e as PullError {
            return .failure(e)
        } catch {
            return .failure(malformed(error))
        }
    }

    /// A list of `{"topic","partition"[,"offset"][,"metadata"]}` objects.
    private static func entries(_ reader: inout JSONReader, _ field: String, needsOffset: Bool) throws -> [(tp: TopicPartition, offset: Int64?)] {
        guard try reader.nextKind() == .array else { throw PullError.constraint("\(field) must be a list") }
        try reader.beginArray()
        var out: [(tp: TopicPartition, offset: Int64?)] = []
        var first = true
        while try reader.nextElement(first: first) {
            first = false
            guard out.count < 10_000 else { throw PullError.constraint("\(field) names more than 10000 partitions") }
            guard try reader.nextKind() == .object else { throw PullError.constraint("each of \(field) must be an object") }
            try reader.beginObject()
            var topic: String?, partition: Int64?, offset: Int64?
            var firstMember = true
            while let member = try reader.nextMember(first: firstMember) {
                firstMember = false
                switch member {
                case "topic": topic = try optionalString(&reader, member)
                case "partition": partition = try? reader.integer(in: 0...Int64(Int32.max))
                    if partition == nil { throw PullError.constraint("\(field): partition must be a non-negative integer") }
                case "offset" where needsOffset: offset = try? reader.integer(in: 0...Int64.max)
                    if offset == nil { throw PullError.constraint("\(field): offset must be a non-negative integer") }
                default: _ = try reader.skipValue()
                }
            }
            guard let topic, isTopic(topic), let partition else { throw PullError.constraint("each of \(field) needs a topic and a partition") }
            if needsOffset && offset == nil { throw PullError.constraint("each of \(field) needs an offset") }
            out.append((TopicPartition(topic, Int32(partition)), offset))
        }
        return out
    }

    // MARK: small readers

    private static func optionalString(_ reader: inout JSONReader, _ field: String) throws -> String? {
        if reader.null() { return nil }
        guard try reader.nextKind() == .string else { throw PullError.constraint("\(field) must be a string") }
        return try reader.string()
    }

    private static func stringArray(_ reader: inout JSONReader, _ field: String) throws -> [String] {
        guard try reader.nextKind() == .array else { throw PullError.constraint("\(field) must be a list of strings") }
        try reader.beginArray()
        var out: [String] = []
        var first = true
        while try reader.nextElement(first: first) {
            first = false
            guard out.count < 1_000, try reader.nextKind() == .string else { throw PullError.constraint("\(field) must be a list of at most 1000 strings") }
            out.append(try reader.string())
        }
        return out
    }

    /// `true`, `false`, `"true"` or `"false"` (Confluent sends strings, Strimzi booleans).
    private static func flexibleBool(_ reader: inout JSONReader) throws -> Bool? {
        switch try reader.nextKind() {
        case .bool: return try reader.bool()
        case .string:
            switch try reader.string().lowercased() {
            case "true": return true
            case "false": return false
            default: return nil
            }
        default: _ = try reader.skipValue(); return nil
        }
    }

    /// A number, or a string of one (Confluent's consumer properties are strings).
    private static func flexibleInt(_ reader: inout JSONReader, in range: ClosedRange<Int64>) throws -> Int64? {
        switch try reader.nextKind() {
        case .number: return try? reader.integer(in: range)
        case .string: return Int64(try reader.string()).flatMap { range.contains($0) ? $0 : nil }
        default: _ = try reader.skipValue(); return nil
        }
    }

    static func isBlank(_ body: [UInt8]) -> Bool { body.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D } }

    /// Group ids and instance names: what can sit in a URL path unescaped.
    static func isName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 249 && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
        }
    }

    static func isTopic(_ s: String) -> Bool { isName(s) && s != "." && s != ".." }

    private static func malformed(_ error: any Error) -> PullError {
        if let m = error as? JSONReader.Malformed { return PullError(status: 400, code: 400, message: "the body is not valid JSON: \(m.message) at byte \(m.offset)") }
        return PullError(status: 400, code: 400, message: "the body is not valid JSON")
    }

    private static func methodNotAllowed(_ path: String, _ allowed: String) -> PullError {
        PullError(status: 405, code: 405, message: "\(path) takes \(allowed)")
    }
}

extension PullError {
    public static func notFound(_ path: String) -> PullError { PullError(status: 404, code: 404, message: "HTTP 404 Not Found: \(path)") }
}
