import Foundation
import MeshCore
import StreamQuery
import Testing

/// The parser reads text from any client: it must answer every input with a statement or an error,
/// never crash, and stay linear. Inputs come from a seeded generator (`SQL_FUZZ_SEED` picks another
/// seed; the failing input is printed): random bytes, soups of the grammar's own tokens, valid
/// statements cut and spliced, and deep nesting of every recursive construct.
@Suite struct SQLParserFuzzTests {
    static let seed = UInt64(Environment.value("SQL_FUZZ_SEED") ?? "") ?? 20_261_207

    static let valid = [
        "CREATE STREAM pageviews (id BIGINT KEY, userid VARCHAR, amount DECIMAL(10, 2), tags ARRAY<STRING>, m MAP<STRING, INT>, s STRUCT<a INT, `b` STRING>) WITH (kafka_topic='pv', value_format='JSON', partitions=4);",
        "CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='users', value_format='JSON');",
        "CREATE TABLE per_user AS SELECT userid, COUNT(*) AS n, SUM(amount) FROM pageviews WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS) WHERE amount > 0 GROUP BY userid HAVING COUNT(*) > 1 EMIT CHANGES;",
        "CREATE STREAM enriched AS SELECT p.id, u.name, CASE WHEN p.amount > 100 THEN 'big' ELSE 'small' END AS size FROM pageviews p LEFT JOIN users u ON p.userid = u.id PARTITION BY p.id EMIT CHANGES;",
        "SELECT CAST(amount AS DOUBLE) * 2 + 1, tags[1], m['k'], s->a FROM pageviews WHERE userid LIKE 'u%' AND id NOT IN (1, 2, 3) EMIT CHANGES LIMIT 5;",
        "INSERT INTO pageviews (id, userid, amount) VALUES (1, 'it''s', -12.50);",
        "SHOW STREAMS; DESCRIBE pageviews EXTENDED; DROP TABLE IF EXISTS per_user DELETE TOPIC; TERMINATE ALL; SET 'a' = 'b'; UNSET 'a';",
    ]

    static let vocabulary = [
        "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "WINDOW", "TUMBLING", "HOPPING", "SESSION", "SIZE", "ADVANCE", "GRACE",
        "PERIOD", "EMIT", "CHANGES", "FINAL", "LIMIT", "PARTITION", "JOIN", "LEFT", "ON", "AS", "AND", "OR", "NOT", "IS", "NULL",
        "CASE", "WHEN", "THEN", "ELSE", "END", "IN", "BETWEEN", "LIKE", "CAST", "CREATE", "STREAM", "TABLE", "WITH", "INSERT",
        "INTO", "VALUES", "KEY", "PRIMARY", "ARRAY", "MAP", "STRUCT", "DECIMAL", "INT", "STRING", "SECONDS", "COUNT", "(", ")",
        "(", ")", ",", ";", ".", "[", "]", "*", "+", "-", "/", "%", "=", "<>", "<", ">", ">=", "->", "||", "'s'", "''", "`q`",
        "1", "0", "-1", "2.5", "1e3", "9223372036854775808", "a", "b", "x", "--", "/*", "*/", "'", "`", "\"", "\n",
    ]

    /// Parses `text` both ways (alone and as a script) and checks the answers are well-formed.
    private func exercise(_ text: String) {
        do {
            _ = try SQLParser.parse(text)
        } catch {
            #expect(error.position.line >= 1 && error.position.column >= 1, "bad position for \(text.debugDescription)")
            #expect(error.position.offset <= text.utf8.count, "offset past the end for \(text.debugDescription)")
        }
        for piece in SQLScript.statements(text) {
            #expect(text.contains(piece.text) || piece.text.isEmpty, "a piece that is not in the text for \(text.debugDescription)")
        }
    }

