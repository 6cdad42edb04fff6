import Foundation

/// The scalar functions of the subset (ksqlDB's names). Aggregates (`COUNT`, `SUM`, ...) are
/// not here: the planner turns them into operator state. Every function is NULL on a NULL
/// argument unless it exists to handle NULL (`COALESCE`, `IFNULL`).
public enum ScalarFunction: String, Hashable, Sendable, CaseIterable {
    case ucase = "UCASE"
    case lcase = "LCASE"
    case len = "LEN"
    case trim = "TRIM"
    case concat = "CONCAT"
    case substring = "SUBSTRING"
    case replace = "REPLACE"
    case coalesce = "COALESCE"
    case ifnull = "IFNULL"
    case abs = "ABS"
    case round = "ROUND"
    case floor = "FLOOR"
    case ceil = "CEIL"
    case formatTimestamp = "FORMAT_TIMESTAMP"
    case formatDate = "FORMAT_DATE"
    case parseTimestamp = "PARSE_TIMESTAMP"
    case parseDate = "PARSE_DATE"
    case unixTimestamp = "UNIX_TIMESTAMP"

    /// Names ksqlDB also accepts for some of these.
    static let aliases: [String: ScalarFunction] = ["UPPER": .ucase, "LOWER": .lcase, "LENGTH": .len, "SUBSTR": .substring]

    /// The function called `name`, if it is one of these.
    public static func named(_ name: String) -> ScalarFunction? { ScalarFunction(rawValue: name) ?? aliases[name] }

    /// The result type for arguments of `types` (nil: a NULL literal), or why they do not fit.
    func resultType(_ types: [SQLType?]) throws(PlanError) -> SQLType {
        func need(_ count: ClosedRange<Int>) throws(PlanError) {
            guard count.contains(types.count) else { throw PlanError("\(rawValue) takes \(count.lowerBound == count.upperBound ? "\(count.lowerBound)" : "\(count.lowerBound) to \(count.upperBound)") arguments, not \(types.count)") }
        }
        func expect(_ i: Int, _ ok: (SQLType) -> Bool, _ what: String) throws(PlanError) {
            if let t = types[i], !ok(t) { throw PlanError("argument \(i + 1) of \(rawValue) must be \(what), not \(t)") }
        }
        switch self {
        case .ucase, .lcase, .trim:
            try need(1...1); try expect(0, { $0 == .string }, "STRING")
            return .string
        case .len:
            try need(1...1); try expect(0, { $0 == .string || $0 == .bytes }, "STRING or BYTES")
            return .integer
        case .concat:
            try need(1...64)
            for i in types.indices { try expect(i, { $0 == .string }, "STRING") }
            return .string
        case .substring:
            try need(2...3); try expect(0, { $0 == .string }, "STRING")
            for i in 1..<types.count { try expect(i, { $0 == .integer || $0 == .bigint }, "an integer") }
            return .string
        case .replace:
            try need(3...3)
            for i in 0..<3 { try expect(i, { $0 == .string }, "STRING") }
            return .string
        case .coalesce, .ifnull:
            try need(self == .ifnull ? 2...2 : 1...64)
            guard let first = types.compactMap({ $0 }).first else { return .string }
            for i in types.indices { try expect(i, { $0 == first || ($0.isNumeric && first.isNumeric) }, "\(first)") }
            return types.compactMap { $0 }.reduce(first) { widest($0, $1) }
        case .abs, .floor, .ceil:
            try need(1...1); try expect(0, \.isNumeric, "a number")
            return types[0] ?? .double
        case .round:
            try need(1...2); try expect(0, \.isNumeric, "a number")
            if types.count == 2 { try expect(1, { $0 == .integer }, "INTEGER") }
            guard let t = types[0] else { return .double }
            if types.count == 1, case .decimal(let p, _) = t { return .decimal(precision: p, scale: 0) }
            return t == .integer ? .integer : t == .bigint ? .bigint : t
        case .formatTimestamp:
            try need(1...1); try expect(0, { $0 == .timestamp }, "TIMESTAMP")
            return .string
        case .formatDate:
            try need(1...1); try expect(0, { $0 == .date }, "DATE")
            return .string
        case .parseTimestamp:
            try need(1...1); try expect(0, { $0 == .string }, "STRING")
            return .timestamp
        case .parseDate:
            try need(1...1); try expect(0, { $0 == .string }, "STRING")
            return .date
        case .unixTimestamp:
            try need(1...1); try expect(0, { $0 == .timestamp }, "TIMESTAMP")
            return .bigint
        }
    }

