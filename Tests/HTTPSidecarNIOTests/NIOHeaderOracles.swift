import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import NIOHTTP1

/// The relay's header edits as they were written over NIO's `HTTPHeaders`, before the sidecars
/// relayed scanned bytes: the oracles the byte relays are checked against.
extension ProxyHeaders {
    /// Removes hop-by-hop headers (connection, keep-alive, proxy-connection, te, trailer,
    /// transfer-encoding, upgrade, proxy-authenticate, proxy-authorization), and every header the
    /// `Connection` header names, except `Content-Length` and `Host`: a client naming those must
    /// not strip the framing or the authority from what the next hop sees (request smuggling).
    /// Linear in the number of fields and tokens: the names to drop go into a set, and the fields
    /// are rebuilt in one pass when more than a few are to go.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var hopFields = 0
        var named: Set<String> = []
        for (name, value) in headers where isHopByHop(name) {
            hopFields += 1
            guard name.utf8.count == 10, equalsIgnoringCase(name.utf8, "connection") else { continue }
            forEachToken(value) { token in
                // The usual tokens name hop-by-hop fields already removed: no string is made for them.
                if token.isEmpty || isHopByHop(token) { return }
                let lower = String(decoding: token, as: UTF8.self).lowercased()
                if !protectedFromConnection.contains(lower) { named.insert(lower) }
            }
        }
        guard hopFields > 0 else { return }
        if named.isEmpty && hopFields <= 4 {
            var names: [String] = []
            for (name, _) in headers where isHopByHop(name) { names.append(name) }
            for name in names { headers.remove(name: name) }
            return
        }
        var kept: [(String, String)] = []
        kept.reserveCapacity(headers.count)
        for (name, value) in headers where !isHopByHop(name) && (named.isEmpty || !named.contains(name.lowercased())) {
            kept.append((name, value))
        }
        headers = HTTPHeaders(kept)
    }

}
