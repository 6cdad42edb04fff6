import Foundation
import NIOConcurrencyHelpers

/// A structured access log: one JSON object per line, buffered and written by a background flush
/// (every 50 ms, or soon after 64 KiB), so the event loop never blocks on the output. When the
/// output does not keep up (a stalled pipe), at most ``maxBuffered`` bytes wait; later entries are
/// dropped and counted in ``dropped`` rather than stalling requests or growing memory.
///
/// Query values are written as `*` unless ``logQueryValues`` is set: queries carry tokens and
/// personal data more often than anyone intends.
public final class AccessLog: Sendable {
    private let handle: FileHandle
    private let buffer = NIOLockedValueBox<(bytes: [UInt8], flushQueued: Bool, dropped: Int)>(([], false, 0))
    private let queue = DispatchQueue(label: "light-mesh.access-log")
    public let logQueryValues: Bool
    public let maxBuffered: Int

    /// Writes to standard output by default.
    public init(to handle: FileHandle = .standardOutput, logQueryValues: Bool = false, maxBuffered: Int = 4 << 20) {
        self.handle = handle
        self.logQueryValues = logQueryValues
        self.maxBuffered = maxBuffered
        scheduleFlush()
    }

    /// Entries dropped because the output did not keep up.
    public var dropped: Int { buffer.withLockedValue { $0.dropped } }

    /// The target as logged: the normalized path, and the query with its values redacted unless
    /// ``logQueryValues`` (`a=1&b` → `a=*&b`).
    public func loggedTarget(path: String, uri: String) -> String {
        guard let q = uri.firstIndex(of: "?") else { return path }
        let query = uri[uri.index(after: q)...]
        if logQueryValues { return path + "?" + query }
        let redacted = query.split(separator: "&", omittingEmptySubsequences: false).map { pair in
            pair.firstIndex(of: "=").map { String(pair[..<$0]) + "=*" } ?? String(pair)
        }
        return path + "?" + redacted.joined(separator: "&")
    }

    /// Flushes every 50 ms for as long as the log is alive.
    private func scheduleFlush() {
        queue.asyncAfter(deadline: .now() + .milliseconds(50)) { [weak self] in
            guard let self else { return }
            self.write(self.take())
            self.scheduleFlush()
        }
    }

    private func take() -> [UInt8] {
        buffer.withLockedValue { b -> [UInt8] in
            defer { b.bytes.removeAll(keepingCapacity: true); b.flushQueued = false }
            return b.bytes
        }
    }

    private func write(_ bytes: [UInt8]) {
        // A closed or failing output loses log lines, never the process (`write(_:)` traps on errors).
        if !bytes.isEmpty { try? handle.write(contentsOf: bytes) }
    }

    /// Appends one entry; field values are JSON-escaped, numbers written as numbers.
    public func record(_ fields: [(String, AccessLogValue)]) {
        var line = "{"
        for (i, (key, value)) in fields.enumerated() {
            if i > 0 { line += "," }
            line += "\"\(key)\":"
            switch value {
            case .string(let s): line += "\"" + AccessLog.escape(s) + "\""
            case .int(let n): line += String(n)
            case .double(let d): line += String(format: "%.3f", d)
            }
        }
        line += "}\n"
        let flushNow = buffer.withLockedValue { b -> Bool in
            guard b.bytes.count + line.utf8.count <= maxBuffered else {
                b.dropped += 1
                return false
            }
            b.bytes.append(contentsOf: line.utf8)
            guard b.bytes.count >= 65_536, !b.flushQueued else { return false }
            b.flushQueued = true
            return true
        }
        // Written on the log's own queue: the caller (an event loop) never waits for the output.
        if flushNow { queue.async { self.write(self.take()) } }
    }

    /// Writes what is buffered now, and waits for it (for shutdown and tests; never on an event loop).
    public func flush() {
        queue.sync { write(take()) }
    }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// A value in an access-log entry.
public enum AccessLogValue: Sendable {
    case string(String)
    case int(Int)
    case double(Double)
}
