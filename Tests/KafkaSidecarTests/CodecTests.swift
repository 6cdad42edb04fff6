import Foundation
import MeshCore
import Testing
@testable import KafkaSidecar

@Suite struct PushCodecTests {
    func batch(_ values: [[UInt8]?], key: [UInt8]? = Array("k".utf8), headers: [KafkaHeader] = []) -> PushBatch {
        let tp = TopicPartition("orders", 2)
        return PushBatch(id: 1, topicPartition: tp, entries: values.enumerated().map { n, v in
            .init(record: ConsumerRecord(topicPartition: tp, offset: Int64(n), key: key, value: v, headers: headers, timestamp: 5), attempt: 1)
        })
    }

    func decode(_ bytes: [UInt8]) throws -> [[String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        return try #require(object["records"] as? [[String: Any]])
    }

    /// Issue 22: binary header values and repeated names reach the app losslessly.
    @Test func headersAreLossless() throws {
        let headers = [KafkaHeader("a", Array("1".utf8)), KafkaHeader("bin", [0xFF, 0x00]), KafkaHeader("a", Array("2".utf8)), KafkaHeader("n", nil)]
        let bytes = PushCodec.encode(batch([Array("{}".utf8)], headers: headers), jsonValues: true)
        let h = try #require(try decode(bytes)[0]["headers"] as? [String: Any])
        #expect(h["a"] as? [String] == ["1", "2"])
        #expect((h["bin"] as? [String: String])?["base64"] == Base64.encode([0xFF, 0x00]))
        #expect(h["n"] is NSNull)
        #expect(h.count == 3)
    }

    @Test func validJSONValuesAreEmbeddedAndEverythingElseIsBase64() throws {
        let values: [[UInt8]?] = [Array("{\"a\":[1,2.5e3,true,null]}".utf8), Array("not json".utf8), Array("1,\"id\":\"x\"".utf8),
                                  Array("\"unterminated".utf8), [0xFF, 0x00], nil, Array("\"caf\u{e9}\"".utf8)]
        let records = try decode(PushCodec.encode(batch(values), jsonValues: true))
        #expect(records.count == values.count)
        #expect((records[0]["value"] as? [String: Any])?["a"] != nil)
        #expect(records[1]["encoding"] as? String == "base64")
        #expect(records[1]["value"] as? String == Data("not json".utf8).base64EncodedString())
        // An injection attempt stays one base64 string; the record keeps its own id.
        #expect(records[2]["encoding"] as? String == "base64")
        #expect(records[2]["id"] as? String == "orders/2/2")
        #expect(records[3]["encoding"] as? String == "base64")
        #expect(records[4]["value"] as? String == Data([0xFF, 0x00]).base64EncodedString())
        #expect(records[5]["value"] is NSNull)
        #expect(records[6]["value"] as? String == "caf\u{e9}")
    }

    @Test func validatorAgreesWithFoundationOnEdgeCases() {
        let cases = ["0", "-0", "01", "1.", ".5", "1e", "1e+5", "[1,]", "{\"a\":1,}", "\"\\u12\"", "\"\\x\"", "[[[]]]", "{\"a\" 1}",
                     "true ", " null", "nul", "\"\t\"", "\"\u{7f}\"", "[1 2]", "{}", "[]", "\"\\ud800\""]
        for text in cases {
            let ours = JSONValidator.isValid(Array(text.utf8))
            let theirs = (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
            // A lone surrogate escape: JSON's grammar allows it, Foundation refuses. Trailing commas:
            // Foundation on Linux is lenient; RFC 8259 (and we) refuse them.
            if text == "\"\\ud800\"" { continue }
            if text == "[1,]" || text == "{\"a\":1,}" { #expect(!ours); continue }
            #expect(ours == theirs, "\(text) ours \(ours)")
        }
        #expect(!JSONValidator.isValid(Array(repeating: UInt8(ascii: "["), count: 100) + Array(repeating: UInt8(ascii: "]"), count: 100)))
        #expect(!JSONValidator.isValid([0x22, 0xC0, 0x80, 0x22]))  // overlong NUL
    }

    @Test func nonUTF8KeysAndHeadersStayValidJSON() throws {
        let records = try decode(PushCodec.encode(batch([Array("1".utf8)], key: [0xFE], headers: [KafkaHeader("h\"x", [0xFF]), KafkaHeader("n", nil)]), jsonValues: true))
        #expect(records[0]["keyEncoding"] as? String == "base64")
        let headers = try #require(records[0]["headers"] as? [String: Any])
        #expect((headers["h\"x"] as? [String: String])?["base64"] == Base64.encode([0xFF]))  // lossless, not U+FFFD
        #expect(headers["n"] is NSNull)
    }

    @Test func answersDecodeBothShapesAndRefuseWhatIsMalformed() {
        #expect(PushCodec.decode(status: 200, body: Array("{\"statuses\":[{\"id\":\"t/0/1\",\"status\":\"success\"},{\"id\":\"t/0/2\",\"status\":\"DEADLETTER\",\"reason\":\"bad\"}]}".utf8))
                == .verdicts(["t/0/1": .init(.success), "t/0/2": .init(.deadLetter, reason: "bad")]))
        #expect(PushCodec.decode(status: 200, body: Array("[{\"record\":{\"topic\":\"t\",\"partition\":0,\"offset\":3},\"processed\":false}]".utf8))
                == .verdicts(["t/0/3": .init(.deadLetter)]))
        for body in ["", "{}", "{\"statuses\":[]}", "{\"statuses\":[{\"id\":\"a\",\"status\":\"MAYBE\"}]}", "[1]", "nope",
                     "{\"statuses\":[{\"id\":\"a\",\"status\":\"SUCCESS\"},{\"id\":\"a\",\"status\":\"RETRY\"}]}"] {
            if case .verdicts = PushCodec.decode(status: 200, body: Array(body.utf8)) { Issue.record("accepted \(body)") }
        }
        if case .verdicts = PushCodec.decode(status: 503, body: Array("{\"statuses\":[{\"id\":\"a\",\"status\":\"SUCCESS\"}]}".utf8)) { Issue.record("accepted a 503") }
    }

    @Test func base64RoundTripsAndRefusesGarbage() {
        for n in 0..<10 {
            let data = (0..<n).map { UInt8(($0 * 37) & 0xFF) }
            #expect(Base64.decode(Base64.encode(data)) == data)
            #expect(Base64.encode(data) == Data(data).base64EncodedString())
        }
        #expect(Base64.decode("abc") == nil)
        #expect(Base64.decode("ab=c") == nil)
        #expect(Base64.decode("a$==") == nil)
    }
}

@Suite struct ProduceFrontTests {
    var random = SeededRandom(seed: 3)
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test mutating func lightMeshShapeCarriesTraceAndCorrelationButNeverCredentials() throws {
        let body = """
        {"keyFormat":"string","valueFormat":"json","records":[
          {"key":"a","value":{"x":1},"headers":{"Authorization":"Bearer s3cret","Cookie":"c=1","app":"yes"},"correlationId":"c-9","traceabilityId":"t-1"},
          {"key":null,"value":[1],"partition":1},
          {"key":"","value":"s"}]}
        """
        let records = try ProduceFront.decode(.lightMesh, topic: "t", body: Array(body.utf8),
                                              context: ProduceContext(traceparent: parent, correlationId: "req-1"), random: &random).unpacked()
        #expect(records.count == 3)
        let names = records[0].headers.map { $0.key.lowercased() }
        #expect(!names.contains("authorization") && !names.contains("cookie"))
        #expect(names.contains("app"))
        func header(_ r: ProducerRecord, _ name: String) -> String? { r.headers.last { $0.key == name }?.value.map { String(decoding: $0, as: UTF8.self) } }
        #expect(header(records[0], "x-correlation-id") == "c-9")
        #expect(header(records[1], "x-correlation-id") == "req-1")
        #expect(header(records[0], "x-traceability-id") == "t-1")
        let trace = try #require(header(records[0], "traceparent"))
        #expect(trace.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-") && !trace.contains("b7ad6b7169203331"))
        #expect(header(records[1], "traceparent") == trace)  // one span for the request's records
        #expect(records[0].value == Array("{\"x\":1}".utf8))
        #expect(records[1].key == nil && records[1].partition == 1)
        #expect(records[2].key == [])
    }