    @Test func randomBytesNeverCrash() {
        var random = SeededRandom(seed: Self.seed)
        for _ in 0..<3000 {
            let count = Int(random.next() % 200)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            exercise(String(decoding: bytes, as: UTF8.self))
        }
    }

    @Test func tokenSoupsNeverCrash() {
        var random = SeededRandom(seed: Self.seed &+ 1)
        for _ in 0..<5000 {
            let count = Int(random.next() % 40)
            let words = (0..<count).map { _ in Self.vocabulary[Int(random.next() % UInt64(Self.vocabulary.count))] }
            exercise(words.joined(separator: random.next() % 4 == 0 ? "" : " "))
        }
    }

    @Test func cutAndSplicedStatementsNeverCrash() {
        var random = SeededRandom(seed: Self.seed &+ 2)
        for _ in 0..<5000 {
            let a = Array(Self.valid[Int(random.next() % UInt64(Self.valid.count))].utf8)
            let b = Array(Self.valid[Int(random.next() % UInt64(Self.valid.count))].utf8)
            let cut = Int(random.next() % UInt64(a.count + 1))
            let from = Int(random.next() % UInt64(b.count + 1))
            var bytes = Array(a[..<cut]) + Array(b[from...])
            if random.next() % 3 == 0, !bytes.isEmpty {  // and one byte changed
                bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next() % 128)
            }
            exercise(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// Expressions that parse are bound and evaluated against a row of edge values: every answer
    /// is a value or a plan error, never a trap (overflow, a bad index, a division by zero).
    @Test func boundExpressionsNeverTrap() {
        let schema = RowSchema([
            .init("A", .integer), .init("B", .bigint), .init("X", .double), .init("S", .string),
            .init("D", .decimal(precision: 38, scale: 10)), .init("T", .array(.integer)), .init("TS", .timestamp),
        ])
        let rows: [[SQLValue]] = [
            [.integer(.min), .bigint(.min), .double(.infinity), .string(""), .decimal(Decimal(string: "-9999999999999999999999999999.9999999999")!), .array([]), .timestamp(.min)],
            [.integer(.max), .bigint(.max), .double(.nan), .string("%_%"), .decimal(0), .array([.integer(-1)]), .timestamp(.max)],
            [.null, .null, .null, .null, .null, .null, .null],
        ]
        let atoms = ["a", "b", "x", "s", "d", "t", "ts", "0", "-1", "2147483647", "9223372036854775807", "-9223372036854775808",
                     "1.5", "1e308", "'2024-02-29'", "NULL", "t[b]", "t[-2147483648]"]
        let operators = ["+", "-", "*", "/", "%", "=", "<", "||", "AND", "OR"]
        let functions = ["ABS", "ROUND", "FLOOR", "CEIL", "LEN", "UCASE", "SUBSTRING", "CAST"]
        var random = SeededRandom(seed: Self.seed &+ 3)
        func pick(_ list: [String]) -> String { list[Int(random.next() % UInt64(list.count))] }
        for _ in 0..<4000 {
            var text = pick(atoms)
            for _ in 0..<Int(random.next() % 4) {
                switch random.next() % 4 {
                case 0: text = "\(pick(functions))(\(text))"
                case 1: text = "CAST(\(text) AS \(pick(["INT", "BIGINT", "DOUBLE", "DECIMAL(5, 2)", "STRING", "DATE", "TIMESTAMP"])))"
                case 2: text = "SUBSTRING(\(text), \(pick(atoms)), \(pick(atoms)))"
                default: text = "(\(text) \(pick(operators)) \(pick(atoms)))"
                }
            }
            guard case .select(let q)? = try? SQLParser.parse("SELECT \(text) FROM s"), case .expression(let e, _) = q.items[0],
                  let bound = try? ExpressionBinder(schema).bind(e) else { continue }
            for row in rows { _ = bound.expression.evaluate(row) }
        }
    }

    /// Record values from a hostile producer: cut and mutated JSON, DELIMITED lines and KAFKA
    /// primitives read into a row of every type. Each gets a row or a refusal, never a trap.
    @Test func hostileRecordsAreReadOrRefusedNeverTrap() throws {
        let json = try SQLParser.parse("CREATE STREAM s (id INT KEY, a BIGINT, b DECIMAL(5, 2), c ARRAY<MAP<STRING, INT>>, d STRUCT<x TIMESTAMP, y DATE>, e TIME, f BYTES, g DOUBLE) WITH (kafka_topic='s')")
        let delimited = try SQLParser.parse("CREATE STREAM t (id INT KEY, a BIGINT, b DECIMAL(5, 2), e TIME, g DOUBLE, s STRING) WITH (kafka_topic='t', value_format='DELIMITED')")
        guard case .createSource(let j) = json, case .createSource(let d) = delimited else { Issue.record("not CREATEs"); return }
        let sources = [try SourceDescription(j), try SourceDescription(d)]
        let seeds = [
            #"{"a":9223372036854775807,"b":"999.99","c":[{"k":2147483647}],"d":{"x":-9223372036854775808,"y":2147483647},"e":86399999,"f":"AAEC","g":1e308}"#,
            #"1,-9223372036854775808,"-999.99",0,-1e-308,"""""#,
        ]
        var random = SeededRandom(seed: Self.seed &+ 4)
        for _ in 0..<6000 {
            var bytes = Array(seeds[Int(random.next() % 2)].utf8)
            for _ in 0..<Int(random.next() % 4) {
                let at = Int(random.next() % UInt64(bytes.count + 1))
                switch random.next() % 3 {
                case 0: if at < bytes.count { bytes.remove(at: at) }
                case 1: bytes.insert(Array(#"{}[],:"0-.eE\u"#.utf8)[Int(random.next() % 14)], at: at)
                default: if at < bytes.count { bytes[at] = UInt8(truncatingIfNeeded: random.next()) }
                }
            }
            let key = (0..<Int(random.next() % 6)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            for source in sources { _ = try? RowCodec.decode(source, key: key, value: bytes, headers: []) }
        }
    }

    @Test func everyValidStatementParses() {
        for text in Self.valid {
            for piece in SQLScript.statements(text) {
                if case .failure(let error) = piece.result { Issue.record("\(piece.text): \(error)") }
            }
        }
    }

    /// Each recursive construct nested far past the limit: an error, and in time linear in the text.
    @Test func deepNestingOfEveryConstructIsRefused() {
        let depth = 50_000
        let inputs = [
            "SELECT " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth) + " FROM s",
            "SELECT " + String(repeating: "CASE WHEN ", count: depth) + "1",
            "SELECT " + String(repeating: "f(", count: depth) + "1",
            "SELECT " + String(repeating: "CAST(", count: depth) + "1",
            "SELECT a" + String(repeating: "->b", count: depth) + " FROM s",
            "SELECT " + String(repeating: "NOT ", count: depth) + "a FROM s",
            "SELECT " + String(repeating: "+", count: depth) + "1 FROM s",
            "SELECT a FROM s WHERE x IN (" + String(repeating: "x IN (", count: depth),
            "CREATE STREAM s (a " + String(repeating: "MAP<STRING, ", count: depth) + "INT",
            "CREATE STREAM s (a " + String(repeating: "STRUCT<b ", count: depth) + "INT",
        ]
        for text in inputs {
            #expect(throws: SQLSyntaxError.self) { try SQLParser.parse(text) }
            exercise(text)
        }
    }

    @Test func oversizedTextIsRefusedBeforeAnyWork() {
        let text = "SELECT " + String(repeating: "a, ", count: SQLLexer.maxBytes / 3) + "b FROM s"
        #expect(throws: SQLSyntaxError.self) { try SQLParser.parse(text) }
        #expect(SQLScript.statements(text).count == 1)
    }
}

private enum Environment {
    static func value(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
