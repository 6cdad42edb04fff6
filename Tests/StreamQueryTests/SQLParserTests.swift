import StreamQuery
import Testing

@Suite struct SQLParserTests {
    private func parse(_ text: String) throws -> SQLStatement { try SQLParser.parse(text) }

    private func error(_ text: String) -> SQLSyntaxError? {
        do {
            _ = try SQLParser.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func createStreamWithKeyTypesAndProperties() throws {
        let statement = try parse("""
            CREATE STREAM pageviews (
              id BIGINT KEY, `userId` VARCHAR, amount DECIMAL(10, 2), tags ARRAY<STRING>,
              attrs MAP<STRING, INT>, address STRUCT<street STRING, `zip` INTEGER>, seen TIMESTAMP
            ) WITH (kafka_topic='pageviews', value_format='JSON', partitions=4);
            """)
        guard case .createSource(let create) = statement else { Issue.record("not a CREATE"); return }
        #expect(create.kind == .stream)
        #expect(create.name == "PAGEVIEWS")
        #expect(create.columns.map(\.name) == ["ID", "userId", "AMOUNT", "TAGS", "ATTRS", "ADDRESS", "SEEN"])
        #expect(create.columns[0].role == .key)
        #expect(create.columns.map(\.type.description) == [
            "BIGINT", "STRING", "DECIMAL(10, 2)", "ARRAY<STRING>", "MAP<STRING, INTEGER>", "STRUCT<`STREET` STRING, `zip` INTEGER>", "TIMESTAMP",
        ])
        #expect(create.properties["kafka_topic"] == .string("pageviews"))
        #expect(create.properties["PARTITIONS"] == .integer(4))
    }

    @Test func createTableNeedsPrimaryKeyWordingAndStreamsRefuseIt() throws {
        guard case .createSource(let table) = try parse("CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='users', value_format='JSON')") else {
            Issue.record("not a CREATE"); return
        }
        #expect(table.kind == .table && table.columns[0].role == .primaryKey)
        #expect(error("CREATE STREAM s (id STRING PRIMARY KEY) WITH (kafka_topic='s')")?.message.contains("PRIMARY KEY") == true)
        #expect(error("CREATE TABLE t (id STRING KEY) WITH (kafka_topic='t')")?.message.contains("PRIMARY KEY") == true)
        #expect(error("CREATE STREAM s (a INT, a INT) WITH (kafka_topic='s')")?.message.contains("twice") == true)
    }