    @Test mutating func confluentShapesAndStrimziExtras() throws {
        let binary = "{\"records\":[{\"key\":\"\(Base64.encode([1, 2]))\",\"value\":\"\(Base64.encode([0xFF]))\",\"headers\":[{\"key\":\"h\",\"value\":\"\(Base64.encode(Array("v".utf8)))\"}],\"timestamp\":1700000000000}]}"
        let b = try ProduceFront.decode(.confluentBinary, topic: "t", partition: 3, body: Array(binary.utf8), context: ProduceContext(), random: &random).unpacked()
        #expect(b[0].key == [1, 2] && b[0].value == [0xFF] && b[0].partition == 3 && b[0].timestamp == 1_700_000_000_000)
        #expect(b[0].headers.first == KafkaHeader("h", Array("v".utf8)))
        let json = try ProduceFront.decode(.confluentJSON, topic: "t", body: Array("{\"records\":[{\"value\":{\"a\":\"b\"}}]}".utf8), context: ProduceContext(), random: &random).unpacked()
        #expect(json[0].key == nil && json[0].value == Array("{\"a\":\"b\"}".utf8))
        #expect(ProduceShape.confluent(contentType: "application/vnd.kafka.binary.v2+json; charset=utf-8") == .confluentBinary)
        #expect(ProduceShape.confluent(contentType: "application/json") == nil)
    }

