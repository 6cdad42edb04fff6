import NIOHTTP1

/// Header rules every proxy hop applies (RFC 9110 §7.6.1).
enum ProxyHeaders {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Removes hop-by-hop headers, including every header the `Connection` header names.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        let named = headers["connection"].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for name in hopByHop.union(named) where !name.isEmpty { headers.remove(name: name) }
    }

    /// Sets `X-Forwarded-For` (appending the client), `-Proto` and `-Host`.
    static func addForwarded(_ headers: inout HTTPHeaders, client: String?, proto: String) {
        if let client {
            let prior = headers["x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "x-forwarded-for", value: prior.isEmpty ? client : "\(prior), \(client)")
        }
        headers.replaceOrAdd(name: "x-forwarded-proto", value: proto)
        if let host = headers.first(name: "host"), headers.first(name: "x-forwarded-host") == nil {
            headers.replaceOrAdd(name: "x-forwarded-host", value: host)
        }
    }
}

import Foundation
