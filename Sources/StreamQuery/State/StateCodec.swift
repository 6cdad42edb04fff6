import Foundation

/// Aggregation state as bytes for the subscription store: a tag byte per value, lengths and
/// integers big-endian, a DECIMAL as its exact text, a DOUBLE as its bit pattern, a COUNT_DISTINCT
/// set in the order of its members' bytes (so equal states are equal bytes). Reading refuses
/// anything it did not write (a truncated or foreign row) instead of trapping.
enum StateCodec {
    typealias Unreadable = StateUnreadable

    // MARK: Writing

    static func write(_ value: SQLValue, _ out: inout [UInt8]) {
        switch value {
        case .null: out.append(0)
        case .boolean(let b): out += [1, b ? 1 : 0]
        case .integer(let n): out.append(2); int(Int64(n), &out)
        case .bigint(let n): out.append(3); int(n, &out)
        case .double(let d): out.append(4); int(Int64(bitPattern: d.bitPattern), &out)
        case .decimal(let d): out.append(5); bytes(Array(NSDecimalNumber(decimal: d).stringValue.utf8), &out)
        case .string(let s): out.append(6); bytes(Array(s.utf8), &out)
        case .bytes(let b): out.append(7); bytes(b, &out)
        case .timestamp(let ms): out.append(8); int(ms, &out)
        case .date(let days): out.append(9); int(Int64(days), &out)
        case .time(let ms): out.append(10); int(Int64(ms), &out)
        case .array(let items):
            out.append(11); int(Int64(items.count), &out)
            for item in items { write(item, &out) }
        case .map(let entries):
            out.append(12); int(Int64(entries.count), &out)
            for e in entries { write(e.key, &out); write(e.value, &out) }
        case .structure(let values):
            out.append(13); int(Int64(values.count), &out)
            for v in values { write(v, &out) }
        }
    }

    static func write(_ accumulator: Accumulator, _ out: inout [UInt8]) {
        switch accumulator {
        case .count(let n): out.append(0); int(n, &out)
        case .value(let v): out.append(1); write(v, &out)
        case .average(let sum, let count): out.append(2); int(Int64(bitPattern: sum.bitPattern), &out); int(count, &out)
        case .distinct(let seen):
            out.append(3)
            let members = seen.map { v -> [UInt8] in var b: [UInt8] = []; write(v, &b); return b }.sorted { $0.lexicographicallyPrecedes($1) }
            int(Int64(members.count), &out)
            for m in members { out += m }
        }
    }

    static func int(_ n: Int64, _ out: inout [UInt8]) {
        let u = UInt64(bitPattern: n)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: u >> UInt64(shift))) }
    }

    static func bytes(_ b: [UInt8], _ out: inout [UInt8]) {
        int(Int64(b.count), &out)
        out += b
    }

    // MARK: Reading

    struct Reader {
        let bytes: [UInt8]
        var i = 0
        /// Nesting left: a row cannot make the reader recurse without bound.
        var depth = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { i == bytes.count }

        mutating func byte() throws(Unreadable) -> UInt8 {
            guard i < bytes.count else { throw Unreadable(message: "the row ends early") }
            defer { i += 1 }
            return bytes[i]
        }

        mutating func int() throws(Unreadable) -> Int64 {
            guard bytes.count - i >= 8 else { throw Unreadable(message: "the row ends early") }
            var u: UInt64 = 0
            for k in 0..<8 { u = u << 8 | UInt64(bytes[i + k]) }
            i += 8
            return Int64(bitPattern: u)
        }

        mutating func count() throws(Unreadable) -> Int {
            let n = try int()
            // Every element takes at least one byte: a count past what is left is a broken row.
            guard n >= 0, n <= bytes.count - i else { throw Unreadable(message: "a count of \(n) in a row of \(bytes.count) bytes") }
            return Int(n)
        }

        mutating func blob() throws(Unreadable) -> [UInt8] {
            let n = try count()
            defer { i += n }
            return Array(bytes[i..<i + n])
        }

        mutating func value() throws(Unreadable) -> SQLValue {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 64 else { throw Unreadable(message: "nested too deep") }
            switch try byte() {
            case 0: return .null
            case 1: return .boolean(try byte() == 1)
            case 2:
                guard let n = Int32(exactly: try int()) else { throw Unreadable(message: "an INTEGER out of range") }
                return .integer(n)
            case 3: return .bigint(try int())
            case 4: return .double(Double(bitPattern: UInt64(bitPattern: try int())))
            case 5:
                guard let d = Decimal(string: String(decoding: try blob(), as: UTF8.self), locale: Locale(identifier: "en_US_POSIX")) else {
                    throw Unreadable(message: "a DECIMAL that does not read")
                }
                return .decimal(d)
            case 6: return .string(String(decoding: try blob(), as: UTF8.self))
            case 7: return .bytes(try blob())
            case 8: return .timestamp(try int())
            case 9:
                guard let n = Int32(exactly: try int()) else { throw Unreadable(message: "a DATE out of range") }
                return .date(n)
            case 10:
                guard let n = Int32(exactly: try int()) else { throw Unreadable(message: "a TIME out of range") }
                return .time(n)
            case 11:
                let n = try count()
                var items: [SQLValue] = []
                for _ in 0..<n { items.append(try value()) }
                return .array(items)
            case 12:
                let n = try count()
                var entries: [SQLMapEntry] = []
                for _ in 0..<n { entries.append(SQLMapEntry(try value(), try value())) }
                return .map(entries)
            case 13:
                let n = try count()
                var values: [SQLValue] = []
                for _ in 0..<n { values.append(try value()) }
                return .structure(values)
            case let tag:
                throw Unreadable(message: "unknown value tag \(tag)")
            }
        }

        mutating func accumulator() throws(Unreadable) -> Accumulator {
            switch try byte() {
            case 0: return .count(try int())
            case 1: return .value(try value())
            case 2: return .average(sum: Double(bitPattern: UInt64(bitPattern: try int())), count: try int())
            case 3:
                let n = try count()
                var seen: Set<SQLValue> = []
                for _ in 0..<n { seen.insert(try value()) }
                return .distinct(seen)
            case let tag:
                throw Unreadable(message: "unknown accumulator tag \(tag)")
            }
        }
    }
}

/// A stored state row that does not read back (truncated, foreign, or from a query of another shape).
public struct StateUnreadable: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
