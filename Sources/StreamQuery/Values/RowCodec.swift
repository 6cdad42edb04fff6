import Foundation
import MeshCore

/// A record's key, value and headers read into a source's row, and output rows written back as
/// record bytes, in ksqlDB's formats:
///
/// - value `JSON`: an object whose members are the value columns (names matched ignoring case;
///   a missing member is NULL). DECIMALs are read from the number's text, exactly; TIMESTAMP,
///   DATE and TIME are numbers (milliseconds, days, milliseconds), as ksqlDB writes them.
/// - value `DELIMITED`: one line of comma-separated fields, in column order (`"` quotes a field).
/// - key and value `KAFKA`: one primitive: STRING as UTF-8, INTEGER and BIGINT as big-endian
///   integers of 4 and 8 bytes, DOUBLE as a big-endian IEEE double.
/// - `HEADERS` columns get every header (`ARRAY<STRUCT<KEY STRING, VALUE BYTES>>`), `HEADER('h')`
///   the last value of `h`.
///
/// A record that does not fit its source's columns is refused with the reason, and the query skips
/// it (ksqlDB writes such records to its processing log and goes on).
public enum RowCodec {
    public struct Refused: Error, Hashable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        init(_ message: String) { self.message = message }
    }

    // MARK: Reading

    /// The row of `source` for one record.
    public static func decode(_ source: SourceDescription, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader]) throws(Refused) -> [SQLValue] {
        var row = [SQLValue](repeating: .null, count: source.columns.count)
        let valueColumns = source.columns.indices.filter { source.columns[$0].role == .value }
        if let value {
            switch source.valueFormat {
            case .json:
                let node: JSONNode
                do { node = try JSONNode.parse(value) } catch { throw Refused("the value is not JSON: \(error)") }
                guard case .object = node else { throw Refused("the value is not a JSON object") }
                for i in valueColumns {
                    row[i] = try read(node.member(source.columns[i].name) ?? .null, as: source.columns[i].type, source.columns[i].name)
                }
            case .delimited:
                let fields = try delimitedFields(value)
                guard fields.count == valueColumns.count else { throw Refused("\(fields.count) delimited fields for \(valueColumns.count) columns") }
                for (i, field) in zip(valueColumns, fields) {
                    row[i] = try field.map { (text) throws(Refused) in try read(.string(text), as: source.columns[i].type, source.columns[i].name, fromText: true) } ?? .null
                }
            case .kafka:
                guard valueColumns.count == 1 else { throw Refused("the KAFKA value format holds exactly one column") }
                row[valueColumns[0]] = try primitive(value, source.columns[valueColumns[0]].type)
            }
        }
        for (i, column) in source.columns.enumerated() {
            switch column.role {
            case .key, .primaryKey:
                guard let key else { continue }
                switch source.keyFormat {
                case .kafka: row[i] = try primitive(key, column.type)
                case .json:
                    do { row[i] = try read(try JSONNode.parse(key), as: column.type, column.name) } catch let e as Refused { throw e } catch {
                        throw Refused("the key is not JSON: \(error)")
                    }
                case .delimited: row[i] = try read(.string(String(decoding: key, as: UTF8.self)), as: column.type, column.name, fromText: true)
                }
            case .header(let name?):
                row[i] = headers.last { $0.key == name }?.value.map { .bytes($0) } ?? .null
            case .header(nil):
                row[i] = .array(headers.map { .structure([.string($0.key), $0.value.map { .bytes($0) } ?? .null]) })
            case .value:
                continue
            }
        }
        return row
    }

    /// A JSON node as a value of `type`; `fromText`: the node is a field of text (DELIMITED), so
    /// numbers and booleans are read from strings.
    static func read(_ node: JSONNode, as type: SQLType, _ name: String, fromText: Bool = false) throws(Refused) -> SQLValue {
        if node == .null { return .null }
        func refuse() -> Refused { Refused("\(name): \(describe(node)) is not a \(type)") }
        var node = node
        if fromText, case .string(let s) = node, type.isNumeric || type == .timestamp || type == .date || type == .time { node = .number(s) }
        switch (type, node) {
        case (.boolean, .boolean(let b)): return .boolean(b)
        case (.boolean, .string(let s)) where fromText:
            switch s.lowercased() {
            case "true": return .boolean(true)
            case "false": return .boolean(false)
            default: throw refuse()
            }
        case (.integer, .number(let n)):
            guard let v = Int32(n) else { throw refuse() }
            return .integer(v)
        case (.bigint, .number(let n)):
            guard let v = Int64(n) else { throw refuse() }
            return .bigint(v)
        case (.double, .number(let n)):
            guard let v = Double(n) else { throw refuse() }
            return .double(v)
        case (.decimal(let p, let s), .number(let n)), (.decimal(let p, let s), .string(let n)):
            guard let d = Decimal(string: n, locale: Locale(identifier: "en_US_POSIX")), !d.isNaN else { throw refuse() }
            let v = Casts.decimal(d, scale: s, precision: p)
            guard v != .null else { throw Refused("\(name): \(n) does not fit \(type)") }
            return v
        case (.string, .string(let s)): return .string(s)
        case (.string, .number(let n)): return .string(n)
        case (.string, .boolean(let b)): return .string(b ? "true" : "false")
        case (.bytes, .string(let s)):
            guard let data = Data(base64Encoded: s) else { throw refuse() }
            return .bytes(Array(data))
        case (.timestamp, .number(let n)):
            guard let v = Int64(n) else { throw refuse() }
            return .timestamp(v)
        case (.timestamp, .string(let s)):
            guard let v = TimeText.parseTimestamp(s) else { throw refuse() }
            return .timestamp(v)
        case (.date, .number(let n)):
            guard let v = Int32(n) else { throw refuse() }
            return .date(v)
        case (.time, .number(let n)):
            guard let v = Int32(n), v >= 0, Int64(v) < TimeText.millisecondsPerDay else { throw refuse() }
            return .time(v)
        case (.array(let member), .array(let items)):
            var out: [SQLValue] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(try read(item, as: member, name)) }
            return .array(out)
        case (.map(let keyType, let valueType), .object(let members)):
            var out: [SQLMapEntry] = []
            for m in members {
                out.append(SQLMapEntry(try read(.string(m.key), as: keyType, name, fromText: true), try read(m.value, as: valueType, name)))
            }
            return .map(out)
        case (.structure(let fields), .object):
            var out: [SQLValue] = []
            for f in fields { out.append(try read(node.member(f.name) ?? .null, as: f.type, "\(name)->\(f.name)")) }
            return .structure(out)
        default:
            throw refuse()
        }
    }

    private static func describe(_ node: JSONNode) -> String {
        switch node {
        case .null: "null"
        case .boolean(let b): b ? "true" : "false"
        case .number(let n): n.count > 40 ? "a number" : n
        case .string(let s): s.count > 40 ? "a string" : "\"\(s)\""
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// One KAFKA-format primitive.
    static func primitive(_ bytes: [UInt8], _ type: SQLType) throws(Refused) -> SQLValue {
        func bigEndian(_ count: Int) throws(Refused) -> UInt64 {
            guard bytes.count == count else { throw Refused("a KAFKA \(type) takes \(count) bytes, not \(bytes.count)") }
            return bytes.reduce(0) { $0 << 8 | UInt64($1) }
        }
        switch type {
        case .string: return .string(String(decoding: bytes, as: UTF8.self))
        case .integer: return .integer(Int32(truncatingIfNeeded: try bigEndian(4)))
        case .bigint: return .bigint(Int64(bitPattern: try bigEndian(8)))
        case .double: return .double(Double(bitPattern: try bigEndian(8)))
        case .bytes: return .bytes(bytes)
        default: throw Refused("the KAFKA format cannot hold \(type)")
        }
    }

    /// The fields of one DELIMITED line: comma-separated, `"` quoting (with `""` inside), an empty
    /// unquoted field is NULL.
    static func delimitedFields(_ bytes: [UInt8]) throws(Refused) -> [String?] {
        var fields: [String?] = []
        var i = 0
        var line = bytes
        while let last = line.last, last == 0x0A || last == 0x0D { line.removeLast() }
        while true {
            if i < line.count, line[i] == UInt8(ascii: "\"") {
                var field: [UInt8] = []
                i += 1
                while true {
                    guard i < line.count else { throw Refused("a quoted field is not closed") }
                    if line[i] == UInt8(ascii: "\"") {
                        if i + 1 < line.count, line[i + 1] == UInt8(ascii: "\"") { field.append(line[i]); i += 2; continue }
                        i += 1
                        break
                    }
                    field.append(line[i])
                    i += 1
                }
                fields.append(String(decoding: field, as: UTF8.self))
                guard i == line.count || line[i] == UInt8(ascii: ",") else { throw Refused("text after a quoted field") }
            } else {
                let start = i
                while i < line.count, line[i] != UInt8(ascii: ",") { i += 1 }
                fields.append(i == start ? nil : String(decoding: line[start..<i], as: UTF8.self))
            }
            if i == line.count { return fields }
            i += 1  // the comma
        }
    }

    // MARK: Writing

    /// An output row's value as record bytes (JSON object of the value columns; nil for a tombstone).
    public static func encodeValue(_ columns: [ColumnDefinition], _ values: [SQLValue]?) -> [UInt8]? {
        guard let values else { return nil }
        var out: [UInt8] = [UInt8(ascii: "{")]
        let valueColumns = columns.filter { $0.role == .value }
        for (n, (column, value)) in zip(valueColumns, values).enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            appendString(column.name, &out)
            out.append(UInt8(ascii: ":"))
            appendJSON(value, column.type, &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A key as KAFKA-format bytes (nil for NULL).
    public static func encodeKey(_ value: SQLValue) -> [UInt8]? {
        func bigEndian(_ v: UInt64, _ count: Int) -> [UInt8] { (0..<count).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        switch value {
        case .null: return nil
        case .string(let s): return Array(s.utf8)
        case .integer(let n): return bigEndian(UInt64(UInt32(bitPattern: n)), 4)
        case .bigint(let n): return bigEndian(UInt64(bitPattern: n), 8)
        case .double(let d): return bigEndian(d.bitPattern, 8)
        case .bytes(let b): return b
        default: return Array(Casts.text(value, type: nil).utf8)
        }
    }

    /// `value` as JSON, the way ksqlDB's JSON format writes it.
    static func appendJSON(_ value: SQLValue, _ type: SQLType?, _ out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .boolean(let b): out.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .integer(let n): out.append(contentsOf: Array(String(n).utf8))
        case .bigint(let n): out.append(contentsOf: Array(String(n).utf8))
        case .double(let d): out.append(contentsOf: Array((d.isFinite ? "\(d)" : "null").utf8))
        case .decimal: out.append(contentsOf: Array(Casts.text(value, type: type).utf8))
        case .string(let s): appendString(s, &out)
        case .bytes(let b): appendString(Data(b).base64EncodedString(), &out)
        case .timestamp(let ms): out.append(contentsOf: Array(String(ms).utf8))
        case .date(let days): out.append(contentsOf: Array(String(days).utf8))
        case .time(let ms): out.append(contentsOf: Array(String(ms).utf8))
        case .array(let items):
            let member: SQLType? = if case .array(let m)? = type { m } else { nil }
            out.append(UInt8(ascii: "["))
            for (n, item) in items.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                appendJSON(item, member, &out)
            }
            out.append(UInt8(ascii: "]"))
        case .map(let entries):
            let valueType: SQLType? = if case .map(_, let v)? = type { v } else { nil }
            out.append(UInt8(ascii: "{"))
            for (n, entry) in entries.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                appendString(Casts.text(entry.key, type: nil), &out)
                out.append(UInt8(ascii: ":"))
                appendJSON(entry.value, valueType, &out)
            }
            out.append(UInt8(ascii: "}"))
        case .structure(let values):
            let fields: [SQLField] = if case .structure(let f)? = type { f } else { [] }
            out.append(UInt8(ascii: "{"))
            for (n, v) in values.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                appendString(n < fields.count ? fields[n].name : String(n), &out)
                out.append(UInt8(ascii: ":"))
                appendJSON(v, n < fields.count ? fields[n].type : nil, &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\u00XX`.
    static func appendString(_ s: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
