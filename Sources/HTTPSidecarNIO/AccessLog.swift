import Foundation
import NIOConcurrencyHelpers

/// A structured access log: one JSON object per line, buffered and written by a background flush
/// (every 50 ms or 64 KiB), so the event loop never blocks on the output.
public final class AccessLog: Sendable {
    private let handle: FileHandle
    private let buffer = NIOLockedValueBox<[UInt8]>([])
    private let queue = DispatchQueue(label: "light-mesh.access-log")

    /// Writes to standard output by default.
    public init(to handle: FileHandle = .standardOutput) {
        self.handle = handle
        scheduleFlush()
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
        buffer.withLockedValue { b -> [UInt8] in defer { b.removeAll(keepingCapacity: true) }; return b }
    }

    private func write(_ bytes: [UInt8]) {
        if !bytes.isEmpty { handle.write(Data(bytes)) }
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
        let full = buffer.withLockedValue { b -> Bool in
            b.append(contentsOf: line.utf8)
            return b.count >= 65_536
        }
        if full { flush() }
    }

    /// Writes what is buffered now.
    public func flush() {
        let bytes = take()
        queue.sync { write(bytes) }
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