    @Test mutating func badRequestsGetConfluentCodes() {
        func code(_ shape: ProduceShape, _ body: String, partition: Int32? = nil) -> Int? {
            var r = SeededRandom(seed: 1)
            do { _ = try ProduceFront.decode(shape, topic: "t", partition: partition, body: Array(body.utf8), context: ProduceContext(), random: &r); return nil }
            catch { return error.errorCode }
        }
        #expect(code(.confluentBinary, "{\"records\":[{\"key\":\"@@\",\"value\":\"AA==\"}]}") == 42201)
        #expect(code(.confluentBinary, "{\"records\":[{\"value\":\"not base64!\"}]}") == 42202)
        #expect(code(.lightMesh, "{\"records\":[{\"value\":5}]}") == 42202)
        #expect(code(.lightMesh, "not json") == 400)
        #expect(code(.lightMesh, "{\"records\":[]}") == 422)  // both APIs: an empty records list is 422
        #expect(code(.lightMesh, "{\"records\":[{\"value\":\"a\",\"partition\":-1}]}") == 422)
        #expect(code(.lightMesh, "{\"records\":[{\"value\":\"a\",\"partition\":true}]}") == 422)
        #expect(code(.confluentJSON, "{\"records\":[{\"value\":1,\"partition\":2}]}", partition: 1) == 422)
        // A partition in both the path and the body is refused, even when they agree (Strimzi's rule).
        #expect(code(.confluentJSON, "{\"records\":[{\"value\":1,\"partition\":1}]}", partition: 1) == 422)
        // Unknown fields, at the top and in a record, and a field given twice, are refused, not ignored.
        #expect(code(.confluentJSON, "{\"records\":[{\"value\":1}],\"extra\":1}") == 422)
        #expect(code(.confluentJSON, "{\"records\":[{\"value\":1,\"vaule\":2}]}") == 422)
        #expect(code(.confluentJSON, "{\"records\":[{\"value\":1,\"value\":2}]}") == 422)
        #expect(code(.confluentJSON, "{\"records\":[{\"value\":1}],\"value_schema\":\"x\"}") == 422)
        // Trailing garbage after the object is not JSON.
        #expect(code(.confluentJSON, "{\"records\":[{\"value\":1}]} x") == 400)
    }

    /// Issue 22: the record count is checked while reading, before any record is decoded, so a body
    /// of a million `{}` is refused at once (it took 0.3 s and 165 MB to parse it whole before).
    @Test mutating func tooManyRecordsAreRefusedWhileCounting() {
        var config = ProduceFrontConfig()
        config.maxRecordsPerRequest = 10
        let body = Array("{\"records\":[".utf8) + Array(repeating: Array("{},".utf8), count: 1_300_000).joined() + Array("{}]}".utf8)
        var r = SeededRandom(seed: 1)
        do {
            _ = try ProduceFront.decode(.confluentJSON, topic: "t", body: body, context: ProduceContext(), config: config, random: &r)
            Issue.record("accepted")
        } catch {
            #expect(error.status == 413 && error.errorCode == 41301)
        }
    }

