import Foundation
import StreamQuery
import Testing

@Suite struct ExpressionTests {
    let schema = RowSchema([
        .init("ID", .bigint, source: "S"), .init("NAME", .string, source: "S"), .init("AMOUNT", .decimal(precision: 10, scale: 2), source: "S"),
        .init("N", .integer, source: "S"), .init("RATIO", .double, source: "S"), .init("TAGS", .array(.string), source: "S"),
        .init("ATTRS", .map(key: .string, value: .integer), source: "S"),
        .init("ADDR", .structure([SQLField("ZIP", .string), SQLField("NO", .integer)]), source: "S"),
        .init("SEEN", .timestamp, source: "S"), .init("FLAG", .boolean, source: "S"),
    ])

    var row: [SQLValue] {
        [.bigint(7), .string("Ada"), .decimal(Decimal(string: "12.50")!), .integer(3), .double(0.5), .array([.string("a"), .string("b")]),
         .map([SQLMapEntry(.string("k"), .integer(9))]), .structure([.string("10115"), .integer(4)]),
         .timestamp(1_785_240_204_000), .null]
    }

    /// `text` as the expression of `SELECT text FROM s`, bound and evaluated on `row`.
    func value(_ text: String) throws -> SQLValue {
        try typed(text).expression.evaluate(row)
    }

    func typed(_ text: String) throws -> TypedExpression {
        guard case .select(let q) = try SQLParser.parse("SELECT \(text) FROM s"), case .expression(let e, _) = q.items[0] else {
            throw PlanError("not an expression")
        }
        return try ExpressionBinder(schema).bind(e)
    }

