import MeshCore

/// Kinds of log line. The raw value takes part in the rolling hash, so append new kinds at the end.
public enum LogKind: UInt8, CaseIterable, Sendable {
    case send, deliver, drop, duplicate, held, released
    case connect, accept, refuse, established, data, close, reset
    case timer, crash, restart, fault, heal, app, buggify, violation, setup, closure

    public var name: String {
        switch self {
        case .send: "send"
        case .deliver: "deliver"
        case .drop: "drop"
        case .duplicate: "dup"
        case .held: "held"
        case .released: "released"
        case .connect: "connect"
        case .accept: "accept"
        case .refuse: "refuse"
        case .established: "established"
        case .data: "data"
        case .close: "close"
        case .reset: "reset"
        case .timer: "timer"
        case .crash: "crash"
        case .restart: "restart"
        case .fault: "fault"
        case .heal: "heal"
        case .app: "app"
        case .buggify: "buggify"
        case .violation: "VIOLATION"
        case .setup: "setup"
        case .closure: "closure"
        }
    }
}

/// Receives formatted log lines when a run records or compares its log.
public protocol LogSink: AnyObject {
    /// Called once per event with its line number (from 1) and text.
    func line(_ number: Int, _ text: String)
}

/// The structured event log: one line per event, folded into a rolling hash.
///
/// The hash is computed over the structured fields (not the text), so it costs the same whether or
/// not the lines are written; formatting happens only when a sink is attached. Same seed, same build,
/// same hash, in any process.
public final class EventLog {
    public private(set) var hash: UInt64 = StableHash.offsetBasis
    public private(set) var count: Int = 0
    public var sink: (any LogSink)?
    /// Host names, for formatting lines.
    var hostNames: [String] = []

    init() {}

    /// Records an application event: a static name and two numbers go into the hash; `detail` is
    /// formatted only when a sink is attached (it must be derived from the same state, for readers).
    @inline(__always)
    public func record(_ time: Int64, _ host: Int, app name: StaticString, _ a: Int64, _ b: Int64, detail: () -> String) {
        var h = begin(time, host, .app, a, b)
        name.withUTF8Buffer { for byte in $0 { h = (h ^ UInt64(byte)) &* StableHash.prime } }
        hash = h
        if let sink {
            let d = detail()
            sink.line(count, format(time, host, .app, a, b, d.isEmpty ? "\(name)" : "\(name) \(d)"))
        }
    }

    /// Records an event carrying a payload: its digest goes into the hash (so two runs that send
    /// different bytes diverge at once, not when the bytes later change what happens).
    @inline(__always)
    public func record(_ time: Int64, _ host: Int, _ kind: LogKind, _ a: Int64, _ b: Int64, payload: [UInt8]) {
        var h = begin(time, host, kind, a, b)
        var digest = StableHash.offsetBasis
        for byte in payload { digest = (digest ^ UInt64(byte)) &* StableHash.prime }
        StableHash.fold(&h, digest)
        hash = h
        if let sink { sink.line(count, format(time, host, kind, a, b, "#" + String(digest, radix: 16))) }
    }

    /// Records a kernel event named by a static label (a closure's purpose).
    @inline(__always)
    public func record(_ time: Int64, _ host: Int, _ kind: LogKind, label: StaticString) {
        var h = begin(time, host, kind)
        label.withUTF8Buffer { for byte in $0 { h = (h ^ UInt64(byte)) &* StableHash.prime } }
        hash = h
        if let sink { sink.line(count, format(time, host, kind, 0, 0, "\(label)")) }
    }

    /// Records one event.
    @inline(__always)
    public func record(_ time: Int64, _ host: Int, _ kind: LogKind, _ a: Int64 = 0, _ b: Int64 = 0, _ text: String? = nil) {
        var h = begin(time, host, kind, a, b)
        if let text { StableHash.fold(&h, StableHash.fnv1a(text)) }
        hash = h
        if let sink { sink.line(count, format(time, host, kind, a, b, text)) }
    }

    /// Counts an event and returns the hash with its time, host and kind folded in (and `a`, `b`
    /// when given): what every kind of line hashes first.
    @inline(__always)
    private func begin(_ time: Int64, _ host: Int, _ kind: LogKind, _ a: Int64? = nil, _ b: Int64? = nil) -> UInt64 {
        count &+= 1
        var h = hash
        StableHash.fold(&h, UInt64(bitPattern: time))
        StableHash.fold(&h, UInt64(bitPattern: Int64(host)) &<< 8 | UInt64(kind.rawValue))
        if let a { StableHash.fold(&h, UInt64(bitPattern: a)) }
        if let b { StableHash.fold(&h, UInt64(bitPattern: b)) }
        return h
    }

    func format(_ time: Int64, _ host: Int, _ kind: LogKind, _ a: Int64, _ b: Int64, _ text: String?) -> String {
        let who = host >= 0 && host < hostNames.count ? hostNames[host] : "sim"
        var line = "\(time) \(who) \(kind.name) \(a) \(b)"
        if let text { line += " " + text }
        return line
    }

    /// The hash as printed at the end of a run.
    public var hashString: String { EventLog.format(hash: hash) }

    public static func format(hash: UInt64) -> String {
        let hex = String(hash, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }
}
