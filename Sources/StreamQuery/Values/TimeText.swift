/// TIMESTAMP, DATE and TIME values as text, in the forms ksqlDB's API writes:
/// `2026-07-28T12:03:24.000` (UTC, no zone), `2026-07-28`, `12:03:24` (`12:03:24.5` keeps the
/// milliseconds). Pure arithmetic on the proleptic Gregorian calendar: no clock, no locale, no
/// time zone database, so the simulator and production agree to the byte.
public enum TimeText {
    static let millisecondsPerDay: Int64 = 86_400_000

    /// `yyyy-MM-dd` of a day count since 1970-01-01.
    public static func date(days: Int64) -> String {
        let (y, m, d) = civil(days)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    /// `HH:mm:ss` (with `.SSS` when there are milliseconds) of milliseconds since midnight.
    public static func time(milliseconds: Int64) -> String {
        let ms = ((milliseconds % millisecondsPerDay) + millisecondsPerDay) % millisecondsPerDay
        let seconds = ms / 1000
        let base = "\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2))"
        return ms % 1000 == 0 ? base : base + "." + pad(ms % 1000, 3)
    }

    /// `yyyy-MM-ddTHH:mm:ss.SSS` of milliseconds since the epoch, in UTC.
    public static func timestamp(milliseconds: Int64) -> String {
        let (days, ms) = floorDivide(milliseconds, millisecondsPerDay)
        let seconds = ms / 1000
        return date(days: days) + "T\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2)).\(pad(ms % 1000, 3))"
    }

    /// Days since the epoch of `yyyy-MM-dd`; nil for anything else or an impossible date.
    public static func parseDate(_ text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]),
              (1...12).contains(m), d >= 1, d <= daysIn(month: m, year: y) else { return nil }
        return days(year: y, month: m, day: d)
    }

    /// Milliseconds since midnight of `HH:mm[:ss[.SSS]]`.
    public static func parseTime(_ text: String) -> Int64? {
        let (clock, fraction) = splitFraction(text)
        let parts = clock.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, parts.allSatisfy({ $0.count == 2 }),
              let h = Int64(parts[0]), let m = Int64(parts[1]), h < 24, m < 60 else { return nil }
        let s = parts.count == 3 ? Int64(parts[2]) ?? 60 : 0
        guard s < 60, let ms = fraction else { return nil }
        return ((h * 60 + m) * 60 + s) * 1000 + ms
    }

    /// Milliseconds since the epoch of `yyyy-MM-ddTHH:mm[:ss[.SSS]]` (UTC; a trailing `Z` allowed).
    public static func parseTimestamp(_ text: String) -> Int64? {
        var text = Substring(text)
        if text.hasSuffix("Z") { text = text.dropLast() }
        let halves = text.split(separator: "T", omittingEmptySubsequences: false)
        guard halves.count == 2, let days = parseDate(String(halves[0])), let ms = parseTime(String(halves[1])) else { return nil }
        return days * millisecondsPerDay + ms
    }

    // MARK: Calendar arithmetic (Howard Hinnant's days-from-civil and civil-from-days)

    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b, r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    private static func pad(_ n: Int64, _ width: Int) -> String {
        let digits = String(n.magnitude)
        let padded = digits.count < width ? String(repeating: "0", count: width - digits.count) + digits : digits
        return n < 0 ? "-" + padded : padded
    }

    /// `12:03:24.5` → ("12:03:24", 500); the fraction's milliseconds nil when it is not 1-3 digits.
    private static func splitFraction(_ text: String) -> (Substring, Int64?) {
        guard let dot = text.firstIndex(of: ".") else { return (Substring(text), 0) }
        let digits = text[text.index(after: dot)...]
        guard (1...3).contains(digits.count), digits.allSatisfy(\.isASCII), let n = Int64(digits) else { return (text[..<dot], nil) }
        return (text[..<dot], n * [100, 10, 1][digits.count - 1])
    }
}
