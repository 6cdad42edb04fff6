import Foundation

/// `CAST(x AS T)` and the text of values. A cast that cannot produce a value (text that is not a
/// number, a number too big for its target) is NULL, as in ksqlDB.
enum Casts {
    /// Whether a value of type `from` may be cast to `to` (checked when the query is planned).
    static func allowed(from: SQLType, to: SQLType) -> Bool {
        if from == to || to == .string { return true }
        switch (from, to) {
        case (let a, let b) where a.isNumeric && b.isNumeric: return true
        case (.string, .integer), (.string, .bigint), (.string, .double), (.string, .decimal), (.string, .boolean),
             (.string, .timestamp), (.string, .date), (.string, .time), (.timestamp, .date), (.timestamp, .time),
             (.date, .timestamp):
            return true
        default: return false
        }
    }

    static func cast(_ value: SQLValue, from: SQLType?, to type: SQLType) -> SQLValue {
        if value.isNull { return .null }
        switch type {
        case .string:
            return .string(text(value, type: from))
        case .boolean:
            switch value {
            case .boolean: return value
            case .string(let s):
                switch s.trimmingCharacters(in: .whitespaces).lowercased() {
                case "true": return .boolean(true)
                case "false": return .boolean(false)
                default: return .null
                }
            default: return .null
            }
        case .integer, .bigint:
            let whole: Int64?
            switch value {
            case .string(let s): whole = Int64(s.trimmingCharacters(in: .whitespaces))
            case .double(let d): whole = d.isFinite ? Int64(exactly: d.rounded(.towardZero)) : nil
            case .decimal(let d):
                let t = truncated(d)
                whole = t.magnitude < Decimal(Int64.max) ? NSDecimalNumber(decimal: t).int64Value : nil
            default: whole = value.int64
            }
            guard let n = whole else { return .null }
            if type == .integer {
                guard let small = Int32(exactly: n) else { return .null }
                return .integer(small)
            }
            return .bigint(n)
        case .double:
            if case .string(let s) = value { return Double(s.trimmingCharacters(in: .whitespaces)).map { .double($0) } ?? .null }
            return value.doubleValue.map { .double($0) } ?? .null
        case .decimal(let precision, let scale):
            let exact: Decimal?
            switch value {
            case .string(let s): exact = Decimal(string: s.trimmingCharacters(in: .whitespaces), locale: Locale(identifier: "en_US_POSIX"))
            case .double(let d): exact = d.isFinite ? Decimal(string: String(d), locale: Locale(identifier: "en_US_POSIX")) : nil
            default: exact = value.decimalValue
            }
            guard let exact, !exact.isNaN else { return .null }
            return decimal(exact, scale: scale, precision: precision)
        case .timestamp:
            switch value {
            case .timestamp: return value
            case .date(let days): return .timestamp(Int64(days) * TimeText.millisecondsPerDay)
            case .string(let s): return TimeText.parseTimestamp(s).map { .timestamp($0) } ?? .null
            default: return .null
            }
        case .date:
            switch value {
            case .date: return value
            case .timestamp(let ms): return Int32(exactly: TimeText.floorDivide(ms, TimeText.millisecondsPerDay).0).map { .date($0) } ?? .null
            case .string(let s): return TimeText.parseDate(s).flatMap { Int32(exactly: $0) }.map { .date($0) } ?? .null
            default: return .null
            }
        case .time:
            switch value {
            case .time: return value
            case .timestamp(let ms): return .time(Int32(TimeText.floorDivide(ms, TimeText.millisecondsPerDay).1))
            case .string(let s): return TimeText.parseTime(s).map { .time(Int32($0)) } ?? .null
            default: return .null
            }
        default:
            return value
        }
    }

    /// `value` rounded half-up to `scale` digits; NULL when it needs more than `precision` digits.
    static func decimal(_ value: Decimal, scale: Int, precision: Int) -> SQLValue {
        guard !value.isNaN else { return .null }  // an overflow in Decimal arithmetic
        var input = value, rounded = Decimal()
        NSDecimalRound(&rounded, &input, scale, .plain)
        guard !rounded.isNaN else { return .null }
        let integerDigits = integerDigitCount(rounded)
        guard integerDigits + scale <= precision else { return .null }
        return .decimal(rounded)
    }

    private static func truncated(_ d: Decimal) -> Decimal {
        var input = d, out = Decimal()
        NSDecimalRound(&out, &input, 0, d < 0 ? .up : .down)
        return out
    }

    private static func integerDigitCount(_ d: Decimal) -> Int {
        let text = NSDecimalNumber(decimal: d.magnitude).stringValue
        let whole = text.split(separator: ".", maxSplits: 1).first ?? "0"
        return whole == "0" ? 0 : whole.count
    }

    /// A value as text: numbers as written in SQL (a DECIMAL with its type's scale), booleans
    /// `true`/`false`, time values in the API's forms, containers as JSON-like text.
    static func text(_ value: SQLValue, type: SQLType?) -> String {
        switch value {
        case .null: return "null"
        case .boolean(let b): return b ? "true" : "false"
        case .integer(let n): return String(n)
        case .bigint(let n): return String(n)
        case .double(let d): return d.description
        case .decimal(let d):
            var text = NSDecimalNumber(decimal: d).stringValue
            if case .decimal(_, let scale)? = type, scale > 0 {
                let parts = text.split(separator: ".", maxSplits: 1)
                let fraction = parts.count == 2 ? String(parts[1]) : ""
                if fraction.count < scale { text = String(parts[0]) + "." + fraction + String(repeating: "0", count: scale - fraction.count) }
            }
            return text
        case .string(let s): return s
        case .bytes(let b): return Data(b).base64EncodedString()
        case .timestamp(let ms): return TimeText.timestamp(milliseconds: ms)
        case .date(let days): return TimeText.date(days: Int64(days))
        case .time(let ms): return TimeText.time(milliseconds: Int64(ms))
        case .array(let items):
            let member: SQLType? = if case .array(let m)? = type { m } else { nil }
            return "[" + items.map { text($0, type: member) }.joined(separator: ", ") + "]"
        case .map(let entries):
            return "{" + entries.map { "\(text($0.key, type: nil))=\(text($0.value, type: nil))" }.joined(separator: ", ") + "}"
        case .structure(let values):
            let fields: [SQLField] = if case .structure(let f)? = type { f } else { [] }
            return "Struct{" + values.enumerated().map { i, v in
                "\(i < fields.count ? fields[i].name : String(i))=\(text(v, type: i < fields.count ? fields[i].type : nil))"
            }.joined(separator: ",") + "}"
        }
    }
}
