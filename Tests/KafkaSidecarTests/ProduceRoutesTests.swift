import KafkaSidecar
import MeshCore
import Testing

/// The produce front's routing and checks, sans-IO (issue 23): what the NIO driver and the
/// simulator's producers both run.
@Suite struct ProduceRoutesTests {
    let json = "application/vnd.kafka.json.v2+json"
    let body = Array(#"{"records":[{"key":"k","value":{"a":1}}]}"#.utf8)

    func decide(_ target: String, method: String = "POST", contentType: String? = "application/vnd.kafka.json.v2+json",
                body: [UInt8]? = nil, config: ProduceFrontConfig = ProduceFrontConfig()) -> ProduceDecision {
        let (path, query) = QueryString.split(target: target)
        var random = SeededRandom(seed: 7)
        return ProduceRoutes.decide(ProduceRequest(method: method, path: String(path), query: query, contentType: contentType,
                                                   body: body ?? self.body), config: config, random: &random)
    }

    func refusal(_ decision: ProduceDecision) -> (status: Int, body: String)? {
        if case .answer(let a) = decision { return (a.status, String(decoding: a.body, as: UTF8.self)) }
        return nil
    }

    @Test func pathsChooseTheShapeAndOtherPathsAreLeftAlone() {
        guard case .send(let confluent) = decide("/topics/orders") else { Issue.record("Confluent path refused"); return }
        #expect(confluent.flavour == .confluent && confluent.topic == "orders" && confluent.batch.count == 1 && !confluent.async)
        guard case .send(let pinned) = decide("/topics/orders/partitions/3") else { Issue.record("partition path refused"); return }
        #expect(pinned.batch.unpacked().first?.partition == 3)
        guard case .send(let light) = decide("/producers/orders", contentType: "application/json",
                                             body: Array(#"{"records":[{"value":"v"}]}"#.utf8)) else {
            Issue.record("light-mesh path refused"); return
        }
        #expect(light.flavour == .lightMesh)
        guard case .send(let async) = decide("/topics/orders?async=true") else { Issue.record("async refused"); return }
        #expect(async.async && ProducePlan.accepted.status == 204)
        for other in ["/", "/topics", "/topics/a/b", "/consumers/g", "/producers/a/b"] {
            guard case .notProduce = decide(other) else { Issue.record("\(other) taken as a produce path"); continue }
        }
    }

    @Test func everyRefusalHasItsStatusCodeAndShape() {
        #expect(refusal(decide("/topics/orders/partitions/x"))?.status == 404)
        #expect(refusal(decide("/topics/orders/partitions/x"))?.body.contains("40402") == true)
        #expect(refusal(decide("/topics/orders", method: "GET"))?.status == 405)
        #expect(refusal(decide("/topics/bad%20name"))?.body.contains("40003") == true)
        #expect(refusal(decide("/topics/__consumer_offsets"))?.status == 403)
        var open = ProduceFrontConfig()
        open.allowInternalTopics = true
        guard case .send = decide("/topics/__consumer_offsets", config: open) else { Issue.record("allowed internal topic refused"); return }
        #expect(refusal(decide("/topics/orders", contentType: nil))?.status == 415)
        #expect(refusal(decide("/topics/orders", contentType: "text/plain"))?.body.contains("\"error_code\":415") == true)
        let light = refusal(decide("/producers/orders", contentType: "text/plain"))
        #expect(light?.status == 415 && light?.body.contains("\"code\":\"unsupported_media_type\"") == true)
        #expect(refusal(decide("/topics/orders", body: Array(#"{"records":[]}"#.utf8)))?.status == 422)
        #expect(refusal(decide("/topics/orders", body: Array("{".utf8)))?.status == 400)
    }

    @Test func theAnswerFollowsTheResults() {
        guard case .send(let plan) = decide("/topics/orders") else { Issue.record("refused"); return }
        let stored = plan.answer([.success(RecordMetadata(topicPartition: TopicPartition("orders", 0), offset: 41, timestamp: 0))])
        #expect(stored.status == 200 && String(decoding: stored.body, as: UTF8.self).contains("\"offset\":41"))
        let missing = plan.answer([.failure(KafkaError(code: "unknown_topic_or_partition", message: "no", retriable: false))])
        #expect(missing.status == 404 && String(decoding: missing.body, as: UTF8.self).contains("40401"))
    }
}
