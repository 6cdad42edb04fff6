/// Finds where a head ends in bytes that arrive in pieces, without rescanning: each call continues
/// where the last stopped, so a client trickling a head byte by byte costs linear time.
///
/// It also enforces the line-ending rule for the whole head: every LF must follow a CR and every CR
/// must precede a LF (a bare LF or CR is how one parser is made to see a line the other does not).
struct HTTP1HeadFinder: Sendable {
    /// Where the head ended, once found.
    enum Found: Hashable, Sendable {
        case needMore
        /// The head's first line starts at `start`; the head ends at `end` (after the empty line).
        case head(start: Int, end: Int)
        case invalid(HTTP1Violation)
    }

    /// Bytes already examined.
    private var scanned = 0
    /// The offset after the last LF seen.
    private var lineStart = 0
    /// Offset of the first non-empty line (empty lines before a request line are skipped).
    private var contentStart = 0
    private var sawContent = false

    mutating func reset() { self = HTTP1HeadFinder() }

    /// Continues the search in `bytes` (the same bytes as before, possibly with more after them).
    /// `skipLeadingEmptyLines` allows CRLFs before the first line (RFC 9112 §2.2, for requests).
    mutating func find(_ bytes: UnsafeRawBufferPointer, limit: Int, skipLeadingEmptyLines: Bool) -> Found {
        var i = scanned
        let count = bytes.count
        while i < count {
            let b = bytes[i]
            if i > 0, bytes[i - 1] == HTTP1Byte.cr, b != HTTP1Byte.lf { return .invalid(.bareLineEnding) }
            if b == HTTP1Byte.lf {
                guard i > 0, bytes[i - 1] == HTTP1Byte.cr else { return .invalid(.bareLineEnding) }
                let emptyLine = i - lineStart == 1
                lineStart = i + 1
                if emptyLine {
                    if sawContent {
                        scanned = i + 1
                        return .head(start: contentStart, end: i + 1)
                    }
                    guard skipLeadingEmptyLines else { return .invalid(.badStatusLine) }
                    contentStart = i + 1
                } else {
                    sawContent = true
                }
            }
            i += 1
            if i > limit { return .invalid(.headTooLarge) }
        }
        scanned = i
        return .needMore
    }
}