    private func widest(_ a: SQLType, _ b: SQLType) -> SQLType {
        guard let ra = NumericRank(a), let rb = NumericRank(b), ra != rb else { return a }
        return ra > rb ? a : b
    }

    func apply(_ args: [SQLValue]) -> SQLValue {
        switch self {
        case .coalesce: return args.first { !$0.isNull } ?? .null
        case .ifnull: return args[0].isNull ? args[1] : args[0]
        default: break
        }
        if args.contains(where: \.isNull) { return .null }
        switch (self, args.first) {
        case (.ucase, .string(let s)?): return .string(s.uppercased())
        case (.lcase, .string(let s)?): return .string(s.lowercased())
        case (.trim, .string(let s)?): return .string(s.trimmingCharacters(in: .whitespaces))
        case (.len, .string(let s)?): return .integer(Int32(clamping: s.count))
        case (.len, .bytes(let b)?): return .integer(Int32(clamping: b.count))
        case (.concat, _):
            var out = ""
            for case .string(let s) in args { out += s }
            return .string(out)
        case (.substring, .string(let s)?):
            // 1-based start (negative from the end), optional length; out of range gives "".
            let chars = Array(s)
            guard let start = args[1].int64 else { return .null }
            var from = start > 0 ? Int(clamping: start - 1) : chars.count - Int(clamping: start.magnitude)
            if start == 0 { from = 0 }
            from = max(0, min(from, chars.count))
            var to = chars.count
            if args.count == 3, let length = args[2].int64 { to = length <= 0 ? from : from + Int(min(length, Int64(chars.count - from))) }
            return .string(String(chars[from..<max(from, to)]))
        case (.replace, .string(let s)?):
            guard case .string(let a) = args[1], case .string(let b) = args[2] else { return .null }
            return .string(a.isEmpty ? s : s.replacingOccurrences(of: a, with: b))
        case (.abs, let v?):
            switch v {
            case .integer(let n): return .integer(n == .min ? n : Swift.abs(n))
            case .bigint(let n): return .bigint(n == .min ? n : Swift.abs(n))
            case .double(let d): return .double(Swift.abs(d))
            case .decimal(let d): return .decimal(d.magnitude)
            default: return .null
            }
        case (.floor, let v?), (.ceil, let v?), (.round, let v?):
            let places = args.count == 2 ? Int(args[1].int64 ?? 0) : 0
            switch v {
            case .integer, .bigint: return v
            case .double(let d):
                let scale = pow(10.0, Double(max(-300, min(300, places))))
                let x = d * scale
                let r = self == .floor ? x.rounded(.down) : self == .ceil ? x.rounded(.up) : x.rounded(.toNearestOrAwayFromZero)
                return .double(r / scale)
            case .decimal(var d):
                var out = Decimal()
                // .down is toward negative infinity, .up toward positive, .plain half away from zero.
                NSDecimalRound(&out, &d, max(-38, min(38, places)), self == .floor ? .down : self == .ceil ? .up : .plain)
                return .decimal(out)
            default: return .null
            }
        case (.formatTimestamp, .timestamp(let ms)?): return .string(TimeText.timestamp(milliseconds: ms))
        case (.formatDate, .date(let days)?): return .string(TimeText.date(days: Int64(days)))
        case (.parseTimestamp, .string(let s)?): return TimeText.parseTimestamp(s).map { .timestamp($0) } ?? .null
        case (.parseDate, .string(let s)?): return TimeText.parseDate(s).flatMap { Int32(exactly: $0) }.map { .date($0) } ?? .null
        case (.unixTimestamp, .timestamp(let ms)?): return .bigint(ms)
        default: return .null
        }
    }
}