    @Test func aggregateWithHoppingWindowGraceHavingAndEmit() throws {
        let statement = try parse("""
            CREATE TABLE per_user WITH (kafka_topic='per_user') AS
              SELECT userid, COUNT(*) AS n, SUM(amount), COUNT_DISTINCT(page), LATEST_BY_OFFSET(page) last_page
              FROM pageviews pv
              WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY 10 SECONDS, GRACE PERIOD 5 SECONDS)
              WHERE amount > 0 AND NOT (page LIKE '%admin%')
              GROUP BY userid
              HAVING COUNT(*) >= 2
              EMIT CHANGES;
            """)
        guard case .createAsSelect(let ctas) = statement else { Issue.record("not a CTAS"); return }
        let q = ctas.query
        #expect(ctas.kind == .table && ctas.properties["KAFKA_TOPIC"] == .string("per_user"))
        #expect(q.from == SourceReference("PAGEVIEWS", alias: "PV"))
        #expect(q.items.count == 5)
        #expect(q.items[1] == .expression(.call(name: "COUNT", arguments: [.star], distinct: false), alias: "N"))
        #expect(q.items[4] == .expression(.call(name: "LATEST_BY_OFFSET", arguments: [.column(qualifier: nil, name: "PAGE")], distinct: false), alias: "LAST_PAGE"))
        #expect(q.window == WindowSpec(shape: .hopping(size: WindowDuration(1, .minutes), advance: WindowDuration(10, .seconds)),
                                       grace: WindowDuration(5, .seconds)))
        #expect(q.groupBy == [.column(qualifier: nil, name: "USERID")])
        #expect(q.emit == .changes)
        #expect(q.having == .binary(.greaterOrEqual, .call(name: "COUNT", arguments: [.star], distinct: false), .literal(.integer(2))))
    }

    @Test func precedenceAndPredicates() throws {
        guard case .select(let q) = try parse("SELECT a + b * -c, x NOT BETWEEN 1 AND 2 OR y IS NOT NULL AND z IN (1, 2) FROM s") else {
            Issue.record("not a SELECT"); return
        }
        let col = { (n: String) in SQLExpression.column(qualifier: nil, name: n) }
        #expect(q.items[0] == .expression(.binary(.add, col("A"), .binary(.multiply, col("B"), .unary(.negate, col("C")))), alias: nil))
        #expect(q.items[1] == .expression(.binary(.or,
                                                  .between(col("X"), low: .literal(.integer(1)), high: .literal(.integer(2)), negated: true),
                                                  .binary(.and, .isNull(col("Y"), negated: true),
                                                          .inList(col("Z"), [.literal(.integer(1)), .literal(.integer(2))], negated: false))),
                                          alias: nil))
    }

    @Test func castCaseSubscriptsAndStructFields() throws {
        guard case .select(let q) = try parse("""
            SELECT CAST(amount AS DECIMAL(8, 3)), CASE WHEN n < 0 THEN 'neg' WHEN n = 0 THEN 'zero' ELSE 'pos' END,
                   tags[1], attrs['k'], address->zip, s.*
            FROM s JOIN t ON s.id = t.id EMIT CHANGES LIMIT 10
            """) else { Issue.record("not a SELECT"); return }
        #expect(q.items[0] == .expression(.cast(.column(qualifier: nil, name: "AMOUNT"), .decimal(precision: 8, scale: 3)), alias: nil))
        #expect(q.items[2] == .expression(.element(.column(qualifier: nil, name: "TAGS"), .literal(.integer(1))), alias: nil))
        #expect(q.items[4] == .expression(.field(.column(qualifier: nil, name: "ADDRESS"), "ZIP"), alias: nil))
        #expect(q.items[5] == .allOf("S"))
        #expect(q.joins == [SQLJoin(kind: .inner, source: SourceReference("T"),
                                    condition: .binary(.equal, .column(qualifier: "S", name: "ID"), .column(qualifier: "T", name: "ID")), within: nil)])
        #expect(q.limit == 10)
    }

    @Test func stringsKeepDoubledQuotesAndLiteralsTheirExactText() throws {
        guard case .insertValues(let insert) = try parse("INSERT INTO s (id, name, amount, big) VALUES (1, 'it''s', 12.50, -9223372036854775808)") else {
            Issue.record("not an INSERT"); return
        }
        #expect(insert.columns == ["ID", "NAME", "AMOUNT", "BIG"])
        #expect(insert.values == [.literal(.integer(1)), .literal(.string("it's")), .literal(.decimal("12.50")), .literal(.integer(.min))])
        #expect(error("INSERT INTO s (a, b) VALUES (1)")?.message == "2 columns but 1 values")
    }

    @Test func theOtherStatements() throws {
        #expect(try parse("SHOW STREAMS;") == .show(.streams))
        #expect(try parse("list queries") == .show(.queries))
        #expect(try parse("DESCRIBE s EXTENDED") == .describe(name: "S", extended: true))
        #expect(try parse("DROP TABLE IF EXISTS t DELETE TOPIC") == .drop(kind: .table, name: "T", ifExists: true, deleteTopic: true))
        #expect(try parse("TERMINATE CSAS_S2_3") == .terminate(queryId: "CSAS_S2_3"))
        #expect(try parse("TERMINATE ALL") == .terminate(queryId: nil))
        #expect(try parse("SET 'auto.offset.reset' = 'earliest'") == .set(property: "auto.offset.reset", value: "earliest"))
        #expect(try parse("UNSET 'auto.offset.reset'") == .unset(property: "auto.offset.reset"))
        guard case .insertSelect(let target, _) = try parse("INSERT INTO s2 SELECT * FROM s1 EMIT CHANGES") else { Issue.record("no INSERT SELECT"); return }
        #expect(target == "S2")
    }

    @Test func errorsSayWhereAndWhatInKsqlDBsWords() {
        let e = error("SELECT a\nFROM s WHERE")
        #expect(e?.position == SQLPosition(line: 2, column: 13, offset: 21))
        #expect(e?.description == "line 2:13: Syntax Error: expected an expression but found the end of the statement")
        #expect(error("SELEC 1")?.description == "line 1:1: Syntax Error: unknown statement 'SELEC'")
        #expect(error("SELECT 'open FROM s")?.message == "the string is not closed")
        #expect(error("SELECT a FROM s WINDOW TUMBLING (SIZE 0 SECONDS)")?.message == "a window's durations must be positive")
        #expect(error("SELECT a FROM s WINDOW HOPPING (SIZE 1 SECOND, ADVANCE BY 2 SECONDS)") != nil)
        #expect(error("SELECT a FROM s WINDOW TUMBLING (SIZE 1 FORTNIGHT)") != nil)
        #expect(error("SELECT a FROM s LIMIT -1") != nil)
        #expect(error("SELECT a FROM s extra junk") != nil)
        #expect(error("CREATE STREAM s (a DECIMAL(2, 3)) WITH (kafka_topic='s')") != nil)
        #expect(error("CREATE STREAM s (a INT) WITH (kafka_topic='s', KAFKA_TOPIC='t')")?.message == "the property KAFKA_TOPIC is given twice")
    }

    @Test func nestingIsBoundedWithAnErrorNotACrash() {
        let deep = "SELECT " + String(repeating: "(", count: 10_000) + "1" + String(repeating: ")", count: 10_000) + " FROM s"
        #expect(error(deep)?.message.contains("nested more than") == true)
        let minus = "SELECT " + String(repeating: "- ", count: 10_000) + "1 FROM s"
        #expect(error(minus)?.message.contains("nested more than") == true)
        let types = "CREATE STREAM s (a " + String(repeating: "ARRAY<", count: 5000) + "INT" + String(repeating: ">", count: 5000) + ") WITH (kafka_topic='s')"
        #expect(error(types)?.message.contains("nested more than") == true)
        let subscripts = "SELECT a" + String(repeating: "[1]", count: 5000) + " FROM s"
        #expect(error(subscripts)?.message.contains("nested more than") == true)
        let nots = "SELECT a FROM s WHERE " + String(repeating: "NOT ", count: 5000) + "b"
        #expect(error(nots)?.message.contains("nested more than") == true)
    }

    @Test func scriptsSplitOutsideQuotesAndCommentsAndNameTheFailingStatement() {
        let pieces = SQLScript.statements("""
            CREATE STREAM s (a STRING) WITH (kafka_topic='x;y', value_format='JSON'); -- a comment; still one
            /* block; comment */ INSERT INTO s (a) VALUES ('1;2');;
            SELEC oops;
            SHOW STREAMS
            """)
        #expect(pieces.map(\.text) == [
            "CREATE STREAM s (a STRING) WITH (kafka_topic='x;y', value_format='JSON');",
            "INSERT INTO s (a) VALUES ('1;2');",
            "SELEC oops;",
            "SHOW STREAMS",
        ])
        #expect((try? pieces[1].result.get()) == .insertValues(InsertValues(target: "S", columns: ["A"], values: [.literal(.string("1;2"))])))
        guard case .failure(let e) = pieces[2].result else { Issue.record("SELEC parsed"); return }
        #expect(e.position.line == 3)
        #expect((try? pieces[3].result.get()) == .show(.streams))
        let unclosed = SQLScript.statements("SHOW STREAMS; SELECT 'oops FROM s;")
        #expect(unclosed.map(\.text) == ["SHOW STREAMS;", "SELECT 'oops FROM s;"], "the statements before an unclosed quote still stand")
        #expect((try? unclosed[0].result.get()) == .show(.streams))
    }
}
