import HTTPSidecar
import NIOHTTP1

/// Header rules every proxy hop applies (RFC 9110 §7.6.1).
enum ProxyHeaders {
    /// Removes hop-by-hop headers (connection, keep-alive, proxy-connection, te, trailer,
    /// transfer-encoding, upgrade, proxy-authenticate, proxy-authorization), including every header
    /// the `Connection` header names. One pass
    /// finds whether there is anything to remove (usually just `Connection`), so the common case
    /// costs one scan of the names and no allocation.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var found: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            found.append(name)
            if name.utf8.count == 10, equalsIgnoringCase(name, "connection") {
                for token in value.utf8.split(separator: UInt8(ascii: ",")) {
                    let trimmed = token.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed()
                    if !trimmed.isEmpty { found.append(String(decoding: Array(trimmed), as: UTF8.self)) }
                }
            }
        }
        for name in found { headers.remove(name: name) }
    }

    @inline(__always)
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
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
    static func equalsIgnoringCase(_ name: String, _ lower: StaticString) -> Bool {
        guard name.utf8.count == lower.utf8CodeUnitCount else { return false }
        return lower.withUTF8Buffer { l in
            var i = 0
            for byte in name.utf8 {
                let folded = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
                if folded != l[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// The head of an upstream's answer as the sidecar relays it downstream: hop-by-hop headers
    /// removed, the configured rules applied, the sidecar's own headers set. An HTTP/1.0 client cannot
    /// read chunked framing, so an answer without a length is sent with an HTTP/1.0 head and delimited
    /// by closing the connection; `closeAfter` tells the caller to close once the answer is out.
    static func relayedHead(_ response: HTTPResponseHead, rules: HeaderRules, setting extra: [(String, String)] = [],
                            requestVersion: HTTPVersion, keepAlive: Bool) -> (head: HTTPResponseHead, closeAfter: Bool) {
        var headers = response.headers
        removeHopByHop(&headers)
        rules.apply(to: &headers)
        for (name, value) in extra { headers.replaceOrAdd(name: name, value: value) }
        let http10 = requestVersion.major == 1 && requestVersion.minor == 0
        let closeAfter = !keepAlive || (http10 && !headers.contains(name: "content-length"))
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        return (HTTPResponseHead(version: http10 ? .http1_0 : .http1_1, status: response.status, headers: headers), closeAfter)
    }

    /// Sets `X-Forwarded-For` (appending the client), `-Proto` and `-Host`.
    static func addForwarded(_ headers: inout HTTPHeaders, client: String?, proto: String) {
        if let client {
            if let prior = headers.first(name: "x-forwarded-for") {
                let all = headers["x-forwarded-for"].joined(separator: ", ")
                headers.replaceOrAdd(name: "x-forwarded-for", value: (all.isEmpty ? prior : all) + ", " + client)
            } else {
                headers.add(name: "x-forwarded-for", value: client)
            }
        }
        headers.replaceOrAdd(name: "x-forwarded-proto", value: proto)
        if let host = headers.first(name: "host"), !headers.contains(name: "x-forwarded-host") {
            headers.add(name: "x-forwarded-host", value: host)
        }
    }
}