    /// Issue 22: a JSON key is stored as the bytes sent, so the same key always hashes to the same
    /// partition (re-serializing an object changed its member order from one process to the next).
    @Test mutating func jsonKeysKeepTheirBytes() throws {
        let key = "{\"b\":1,\"a\":[2,{\"d\":null,\"c\":\"\\u00e9\"}]}"
        let body = "{\"records\":[{\"key\":\(key),\"value\":  {\"z\":1, \"y\":2}  }]}"
        let records = try ProduceFront.decode(.confluentJSON, topic: "t", body: Array(body.utf8), context: ProduceContext(), random: &random).unpacked()
        #expect(records[0].key == Array(key.utf8))
        #expect(records[0].value == Array("{\"z\":1, \"y\":2}".utf8))
        let nulls = try ProduceFront.decode(.confluentJSON, topic: "t", body: Array("{\"records\":[{\"key\":null,\"value\":null}]}".utf8),
                                            context: ProduceContext(), random: &random).unpacked()
        #expect(nulls[0].key == nil && nulls[0].value == nil)
    }

    /// Issue 22: Strimzi's text format.
    @Test mutating func strimziTextShape() throws {
        #expect(ProduceShape.confluent(contentType: "application/vnd.kafka.text.v2+json") == .confluentText)
        let records = try ProduceFront.decode(.confluentText, topic: "t", body: Array("{\"records\":[{\"key\":\"k\",\"value\":\"caf\\u00e9\"}]}".utf8),
                                              context: ProduceContext(), random: &random).unpacked()
        #expect(records[0].key == Array("k".utf8) && records[0].value == Array("caf\u{e9}".utf8))
    }

    /// Issue 22: a control byte in a header name (librdkafka cuts names at NUL, so
    /// `Authorization\u0000x` was stored as `Authorization`) and a reserved name given twice are refused.
    @Test mutating func headerNamesAreChecked() {
        func code(_ headers: String, _ shape: ProduceShape = .lightMesh) -> Int? {
            var r = SeededRandom(seed: 1)
            let body = "{\"records\":[{\"value\":\"dg==\",\"headers\":\(headers)}]}"
            do { _ = try ProduceFront.decode(shape, topic: "t", body: Array(body.utf8), context: ProduceContext(), random: &r); return nil }
            catch { return error.errorCode }
        }
        #expect(code("{\"Authorization\\u0000x\":\"secret\"}") == 422)
        #expect(code("{\"traceparent\\u0000\":\"x\"}") == 422)
        #expect(code("{\"a\\u007fb\":\"x\"}") == 422)
        #expect(code("{\"\":\"x\"}") == 422)
        #expect(code("{\"a\":\"1\",\"a\":\"2\"}") == 422)
        #expect(code("[{\"key\":\"traceparent\",\"value\":null},{\"key\":\"TRACEPARENT\",\"value\":null}]", .confluentBinary) == 422)
        #expect(code("[{\"key\":\"x-a\",\"value\":null},{\"key\":\"x-a\",\"value\":null}]", .confluentBinary) == nil)  // repeats of plain names are Kafka's
        #expect(code("{\"x-ok\":\"1\"}") == nil)
    }

