import HTTPSidecar

/// A framed body read from a byte buffer as a relay reads it: by length, or chunked (the data
/// collected, the chunk lines dropped). Shared by the request and answer framers under test.
enum BodyReader {
    case length(Int)
    case chunked(ChunkedBodyScanner)

    /// Moves what belongs to the body from `buffer` into `body`; returns whether the body ended, or
    /// the violation that refuses it.
    mutating func read(_ buffer: inout [UInt8], into body: inout [UInt8]) -> Result<Bool, HTTP1Violation> {
        switch self {
        case .length(let n):
            let take = min(n, buffer.count)
            body += buffer[0..<take]
            buffer.removeFirst(take)
            self = .length(n - take)
            return .success(take == n)
        case .chunked(var chunks):
            var data: [UInt8] = []
            let step = buffer.withUnsafeBytes { b in chunks.scan(b) { data += b[$0] } }
            body += data
            self = .chunked(chunks)
            switch step {
            case .needMore: buffer.removeAll(); return .success(false)
            case .invalid(let v): return .failure(v)
            case .done(let consumed): buffer.removeFirst(consumed); return .success(true)
            }
        }
    }
}
