import Foundation
import MeshCore
import StreamQuery
import Testing

@Suite struct PersistentQueryTests {
    /// `pageviews` created, then the CREATE ... AS SELECT `text` planned as query number 1.
    func query(_ text: String) throws -> PersistentQuery {
        var catalog = Catalog()
        guard case .createSource(let create) = try SQLParser.parse("CREATE STREAM pageviews (id BIGINT KEY, userid STRING, amount DECIMAL(10, 2)) WITH (kafka_topic='pv', value_format='JSON')"),
              case .createAsSelect(let csas) = try SQLParser.parse(text) else { throw PlanError("not the statements") }
        try catalog.add(SourceDescription(create))
        return try PersistentQuery(csas, catalog: catalog, number: 1)
    }

    func record(_ offset: Int64, id: Int64, _ json: String, at ms: Int64, partition: Int32 = 0) -> ConsumerRecord {
        ConsumerRecord(topicPartition: TopicPartition("pv", partition), offset: offset, key: RowCodec.encodeKey(.bigint(id)), value: Array(json.utf8),
                       headers: [KafkaHeader("traceparent", Array("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".utf8))], timestamp: ms)
    }

    @Test func aStreamQueryTurnsRecordsIntoRecordsWithTheirTrace() throws {
        var q = try query("CREATE STREAM big WITH (kafka_topic='big-views') AS SELECT id, UCASE(userid) AS who, amount FROM pageviews WHERE amount > 10 EMIT CHANGES")
        #expect(q.id == "CSAS_BIG_1")
        #expect(q.sink.topic == "big-views" && q.sink.kind == .stream)
        #expect(q.process(record(0, id: 1, #"{"userid":"a","amount":5}"#, at: 10)) == [])
        let out = q.process(record(1, id: 2, #"{"userid":"b","amount":12.5}"#, at: 11))
        #expect(out.count == 1)
        #expect(out.first?.key == RowCodec.encodeKey(.bigint(2)))
        #expect(out.first?.value.map { String(decoding: $0, as: UTF8.self) } == #"{"WHO":"B","AMOUNT":12.50}"#)
        #expect(out.first?.headers.map(\.key) == ["traceparent"])
        #expect(out.first?.timestamp == 11)
        #expect(q.process(record(2, id: 3, "not json", at: 12)) == [])
        #expect(q.refusedRecords == 1 && q.lastRefusal?.hasPrefix("pv-0@2") == true)
    }

    @Test func aTableQueryKeysWindowedRowsAsKsqlDBDoes() throws {
        var q = try query("CREATE TABLE per_user AS SELECT userid, COUNT(*) AS n FROM pageviews WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY userid EMIT CHANGES")
        #expect(q.id == "CTAS_PER_USER_1")
        #expect(q.sink.topic == "PER_USER" && q.sink.windowed)
        _ = q.process(record(0, id: 1, #"{"userid":"a"}"#, at: 60_001))
        let out = q.process(record(1, id: 2, #"{"userid":"a"}"#, at: 60_002))
        #expect(out.first?.key == Array("a".utf8) + [0, 0, 0, 0, 0, 0, 0xEA, 0x60], "the key, then the window start (60,000) big-endian")
        #expect(out.first?.value.map { String(decoding: $0, as: UTF8.self) } == #"{"N":2}"#)
        #expect(throws: PlanError("an aggregation makes a TABLE: use CREATE TABLE ... AS SELECT")) {
            try query("CREATE STREAM s AS SELECT userid, COUNT(*) FROM pageviews GROUP BY userid")
        }
    }
}