    /// Issue 24: keys and values that stand in the body as sent are spans of it (no copy); escaped
    /// strings and base64 are decoded after it; the formats may follow the records.
    @Test mutating func packedRecordsPointIntoTheBody() throws {
        let body = Array(#"{"records":[{"key":"k1","value":"plain"},{"key":"e\u00e9","value":"x"}],"keyFormat":"string"}"#.utf8)
        let batch = try ProduceFront.decode(.lightMesh, topic: "t", body: body, context: ProduceContext(correlationId: "c"), random: &random)
        #expect(batch.records[0].value.start < body.count && batch.records[0].key.start < body.count)
        #expect(batch.bytes(batch.records[1].key).map(Array.init) == Array("e\u{e9}".utf8) && batch.records[1].key.start >= body.count)
        #expect(batch.unpacked().map { $0.headers.first { $0.key == "x-correlation-id" }?.value } == [Array("c".utf8), Array("c".utf8)])
        // A format named after the records reads them again with it.
        let late = Array(#"{"records":[{"key":"AQI=","value":"a\/8="}],"keyFormat":"binary","valueFormat":"binary"}"#.utf8)
        let again = try ProduceFront.decode(.lightMesh, topic: "t", body: late, context: ProduceContext(correlationId: "c"), random: &random).unpacked()
        #expect(again[0].key == [1, 2] && again[0].value == [0x6B, 0xFF])  // "a\/8=": an escaped slash is still base64
        #expect(again[0].headers.first { $0.key == "x-correlation-id" }?.value == Array("c".utf8))
    }

    /// Issue 24: the body is read once; when it has more than one problem, the whole-body ones
    /// (malformed JSON, the top level, the record limit) answer, as a reader that validated first would.
    @Test mutating func wholeBodyProblemsAnswerFirst() {
        func code(_ body: String) -> Int? {
            var r = SeededRandom(seed: 1)
            do { _ = try ProduceFront.decode(.confluentJSON, topic: "t", body: Array(body.utf8), context: ProduceContext(), random: &r); return nil }
            catch { return error.errorCode }
        }
        #expect(code(#"{"records":[{"value":1,"vaule":2}]} x"#) == 400)
        #expect(code(#"{"records":[{"value":1,"vaule":2}],"extra":1}"#) == 422)
        #expect(code(#"{"records":[{"value":1,"vaule":2}]}"#) == 422)
        // A good body with a top-level member given twice is refused too, not read with the last one.
        var r = SeededRandom(seed: 1)
        for body in [#"{"keyFormat":"string","keyFormat":"json","records":[{"value":"a"}]}"#,
                     #"{"records":[{"value":"a"}],"valueFormat":"string","valueFormat":"string"}"#] {
            #expect(throws: ProduceRequestError.self) {
                _ = try ProduceFront.decode(.lightMesh, topic: "t", body: Array(body.utf8), context: ProduceContext(), random: &r)
            }
        }
    }

    /// Issue 22: producing to Kafka's internal topics is refused unless allowed.
    @Test func internalTopicsAreRefused() {
        #expect(ProduceFront.topicProblem("__consumer_offsets")?.status == 403)
        #expect(ProduceFront.topicProblem("orders") == nil)
        #expect(ProduceFront.topicProblem("a/b")?.errorCode == 40003)
        var allow = ProduceFrontConfig()
        allow.allowInternalTopics = true
        #expect(ProduceFront.topicProblem("__consumer_offsets", config: allow) == nil)
    }

    /// Never a trap, whatever the bytes (the query parser's crash was one character).
    @Test func readerIsTotal() {
        var rng = SeededRandom(seed: 7)
        let alphabet = Array("{}[]\",:\\/unlfrtae0123456789.-+E \u{01}".utf8) + [0xC3, 0xA9, 0xFF, 0xED, 0xA0, 0x80]
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 40)
            var bytes = Array("{\"records\":[".utf8)
            for _ in 0..<n { bytes.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
            var r = SeededRandom(seed: 1)
            for shape in [ProduceShape.lightMesh, .confluentJSON, .confluentBinary, .confluentText] {
                _ = try? ProduceFront.decode(shape, topic: "t", body: bytes, context: ProduceContext(), random: &r)
            }
            _ = JSONValidator.isValid(Array(bytes.dropFirst(12)))
        }
    }

    @Test func answersAndStatuses() {
        let ok = Result<RecordMetadata, KafkaError>.success(RecordMetadata(topicPartition: TopicPartition("t", 1), offset: 7, timestamp: 0))
        let busy = Result<RecordMetadata, KafkaError>.failure(KafkaError(code: "queue_full", message: "full", retriable: true))
        let missing = Result<RecordMetadata, KafkaError>.failure(KafkaError(code: "unknown_topic_or_part", message: "no"))
        #expect(String(decoding: ProduceFront.confluentAnswer([ok, busy]), as: UTF8.self)
                == "{\"offsets\":[{\"partition\":1,\"offset\":7,\"error_code\":null,\"error\":null},{\"partition\":null,\"offset\":null,\"error_code\":50003,\"error\":\"queue_full: full\"}],\"key_schema_id\":null,\"value_schema_id\":null}")
        #expect(ProduceFront.status([ok]) == 200)
        #expect(ProduceFront.status([ok, busy]) == 207)
        #expect(ProduceFront.status([busy]) == 503)
        #expect(ProduceFront.status([missing]) == 404)
    }
}
