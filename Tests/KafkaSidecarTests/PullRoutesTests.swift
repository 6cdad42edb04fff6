import MeshCore
import Testing
@testable import KafkaSidecar

@Suite struct PullRoutesTests {
    func decide(_ method: String, _ path: String, _ body: String = "", query: String = "", flavour: APIFlavour = .confluent) -> PullDecision {
        PullRoutes.decide(PullRequest(method: method, path: path, query: QueryString(Substring(query)), body: Array(body.utf8)), flavour: flavour)
    }

    func refusal(_ d: PullDecision) -> PullError? { if case .refuse(let e) = d { e } else { nil } }

    @Test func createReadsBothAPIsPropertySpellings() throws {
        guard case .create(let g, let name, let s) = decide("POST", "/consumers/g1",
            #"{"name":"c1","format":"json","auto.offset.reset":"earliest","auto.commit.enable":"false","fetch.min.bytes":"10","consumer.request.timeout.ms":250}"#)
        else { Issue.record("not a create"); return }
        #expect(g == "g1" && name == "c1")
        #expect(s.format == .json && s.resetPolicy == .earliest && !s.autoCommit && s.fetchMinBytes == 10 && s.requestTimeout == .milliseconds(250))
        guard case .create(_, _, let strimzi) = decide("POST", "/consumers/g1", #"{"enable.auto.commit":false,"format":"text","isolation.level":"read_committed"}"#, flavour: .strimzi)
        else { Issue.record("not a create"); return }
        #expect(!strimzi.autoCommit && strimzi.format == .text && strimzi.flavour == .strimzi)
        // An empty body: every default, a name chosen later.
        guard case .create(_, nil, let defaults) = decide("POST", "/consumers/g1/") else { Issue.record("not a create"); return }
        #expect(defaults == PullConsumerSettings())
    }

    @Test func createRefusesWhatItCannotHonour() throws {
        #expect(refusal(decide("POST", "/consumers/g", #"{"format":"avro"}"#)) == PullError(status: 422, code: 422, message: "Error: 422 : Invalid format type."))
        #expect(refusal(decide("POST", "/consumers/g", #"{"name":"a/b"}"#))?.status == 422)
        #expect(refusal(decide("POST", "/consumers/g", #"{"auto.offset.reset":"none"}"#))?.status == 422)
        #expect(refusal(decide("POST", "/consumers/g", #"{"name":"#))?.status == 400)
        #expect(refusal(decide("GET", "/consumers/g"))?.status == 405)
        #expect(refusal(decide("POST", "/consumers/" + String(repeating: "g", count: 250)))?.status == 422)
    }

    @Test func instanceCallsRouteByPathAndMethod() throws {
        let base = "/consumers/g/instances/c1"
        func call(_ d: PullDecision) -> PullCall? { if case .call("g", "c1", let c) = d { c } else { nil } }
        #expect(call(decide("DELETE", base, "{}")) == .delete)  // a body on DELETE is ignored
        #expect(call(decide("POST", base + "/subscription", #"{"topics":["b","a","a"]}"#)) == .subscribe(["a", "b"]))
        #expect(call(decide("GET", base + "/subscription/")) == .subscription)
        #expect(call(decide("DELETE", base + "/subscription")) == .unsubscribe)
        #expect(call(decide("GET", base + "/records", query: "timeout=300&max_bytes=1000")) == .fetch(timeout: .milliseconds(300), maxBytes: 1000))
        #expect(call(decide("GET", base + "/records", query: "timeout=-1&max_bytes=-1")) == .fetch(timeout: nil, maxBytes: nil))
        #expect(call(decide("POST", base + "/offsets")) == .commit(nil))
        #expect(call(decide("POST", base + "/offsets", "{}")) == .commit(nil))
        #expect(call(decide("POST", base + "/offsets", #"{"offsets":[{"topic":"t","partition":1,"offset":5,"metadata":"x"}]}"#))
                == .commit([PartitionOffset(TopicPartition("t", 1), 5)]))
        #expect(call(decide("GET", base + "/offsets")) == .committed(nil))
        #expect(call(decide("GET", base + "/offsets", #"{"partitions":[{"topic":"t","partition":0}]}"#)) == .committed([TopicPartition("t", 0)]))
        #expect(call(decide("POST", base + "/assignments", #"{"partitions":[{"topic":"t","partition":2}]}"#)) == .assign([TopicPartition("t", 2)]))
        #expect(call(decide("POST", base + "/positions", #"{"offsets":[{"topic":"t","partition":0,"offset":7}]}"#))
                == .seek([PartitionSeek(TopicPartition("t", 0), .offset(7))]))
        #expect(call(decide("POST", base + "/positions/beginning", #"{"partitions":[{"topic":"t","partition":0}]}"#))
                == .seek([PartitionSeek(TopicPartition("t", 0), .beginning)]))
        #expect(call(decide("POST", base + "/positions/end", #"{"partitions":[{"topic":"t","partition":0}]}"#))
                == .seek([PartitionSeek(TopicPartition("t", 0), .end)]))
        if case .notPull = decide("GET", "/topics") {} else { Issue.record("/topics is not a consumer path") }
    }

    @Test func hostileOrWrongBodiesAreRefusedWithTheirStatus() throws {
        let base = "/consumers/g/instances/c1"
        #expect(refusal(decide("POST", base + "/subscription", #"{"topics":["a"],"topic_pattern":"a.*"}"#))?.status == 409)
        #expect(refusal(decide("POST", base + "/subscription", "{}"))?.status == 422)
        #expect(refusal(decide("POST", base + "/subscription", #"{"topics":["a b"]}"#))?.status == 422)
        #expect(refusal(decide("POST", base + "/subscription", #"{"topics":"#))?.status == 400)
        #expect(refusal(decide("GET", base + "/records", query: "timeout=soon"))?.status == 422)
        #expect(refusal(decide("POST", base + "/offsets", #"{"offsets":[{"topic":"t","partition":-1,"offset":5}]}"#))?.status == 422)
        #expect(refusal(decide("POST", base + "/offsets", #"{"offsets":[{"topic":"t","partition":0}]}"#))?.status == 422)
        #expect(refusal(decide("POST", base + "/positions", #"{"timestamps":[{"topic":"t","partition":0,"timestamp":"2026-01-01T00:00:00Z"}]}"#))?.status == 422)
        #expect(refusal(decide("PUT", base + "/records"))?.status == 405)
        #expect(refusal(decide("GET", base + "/nothing"))?.status == 404)
        #expect(refusal(decide("GET", "/consumers/g/instances/bad%20name/records")) == .instanceNotFound)
        // Deep nesting and long lists end in a refusal, not a crash.
        #expect(refusal(decide("POST", base + "/offsets", String(repeating: "[", count: 100_000)))?.status == 400)
        let many = "{\"partitions\":[" + (0..<10_001).map { _ in #"{"topic":"t","partition":0}"# }.joined(separator: ",") + "]}"
        #expect(refusal(decide("POST", base + "/assignments", many))?.status == 422)
    }

    @Test func acceptMustMatchTheFormat() throws {
        #expect(PullRoutes.acceptProblem(nil, format: .binary, flavour: .confluent) == nil)
        #expect(PullRoutes.acceptProblem("*/*", format: .binary, flavour: .confluent) == nil)
        #expect(PullRoutes.acceptProblem("application/vnd.kafka.json.v2+json; q=1", format: .json, flavour: .confluent) == nil)
        #expect(PullRoutes.acceptProblem("application/vnd.kafka.json.v2+json", format: .binary, flavour: .confluent)?.code == 40601)
        // Strimzi wants the exact type.
        #expect(PullRoutes.acceptProblem(nil, format: .binary, flavour: .strimzi)?.status == 406)
        #expect(PullRoutes.acceptProblem("application/vnd.kafka.binary.v2+json", format: .binary, flavour: .strimzi) == nil)
    }

    @Test func answersFollowTheFlavour() throws {
        var s = PullConsumerSettings()
        let commit = PullAnswers.encode(.done, call: .commit(nil), settings: s, assigned: [])
        #expect(commit.status == 200 && commit.body == Array("[]".utf8))
        let refused = PullAnswers.encode(.refused(.instanceNotFound), call: .delete, settings: s, assigned: [])
        #expect(refused.status == 404 && String(decoding: refused.body, as: UTF8.self) == #"{"error_code":40403,"message":"Consumer instance not found."}"#)
        s.flavour = .strimzi
        #expect(PullAnswers.encode(.done, call: .commit(nil), settings: s, assigned: []).status == 204)
        let strimziRefused = PullAnswers.encode(.refused(.instanceNotFound), call: .delete, settings: s, assigned: [])
        #expect(String(decoding: strimziRefused.body, as: UTF8.self).hasPrefix(#"{"error_code":404,"#))
        let sub = PullAnswers.encode(.subscription(topics: ["t"]), call: .subscription, settings: s, assigned: [TopicPartition("t", 1), TopicPartition("t", 0)])
        #expect(String(decoding: sub.body, as: UTF8.self) == #"{"topics":["t"],"partitions":[{"t":[0,1]}]}"#)
    }

    @Test func recordsCarryTimestampsAndHeadersInTheInstanceFormat() throws {
        let r = ConsumerRecord(topicPartition: TopicPartition("t", 2), offset: 9, key: nil, value: Array(#"{"a":1}"#.utf8),
                               headers: [KafkaHeader("h", Array("v".utf8))], timestamp: 1_700_000_000_000)
        var s = PullConsumerSettings()
        let binary = PullAnswers.encode(.records([r]), call: .fetch(timeout: nil, maxBytes: nil), settings: s, assigned: [])
        #expect(binary.contentType == "application/vnd.kafka.binary.v2+json")
        #expect(String(decoding: binary.body, as: UTF8.self)
                == #"[{"topic":"t","key":null,"value":"eyJhIjoxfQ==","partition":2,"offset":9,"timestamp":1700000000000,"headers":[{"key":"h","value":"dg=="}]}]"#)
        s.format = .json
        var notJSON = r
        notJSON.value = Array("plain".utf8)
        let json = PullAnswers.encode(.records([r, notJSON]), call: .fetch(timeout: nil, maxBytes: nil), settings: s, assigned: [])
        let text = String(decoding: json.body, as: UTF8.self)
        #expect(text.contains(#""value":{"a":1}"#) && text.contains(#""value":"plain""#))
    }

    @Test func theBaseURINamesTheInstance() throws {
        let created = PullAnswers.created(group: "g", name: "c1", origin: "http://localhost:8082")
        #expect(String(decoding: created.body, as: UTF8.self) == #"{"instance_id":"c1","base_uri":"http://localhost:8082/consumers/g/instances/c1"}"#)
    }
}

@Suite struct TopicPatternTests {
    @Test func patternsBecomeAnchoredEntriesAndHostileOnesAreRefused() throws {
        #expect(try TopicPattern.subscription("orders-.*").get() == "^orders-.*")
        #expect(try TopicPattern.subscription("^a|b$").get() == "^a|b$")
        for bad in ["", "(", "a\\1", "(?=x)", "x\u{1}", String(repeating: "a", count: 1_001)] {
            guard case .failure(let e) = TopicPattern.subscription(bad) else { Issue.record("\(bad) accepted"); continue }
            #expect(e.status == 422)
        }
    }

    @Test func aSubscriptionTakesTopicsOrAPatternNotBoth() {
        func decide(_ body: String) -> PullDecision {
            PullRoutes.decide(PullRequest(method: "POST", path: "/consumers/g/instances/c/subscription", body: Array(body.utf8)), flavour: .confluent)
        }
        guard case .call(_, _, .subscribe(let entries)) = decide(#"{"topic_pattern":"ev.*"}"#) else { Issue.record("not a subscribe"); return }
        #expect(entries == ["^ev.*"])
        guard case .refuse(let both) = decide(#"{"topics":["a"],"topic_pattern":"a"}"#) else { Issue.record("both accepted"); return }
        #expect(both.status == 409)
        guard case .refuse(let bad) = decide(#"{"topic_pattern":"("}"#) else { Issue.record("a bad pattern accepted"); return }
        #expect(bad.status == 422)
    }
}
