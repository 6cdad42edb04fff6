import HTTPSidecar
import NIOHTTP1

/// Header rules every proxy hop applies (RFC 9110 §7.6.1).
public enum ProxyHeaders {
    /// Calls `body` with each comma-separated token of a field value, without the spaces and tabs
    /// around it, as a view into the value (no array, no string per token).
    @inline(__always)
    static func forEachToken(_ value: String, _ body: (Substring.UTF8View) -> Void) {
        let utf8 = value.utf8
        var start = utf8.startIndex
        while true {
            let end = utf8[start...].firstIndex(of: UInt8(ascii: ",")) ?? utf8.endIndex
            var lo = start, hi = end
            while lo < hi, utf8[lo] == 0x20 || utf8[lo] == 0x09 { lo = utf8.index(after: lo) }
            while hi > lo {
                let last = utf8.index(before: hi)
                guard utf8[last] == 0x20 || utf8[last] == 0x09 else { break }
                hi = last
            }
            body(utf8[lo..<hi])
            guard end < utf8.endIndex else { return }
            start = utf8.index(after: end)
        }
    }

    /// Names a `Connection` header may not remove: the framing and the authority are end-to-end.
    static let protectedFromConnection: Set<String> = ["content-length", "host"]

    @inline(__always)
    static func isHopByHop(_ name: String) -> Bool { isHopByHop(name.utf8) }

    @inline(__always)
    static func isHopByHop(_ name: some Collection<UInt8>) -> Bool {
        switch name.count {
        case 2: return equalsIgnoringCase(name, "te")
        case 7: return equalsIgnoringCase(name, "trailer") || equalsIgnoringCase(name, "upgrade")
        case 10: return equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "keep-alive")
        case 16: return equalsIgnoringCase(name, "proxy-connection")
        case 17: return equalsIgnoringCase(name, "transfer-encoding")
        case 18: return equalsIgnoringCase(name, "proxy-authenticate")
        case 19: return equalsIgnoringCase(name, "proxy-authorization")
        default: return false
        }
    }

    /// ASCII case-insensitive equality with a lower-case literal.
    @inline(__always)
    static func equalsIgnoringCase(_ name: some Collection<UInt8>, _ lower: StaticString) -> Bool {
        guard name.count == lower.utf8CodeUnitCount else { return false }
        return lower.withUTF8Buffer { l in
            var i = 0
            for byte in name {
                let folded = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
                if folded != l[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// Headers a client could use to pose as another client, scheme or host.
    static let forwardingHeaders = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"]
}
