import Foundation
import MeshCore
import StreamQuery
import Testing

@Suite struct QueryPlanTests {
    /// A catalog holding `pageviews` (a stream keyed by ID) and `users` (a table).
    func catalog() throws -> Catalog {
        var catalog = Catalog()
        for text in [
            "CREATE STREAM pageviews (id BIGINT KEY, userid STRING, page STRING, amount DECIMAL(10, 2), seen TIMESTAMP) WITH (kafka_topic='pv', value_format='JSON', timestamp='seen')",
            "CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='users', value_format='JSON')",
        ] {
            guard case .createSource(let create) = try SQLParser.parse(text) else { throw PlanError("not a CREATE") }
            try catalog.add(SourceDescription(create))
        }
        return catalog
    }

    func plan(_ text: String) throws -> QueryPlan {
        let statement = try SQLParser.parse(text)
        switch statement {
        case .select(let q): return try QueryPlanner.plan(q, catalog: catalog())
        case .createAsSelect(let c): return try QueryPlanner.plan(c.query, catalog: catalog())
        default: throw PlanError("not a query")
        }
    }

    func planError(_ text: String) -> String? {
        do {
            _ = try plan(text)
            return nil
        } catch let error as PlanError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    func input(_ id: Int64, _ user: String, _ page: String, _ amount: String?, at ms: Int64, offset: Int64 = 0) -> QueryInput {
        QueryInput(row: [.bigint(id), .string(user), .string(page), amount.map { .decimal(Decimal(string: $0)!) } ?? .null, .timestamp(ms)],
                   timestamp: 0, topicPartition: TopicPartition("pv", 0), offset: offset)
    }

    @Test func catalogChecksSourcesAsKsqlDBDoes() throws {
        var c = try catalog()
        #expect(c.sources.map(\.name) == ["PAGEVIEWS", "USERS"])
        #expect(c.source("PAGEVIEWS")?.timestampColumn == "SEEN")
        func source(_ text: String) throws -> SourceDescription {
            guard case .createSource(let create) = try SQLParser.parse(text) else { throw PlanError("not a CREATE") }
            return try SourceDescription(create)
        }
        #expect(throws: PlanError("a stream named PAGEVIEWS exists already")) { try c.add(source("CREATE STREAM pageviews (a INT) WITH (kafka_topic='x')")) }
        #expect(try c.add(source("CREATE STREAM pageviews (a INT) WITH (kafka_topic='x')"), ifNotExists: true) == false)
        #expect(throws: PlanError("PAGEVIEWS needs WITH (KAFKA_TOPIC='...')")) { try source("CREATE STREAM pageviews (a INT)") }
        #expect(throws: PlanError("the table T needs exactly one PRIMARY KEY column")) { try source("CREATE TABLE t (a INT) WITH (kafka_topic='t')") }
        #expect(throws: PlanError("VALUE_FORMAT must be JSON, DELIMITED or KAFKA, not 'AVRO'")) { try source("CREATE STREAM s (a INT) WITH (kafka_topic='s', value_format='AVRO')") }
        #expect(throws: (any Error).self) { try source("CREATE STREAM s (a INT) WITH (kafka_topic='s', colour='red')") }
        #expect(try c.drop("USERS", kind: .table, ifExists: false))
        #expect(throws: PlanError("PAGEVIEWS is a STREAM, not a TABLE")) { try c.drop("PAGEVIEWS", kind: .table, ifExists: false) }
    }

    @Test func aProjectionFiltersRekeysAndNamesColumns() throws {
        guard case .projection(let p) = try plan("SELECT userid, UCASE(page), amount * 2 AS double_amount FROM pageviews WHERE amount > 10 PARTITION BY userid") else {
            Issue.record("not a projection"); return
        }
        #expect(p.output.map(\.name) == ["USERID", "KSQL_COL_0", "DOUBLE_AMOUNT"])
        #expect(p.output[0].role == .key)
        let op = ProjectionOperator(p)
        #expect(op.process(input(1, "u1", "home", "5.00", at: 0)) == nil, "filtered")
        #expect(op.process(input(1, "u1", "home", nil, at: 0)) == nil, "NULL does not pass WHERE")
        let out = op.process(input(1, "u1", "home", "12.50", at: 0))
        #expect(out?.key == .string("u1"))
        #expect(out?.values == [.string("HOME"), .decimal(Decimal(string: "25.00")!)])
    }

    @Test func selectStarKeepsTheKeyAsKey() throws {
        guard case .projection(let p) = try plan("SELECT * FROM pageviews") else { Issue.record("not a projection"); return }
        #expect(p.output.map(\.name) == ["ID", "USERID", "PAGE", "AMOUNT", "SEEN"])
        #expect(p.output[0].role == .key && p.projections.count == 4)
    }

    @Test func aWindowedAggregationCountsLateRecordsAndEvictsClosedWindows() throws {
        guard case .aggregation(let a) = try plan("""
            SELECT userid, COUNT(*) AS n, SUM(amount) AS total, WINDOWSTART AS ws
            FROM pageviews WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 5 SECONDS) GROUP BY userid EMIT CHANGES
            """) else { Issue.record("not an aggregation"); return }
        #expect(a.output.map(\.name) == ["USERID", "N", "TOTAL", "WS"])
        #expect(a.output.map(\.type) == [.string, .bigint, .decimal(precision: 38, scale: 2), .bigint])
        var op = AggregationOperator(a)
        _ = op.process(input(1, "u1", "a", "1.00", at: 1000))
        let second = op.process(input(2, "u1", "b", "2.50", at: 9999))
        #expect(second == [QueryOutput(key: .string("u1"), values: [.bigint(2), .decimal(Decimal(string: "3.50")!), .bigint(0)], window: 0..<10_000, timestamp: 9999)])
        _ = op.process(input(3, "u2", "c", "1.00", at: 14_999))  // stream time 14,999: window [0, 10s) open until 15s
        #expect(op.process(input(4, "u1", "d", "1.00", at: 500)).first?.values?.first == .bigint(3), "within grace")
        _ = op.process(input(5, "u2", "e", "1.00", at: 15_000))  // [0, 10s) closes
        #expect(op.process(input(6, "u1", "f", "1.00", at: 600)) == [], "late: its window closed")
        #expect(op.lateRecords == 1)
        #expect(!op.groups.keys.contains { $0.windowStart == 0 }, "closed windows are evicted")
    }

    @Test func hoppingWindowsCoverEveryRecordSizeOverAdvanceTimes() {
        let windows = WindowAssigner.windows(containing: 25_000, .hopping(size: WindowDuration(30, .seconds), advance: WindowDuration(10, .seconds)))
        #expect(windows == [0..<30_000, 10_000..<40_000, 20_000..<50_000])
        #expect(WindowAssigner.windows(containing: -1, .tumbling(size: WindowDuration(10, .seconds))) == [-10_000..<0])
        #expect(WindowAssigner.windows(containing: .max, .tumbling(size: WindowDuration(10, .seconds))).count == 1)
    }

    @Test func havingDeletesARowThatNoLongerQualifies() throws {
        guard case .aggregation(let a) = try plan("SELECT userid, MIN(amount) AS lowest FROM pageviews GROUP BY userid HAVING MIN(amount) > 1") else {
            Issue.record("not an aggregation"); return
        }
        var op = AggregationOperator(a)
        #expect(op.process(input(1, "u1", "a", "0.50", at: 0)) == [], "never output: no tombstone either")
        var op2 = AggregationOperator(a)
        #expect(op2.process(input(1, "u1", "a", "5.00", at: 0)).first?.values == [.decimal(5)])
        #expect(op2.process(input(2, "u1", "a", "0.50", at: 1)) == [QueryOutput(key: .string("u1"), values: nil, timestamp: 1)])
    }

    @Test func plansNameWhatIsWrong() {
        #expect(planError("SELECT page, COUNT(*) FROM pageviews GROUP BY userid") == "PAGE must be in GROUP BY or inside an aggregate")
        #expect(planError("SELECT COUNT(*) FROM pageviews") == "aggregates need GROUP BY")
        #expect(planError("SELECT userid, SUM(page) FROM pageviews GROUP BY userid") == "SUM needs a number, not STRING")
        #expect(planError("SELECT userid, SUM(COUNT(*)) FROM pageviews GROUP BY userid") == "an aggregate cannot contain another aggregate")
        #expect(planError("SELECT * FROM nope") == "unknown stream or table NOPE")
        #expect(planError("SELECT * FROM pageviews p JOIN users u ON p.userid = u.id") == "JOIN is not supported yet")
        #expect(planError("SELECT * FROM users") != nil)
        #expect(planError("SELECT userid, COUNT(*) FROM pageviews WINDOW HOPPING (SIZE 1 DAY, ADVANCE BY 1 SECOND) GROUP BY userid")?.contains("hopping windows") == true)
        #expect(planError("SELECT id, userid FROM pageviews") == nil, "the key is output once, as the key")
        #expect(planError("SELECT page, page FROM pageviews") == "the output has two columns named PAGE: give one an alias")
        #expect(planError("SELECT userid, COUNT(*) FROM pageviews GROUP BY userid EMIT FINAL") == "EMIT FINAL is not supported yet (use EMIT CHANGES)")
    }

    /// The operator's final rows against a brute-force recomputation from the whole input: with a
    /// grace longer than the input's disorder nothing is late, and every window's last output must
    /// be the aggregates of exactly the records in it.
    @Test func windowedAggregatesMatchABruteForceRecount() throws {
        guard case .aggregation(let a) = try plan("""
            SELECT userid, COUNT(*) AS n, SUM(amount) AS total, MAX(amount) AS top, COUNT_DISTINCT(page) AS pages, AVG(amount) AS mean
            FROM pageviews WINDOW HOPPING (SIZE 4 SECONDS, ADVANCE BY 1 SECOND, GRACE PERIOD 1 HOUR) GROUP BY userid
            """) else { Issue.record("not an aggregation"); return }
        var random = SeededRandom(seed: 42)
        var inputs: [QueryInput] = []
        for i in 0..<2000 {
            let ms = Int64(random.next() % 60_000)
            let amount = random.next() % 10 == 0 ? nil : "\(random.next() % 1000).\(random.next() % 100)"
            inputs.append(input(Int64(i), "u\(random.next() % 7)", "p\(random.next() % 5)", amount, at: ms, offset: Int64(i)))
        }
        var op = AggregationOperator(a)
        var last: [String: [SQLValue]] = [:]
        for input in inputs {
            for out in op.process(input) {
                last["\(out.key)@\(out.window!.lowerBound)"] = out.values
            }
        }
        #expect(op.lateRecords == 0)
        var expected: [String: [SQLValue]] = [:]
        let starts = Set(inputs.flatMap { input -> [Int64] in
            guard case .timestamp(let t) = input.row[4] else { return [] }
            return WindowAssigner.windows(containing: t, .hopping(size: WindowDuration(4, .seconds), advance: WindowDuration(1, .seconds))).map(\.lowerBound)
        })
        for user in Set(inputs.map { $0.row[1] }) {
            for start in starts {
                let members = inputs.filter { input in
                    guard case .timestamp(let t) = input.row[4] else { return false }
                    return input.row[1] == user && t >= start && t < start + 4000
                }
                guard !members.isEmpty else { continue }
                let amounts = members.compactMap { m -> Decimal? in if case .decimal(let d) = m.row[3] { return d } else { return nil } }
                let total: SQLValue = amounts.isEmpty ? .null : .decimal(amounts.reduce(0, +))
                let top: SQLValue = amounts.max().map { .decimal($0) } ?? .null
                let mean: SQLValue = amounts.isEmpty ? .null : .double(amounts.map { NSDecimalNumber(decimal: $0).doubleValue }.reduce(0, +) / Double(amounts.count))
                expected["\(user)@\(start)"] = [.bigint(Int64(members.count)), total, top, .bigint(Int64(Set(members.map { $0.row[2] }).count)), mean]
            }
        }
        #expect(last.count == expected.count)
        for (key, values) in expected {
            guard let got = last[key] else { Issue.record("no row for \(key)"); continue }
            #expect(Array(got.prefix(4)) == Array(values.prefix(4)), "\(key)")
            if case .double(let g) = got[4], case .double(let e) = values[4] { #expect(abs(g - e) < 1e-6, "\(key) AVG") } else { #expect(got[4] == values[4]) }
        }
    }
}