    func planError(_ text: String) -> String? {
        do {
            _ = try typed(text)
            return nil
        } catch let error as PlanError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    @Test func arithmeticWidensAndKeepsDecimalsExact() throws {
        #expect(try value("n + 1") == .integer(4))
        #expect(try typed("n + id").type == .bigint)
        #expect(try value("n + id") == .bigint(10))
        #expect(try value("amount * 2") == .decimal(Decimal(string: "25.00")!))
        #expect(try typed("amount + 0.05").type == .decimal(precision: 11, scale: 2))
        #expect(try value("amount + 0.05") == .decimal(Decimal(string: "12.55")!))
        #expect(try value("ratio * 4") == .double(2))
        #expect(try value("7 / 2") == .integer(3))
        #expect(try value("-7 % 3") == .integer(-1))
        #expect(try value("n / 0") == .null, "integer division by zero is NULL, not a crash")
        #expect(try value("amount / 0") == .null)
        #expect(try value("2147483647 + n") == .integer(-2147483646), "INTEGER wraps as in Java")
        #expect(try value("-(n)") == .integer(-3))
    }

    @Test func nullsFollowThreeValuedLogic() throws {
        #expect(try value("flag AND FALSE") == .boolean(false))
        #expect(try value("flag AND TRUE") == .null)
        #expect(try value("flag OR TRUE") == .boolean(true))
        #expect(try value("NOT flag") == .null)
        #expect(try value("flag IS NULL") == .boolean(true))
        #expect(try value("n = NULL") == .null)
        #expect(try value("n IN (1, NULL)") == .null)
        #expect(try value("n IN (3, NULL)") == .boolean(true))
        #expect(try value("NULL + 1") == .null)
    }

    @Test func comparisonsAcrossNumericTypesAndPredicates() throws {
        #expect(try value("amount > 12") == .boolean(true))
        #expect(try value("id = 7.0") == .boolean(true))
        #expect(try value("n BETWEEN 1 AND 3") == .boolean(true))
        #expect(try value("n NOT BETWEEN 1 AND 3") == .boolean(false))
        #expect(try value("name LIKE 'A_a'") == .boolean(true))
        #expect(try value("name LIKE '%d%'") == .boolean(true))
        #expect(try value("name NOT LIKE 'a%'") == .boolean(true), "LIKE is case-sensitive")
        #expect(try value("'x' < 'y'") == .boolean(true))
    }

    @Test func containersCaseAndCasts() throws {
        #expect(try value("tags[1]") == .string("a"))
        #expect(try value("tags[-1]") == .string("b"))
        #expect(try value("tags[3]") == .null)
        #expect(try value("attrs['k']") == .integer(9))
        #expect(try value("attrs['none']") == .null)
        #expect(try value("addr->zip") == .string("10115"))
        #expect(try value("CASE WHEN n > 5 THEN 'big' WHEN n > 1 THEN 'mid' ELSE 'small' END") == .string("mid"))
        #expect(try value("CASE n WHEN 3 THEN 'three' END") == .string("three"))
        #expect(try value("CASE WHEN n > 5 THEN 1 ELSE 2.5 END") == .decimal(Decimal(string: "2.5")!), "branches widen to one type")
        #expect(try value("CAST('42' AS INT)") == .integer(42))
        #expect(try value("CAST('4x2' AS INT)") == .null)
        #expect(try value("CAST(amount AS STRING)") == .string("12.50"), "a DECIMAL prints with its scale")
        #expect(try value("CAST(amount AS INTEGER)") == .integer(12))
        #expect(try value("CAST(3000000000 AS INT)") == .null)
        #expect(try value("CAST(seen AS STRING)") == .string("2026-07-28T12:03:24.000"))
        #expect(try value("CAST('2024-02-29' AS DATE)") == .date(19_782))
        #expect(try value("CAST('2023-02-29' AS DATE)") == .null, "no such day")
        #expect(try value("CAST(1.005 AS DECIMAL(3, 2))") == .decimal(Decimal(string: "1.01")!), "half up")
        #expect(try value("CAST(123.4 AS DECIMAL(3, 2))") == .null, "too many digits")
    }

    @Test func scalarFunctions() throws {
        #expect(try value("UCASE(name)") == .string("ADA"))
        #expect(try value("LCASE(name) || '!'") == .string("ada!"))
        #expect(try value("LEN(name)") == .integer(3))
        #expect(try value("SUBSTRING(name, 2)") == .string("da"))
        #expect(try value("SUBSTRING(name, -2, 1)") == .string("d"))
        #expect(try value("CONCAT(name, '-', CAST(id AS STRING))") == .string("Ada-7"))
        #expect(try value("REPLACE(name, 'a', 'o')") == .string("Ado"))
        #expect(try value("COALESCE(NULL, name)") == .string("Ada"))
        #expect(try value("IFNULL(flag, TRUE)") == .boolean(true))
        #expect(try value("ROUND(amount)") == .decimal(13))
        #expect(try value("FLOOR(-1.5)") == .decimal(-2))
        #expect(try value("CEIL(-1.5)") == .decimal(-1))
        #expect(try value("ABS(-n)") == .integer(3))
        #expect(try value("FORMAT_DATE(CAST(seen AS DATE))") == .string("2026-07-28"))
        #expect(try value("UNIX_TIMESTAMP(PARSE_TIMESTAMP('1970-01-01T00:00:01.5'))") == .bigint(1500))
    }

    @Test func plansNameWhatIsWrong() {
        #expect(planError("nope") == "unknown column NOPE")
        #expect(planError("t.id") == "unknown source T in T.ID")
        #expect(planError("name + 1") == "+ needs numbers, not STRING and INTEGER")
        #expect(planError("name = 1") == "= cannot compare STRING with INTEGER")
        #expect(planError("COUNT(*)") == "the aggregate COUNT is not allowed here")
        #expect(planError("FROBNICATE(1)") == "unknown function FROBNICATE")
        #expect(planError("UCASE(n)") == "argument 1 of UCASE must be STRING, not INTEGER")
        #expect(planError("CAST(tags AS INT)") == "cannot CAST ARRAY<STRING> AS INTEGER")
        #expect(planError("n[1]") == "[] needs an ARRAY or a MAP, not INTEGER")
        #expect(planError("addr->street") == "the STRUCT has no field STREET")
        #expect(planError("CASE WHEN n THEN 1 END") == "WHEN must be BOOLEAN, not INTEGER")
    }

    @Test func constantsAreFoldedOnce() throws {
        #expect(try typed("1 + 2 * 3").expression == .constant(.integer(7)))
        #expect(try typed("UCASE('a') || 'b'").expression == .constant(.string("Ab")))
    }

    @Test func timeTextRoundTripsAcrossTheCalendar() {
        for days: Int64 in [-719_468, -1, 0, 59, 60, 11_016, 19_782, 2_932_896] {
            let text = TimeText.date(days: days)
            #expect(TimeText.parseDate(text) == days, "\(days) → \(text)")
        }
        #expect(TimeText.timestamp(milliseconds: -1) == "1969-12-31T23:59:59.999")
        #expect(TimeText.time(milliseconds: 43_404_000) == "12:03:24")
        #expect(TimeText.parseTime("12:03") == 43_380_000)
    }
}
