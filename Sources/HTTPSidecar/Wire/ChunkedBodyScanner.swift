/// Reads a chunked body (RFC 9112 §7.1) as it arrives, handing out the data bytes and finding the
/// body's end, so a relay can re-frame the data in its own chunks and never forward a chunk line it
/// did not understand. Strict: sizes are 1 to 15 hex digits, extensions only `;token[=token]` (no whitespace, no quoted strings), data
/// must be followed by exactly CRLF, trailer lines must be well-formed fields (and are dropped).
/// Extensions are dropped too, and all of a body's extension bytes together may not exceed the head
/// limit (unbounded, they were a way to stream gigabytes past the body limit: Node's CVE-2024-22019).
public struct ChunkedBodyScanner: Sendable {
    /// Where the scanner is in the body. Transitions are noted on each case.
    enum State: Hashable, Sendable {
        /// Expecting the first hex digit of a chunk size. → size
        case sizeStart
        /// In the hex digits. → size (digit), extension (`;`), sizeLF (CR)
        case size(digits: Int, value: Int)
        /// In a chunk extension (`;name[=value]`). `part` is 0 right after `;`, 1 in the name, 2
        /// right after `=`, 3 in the value. → chunkExtension (token, `=` after a name, `;` after a
        /// name or value), sizeLF (CR after a name or value)
        case chunkExtension(size: Int, part: UInt8)
        /// After the chunk line's CR. → data (LF, size > 0), trailerLineStart (LF, size 0)
        case sizeLF(size: Int)
        /// In chunk data. → dataCR (when `remaining` reaches 0)
        case data(remaining: Int)
        /// Expecting the CR after chunk data. → dataLF
        case dataCR
        /// Expecting the LF after chunk data. → sizeStart
        case dataLF
        /// At the start of a trailer line or of the final empty line. → trailerName, finalLF (CR)
        case trailerLineStart
        /// In a trailer field's name. → trailerValue (`:`)
        case trailerName(length: Int)
        /// In a trailer field's value. → trailerLF (CR)
        case trailerValue
        /// After a trailer line's CR. → trailerLineStart (LF)
        case trailerLF
        /// After the final empty line's CR. → done (LF)
        case finalLF
        /// The body ended.
        case done

        /// In the trailer section (counted against the head limit).
        var isTrailer: Bool {
            switch self {
            case .trailerLineStart, .trailerName, .trailerValue, .trailerLF, .finalLF: true
            default: false
            }
        }
    }

    /// What a call made of the bytes offered.
    public enum Step: Hashable, Sendable {
        /// All bytes were consumed; the body goes on.
        case needMore
        /// The body ended after `consumed` bytes; what follows belongs to the next message.
        case done(consumed: Int)
        case invalid(HTTP1Violation)
    }

    private var state = State.sizeStart
    private var trailerBytes = 0
    /// Chunk-extension bytes of the whole body so far (bounded by ``HTTP1Limits/maxHeadBytes``).
    private var extensionBytes = 0
    private var trailerLines = 0
    public var limits: HTTP1Limits

    public init(limits: HTTP1Limits = HTTP1Limits()) { self.limits = limits }

    /// Whether the body has ended.
    public var isDone: Bool { state == .done }

    /// Reads `bytes`, calling `data` with each run of chunk data (offsets into `bytes`).
    public mutating func scan(_ bytes: UnsafeRawBufferPointer, data: (Range<Int>) -> Void) -> Step {
        var i = 0
        let count = bytes.count
        while i < count {
            let b = bytes[i]
            switch state {
            case .sizeStart:
                guard let v = HTTP1Byte.hexValue(b) else { return .invalid(.badChunkSize) }
                state = .size(digits: 1, value: v)
            case .size(let digits, let value):
                if let v = HTTP1Byte.hexValue(b) {
                    // ci/mutants: chunk-size-overflow (the next line)
                    guard digits < 15 else { return .invalid(.badChunkSize) }
                    state = .size(digits: digits + 1, value: value << 4 | v)
                } else if b == UInt8(ascii: ";") {
                    state = .chunkExtension(size: value, part: 0)
                } else if b == HTTP1Byte.cr {
                    state = .sizeLF(size: value)
                } else {
                    return .invalid(.badChunkSize)
                }
            case .chunkExtension(let size, let part):
                extensionBytes += 1
                // ci/mutants: chunk-extensions-unbounded (the next line)
                guard extensionBytes <= limits.maxHeadBytes else { return .invalid(.badChunkSize) }
                let afterToken = part == 1 || part == 3
                if HTTP1Byte.isToken(b) {
                    state = .chunkExtension(size: size, part: part < 2 ? 1 : 3)
                } else if b == UInt8(ascii: "="), part == 1 {
                    state = .chunkExtension(size: size, part: 2)
                } else if b == UInt8(ascii: ";"), afterToken {
                    state = .chunkExtension(size: size, part: 0)
                } else if b == HTTP1Byte.cr, afterToken {
                    state = .sizeLF(size: size)
                } else {
                    return .invalid(.badChunkSize)
                }
            case .sizeLF(let size):
                guard b == HTTP1Byte.lf else { return .invalid(.bareLineEnding) }
                state = size == 0 ? .trailerLineStart : .data(remaining: size)
            case .data(let remaining):
                let n = min(remaining, count - i)
                data(i..<(i + n))
                i += n
                state = n == remaining ? .dataCR : .data(remaining: remaining - n)
                continue
            case .dataCR:
                guard b == HTTP1Byte.cr else { return .invalid(.badChunkEnd) }
                state = .dataLF
            case .dataLF:
                guard b == HTTP1Byte.lf else { return .invalid(.badChunkEnd) }
                state = .sizeStart
            case .trailerLineStart:
                if b == HTTP1Byte.cr {
                    state = .finalLF
                } else {
                    guard HTTP1Byte.isToken(b) else { return .invalid(HTTP1Byte.isWhitespace(b) ? .obsoleteLineFolding : .badFieldLine) }
                    trailerLines += 1
                    guard trailerLines <= limits.maxFields else { return .invalid(.tooManyFields) }
                    state = .trailerName(length: 1)
                }
            case .trailerName(let length):
                if b == HTTP1Byte.colon {
                    state = .trailerValue
                } else {
                    guard HTTP1Byte.isToken(b) else { return .invalid(.badFieldLine) }
                    state = .trailerName(length: length + 1)
                }
            case .trailerValue:
                if b == HTTP1Byte.cr {
                    state = .trailerLF
                } else if !HTTP1Byte.isFieldValue(b) {
                    return .invalid(HTTP1FieldLines.isControl(b) ? .controlByte : .badFieldLine)
                }
            case .trailerLF:
                guard b == HTTP1Byte.lf else { return .invalid(.bareLineEnding) }
                state = .trailerLineStart
            case .finalLF:
                guard b == HTTP1Byte.lf else { return .invalid(.bareLineEnding) }
                state = .done
                return .done(consumed: i + 1)
            case .done:
                return .done(consumed: i)
            }
            if state.isTrailer {
                trailerBytes += 1
                if trailerBytes > limits.maxHeadBytes { return .invalid(.headTooLarge) }
            }
            i += 1
        }
        return .needMore
    }
}
