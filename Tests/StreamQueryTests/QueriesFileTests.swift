import StreamQuery
import Testing

@Suite struct QueriesFileTests {
    @Test func sourcesAndQueriesAreTakenInOrderAndAQueryCanReadAnEarlierSink() throws {
        let file = try QueriesFile("""
            -- sources first
            CREATE STREAM events (k STRING KEY, v STRING) WITH (kafka_topic='events', value_format='KAFKA');
            CREATE STREAM shouted AS SELECT k, UCASE(v) AS v FROM events EMIT CHANGES;
            CREATE TABLE per_key WITH (kafka_topic='per_key', partitions=2) AS SELECT k, COUNT(*) AS n FROM shouted GROUP BY k EMIT CHANGES;
            """)
        #expect(file.queries.map(\.id) == ["CSAS_SHOUTED_1", "CTAS_PER_KEY_2"])
        #expect(file.queries[1].source.topic == "SHOUTED")
        #expect(file.queries[1].sink.topic == "per_key" && file.queries[1].sink.partitions == 2)
    }

    @Test func whatCannotRunIsRefusedWithItsStatement() {
        let source = "CREATE STREAM events (k STRING KEY, v STRING) WITH (kafka_topic='events', value_format='KAFKA');"
        let cases: [(String, String)] = [
            (source + " SELECT * FROM events EMIT CHANGES;", "CREATE STREAM, CREATE TABLE and CREATE ... AS SELECT only"),
            (source + " DROP STREAM events;", "CREATE ... AS SELECT only"),
            (source, "nothing to run"),
            ("CREATE TABLE t AS SELECT k, COUNT(*) FROM nowhere GROUP BY k;", "NOWHERE"),
            (source + " CREATE TABLE t AS SELECT k, COUNT(* FROM events GROUP BY k;", "Syntax Error"),
            (source + " CREATE STREAM s AS SELECT k, COUNT(*) AS n FROM events GROUP BY k;", "CREATE TABLE"),
        ]
        for (text, expected) in cases {
            do {
                _ = try QueriesFile(text)
                Issue.record("taken: \(text)")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
            }
        }
    }
}
