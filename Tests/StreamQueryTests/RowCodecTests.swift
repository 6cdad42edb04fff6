import Foundation
import MeshCore
import StreamQuery
import Testing

@Suite struct RowCodecTests {
    func source(_ text: String) throws -> SourceDescription {
        guard case .createSource(let create) = try SQLParser.parse(text) else { throw PlanError("not a CREATE") }
        return try SourceDescription(create)
    }

    @Test func jsonValuesAreReadByColumnTypeWithExactDecimalsAndCaseInsensitiveNames() throws {
        let s = try source("""
            CREATE STREAM s (id BIGINT KEY, name STRING, amount DECIMAL(10, 2), tags ARRAY<STRING>, attrs MAP<STRING, INT>,
              addr STRUCT<zip STRING>, seen TIMESTAMP, ok BOOLEAN, h BYTES HEADER('trace'), missing INT)
            WITH (kafka_topic='s', value_format='JSON')
            """)
        let value = Array(#"{"Name":"Ada","AMOUNT":12.345678901234567890,"tags":["a","b"],"attrs":{"k":9},"addr":{"ZIP":"10115"},"seen":1785240204000,"ok":true}"#.utf8)
        let key: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 7]
        let row = try RowCodec.decode(s, key: key, value: value, headers: [KafkaHeader("trace", [1, 2])])
        let expected: [SQLValue] = [
            .bigint(7), .string("Ada"), .decimal(Decimal(string: "12.35")!), .array([.string("a"), .string("b")]),
            .map([SQLMapEntry(.string("k"), .integer(9))]), .structure([.string("10115")]), .timestamp(1_785_240_204_000),
            .boolean(true), .bytes([1, 2]), .null,
        ]
        #expect(row == expected)
    }

    @Test func recordsThatDoNotFitAreRefusedWithTheReason() throws {
        let s = try source("CREATE STREAM s (n INT, d DECIMAL(4, 2)) WITH (kafka_topic='s', value_format='JSON')")
        func refusal(_ json: String) -> String? {
            do {
                _ = try RowCodec.decode(s, key: nil, value: Array(json.utf8), headers: [])
                return nil
            } catch {
                return error.message
            }
        }
        #expect(refusal(#"{"n":"x"}"#) == #"N: "x" is not a INTEGER"#)
        #expect(refusal(#"{"n":3000000000}"#) == "N: 3000000000 is not a INTEGER")
        #expect(refusal(#"{"d":123.4}"#) == "D: 123.4 does not fit DECIMAL(4, 2)")
        #expect(refusal("[1]") == "the value is not a JSON object")
        #expect(refusal(#"{"n":1"#)?.hasPrefix("the value is not JSON") == true)
        #expect(refusal(String(repeating: "[", count: 100_000))?.contains("nested more than") == true)
        #expect(refusal(#"{"n":null,"d":"1.5"}"#) == nil, "NULL and a decimal in a string are taken")
    }

    @Test func delimitedAndKafkaFormats() throws {
        let d = try source("CREATE STREAM d (id STRING KEY, a INT, b STRING, c DOUBLE) WITH (kafka_topic='d', value_format='DELIMITED')")
        #expect(try RowCodec.decode(d, key: Array("k1".utf8), value: Array("4,\"x, \"\"y\"\"\",\n".utf8), headers: [])
                == [.string("k1"), .integer(4), .string("x, \"y\""), .null])
        #expect(throws: RowCodec.Refused.self) { try RowCodec.decode(d, key: nil, value: Array("1,2".utf8), headers: []) }
        let k = try source("CREATE STREAM k (id INT KEY, v DOUBLE) WITH (kafka_topic='k', value_format='KAFKA')")
        let row = try RowCodec.decode(k, key: [0, 0, 1, 0], value: RowCodec.encodeKey(.double(2.5)), headers: [])
        #expect(row == [.integer(256), .double(2.5)])
        #expect(throws: RowCodec.Refused.self) { try RowCodec.decode(k, key: [1], value: nil, headers: []) }
    }

    @Test func outputRowsAreWrittenAsKsqlDBWritesJSON() {
        let columns = [
            ColumnDefinition("K", .string, role: .primaryKey), ColumnDefinition("AMOUNT", .decimal(precision: 10, scale: 2)),
            ColumnDefinition("NOTE", .string), ColumnDefinition("AT", .timestamp), ColumnDefinition("R", .double),
            ColumnDefinition("S", .structure([SQLField("A", .integer)])),
        ]
        let bytes = RowCodec.encodeValue(columns, [.decimal(Decimal(string: "1.5")!), .string("a\"b\n"), .timestamp(5), .double(.nan), .structure([.integer(1)])])
        #expect(bytes.map { String(decoding: $0, as: UTF8.self) } == #"{"AMOUNT":1.50,"NOTE":"a\"b\n","AT":5,"R":null,"S":{"A":1}}"#)
        #expect(RowCodec.encodeValue(columns, nil) == nil, "a tombstone")
        #expect(RowCodec.encodeKey(.bigint(1)) == [0, 0, 0, 0, 0, 0, 0, 1])
        #expect(RowCodec.encodeKey(.null) == nil)
    }

    @Test func jsonNodesParseRoundTripAndRefuseGarbage() throws {
        #expect(try JSONNode.parse(Array(#" {"a":[1,-2.5e3,"\u00e9\ud83d\ude00",true,null]} "#.utf8))
                == .object([("a", .array([.number("1"), .number("-2.5e3"), .string("é😀"), .boolean(true), .null]))]))
        for bad in ["", "01", "1.", "[1,]", "{\"a\"}", "\"\\x\"", "tru", "[1] 2", "\"\u{01}\""] {
            #expect(throws: JSONNode.Malformed.self, "\(bad.debugDescription)") { try JSONNode.parse(Array(bad.utf8)) }
        }
    }
}
