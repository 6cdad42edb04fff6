import Foundation
import HTTPSidecar
@testable import HTTPSidecarNIO
@testable import HTTPClientNIO
@testable import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOHTTP1
import Testing

/// The request the app gets is written from the scanned bytes (``RelayedFields``) instead of being
/// rebuilt as `HTTPHeaders`. Checked against the `HTTPHeaders` version it replaced, kept here as the
/// oracle, over generated heads: hop-by-hop fields and `Connection` lists, forwarding fields from
/// trusted and untrusted clients, trace context, `Expect`, framing, absolute targets and random
/// header rules.
@Suite struct UpstreamRequestTests {
    @Test func theBytesWrittenAreTheRequestTheHeadersVersionBuilt() throws {
        var gen = SeededRandom(seed: 20261130)
        var checked = 0
        for _ in 0..<40_000 {
            let text = Self.randomHead(&gen)
            guard case .success(let head) = ScannedRequestHead.scanning(ByteBuffer(string: text)) else { continue }
            guard case .success(let framing) = RequestFraming.of(method: head.method.text, contentLength: head.values("content-length"),
                                                                   transferEncoding: head.values("transfer-encoding")),
                  case .success(let target) = RequestTarget.normalize(head.target, escaped: .reject) else { continue }
            let rules = Self.randomRules(&gen)
            let client = gen.next() % 4 == 0 ? nil : "192.0.2.\(gen.next() % 9)"
            let trusted = gen.next() % 2 == 0
            let seed = gen.next()
            var r1 = SeededRandom(seed: seed), r2 = SeededRandom(seed: seed)
            let (bytes, trace1) = IngressAdmission.upstreamRequest(head, target, framing, "c0ffee", rules, client: client, scheme: "http",
                                                                   trusted: trusted, random: &r1)
            let (oracle, trace2) = Self.oracle(head.nio, target, framing, "c0ffee", rules, client: client, scheme: "http", trusted: trusted, random: &r2)
            let got = decoded(bytes)
            #expect(trace1 == trace2)
            #expect(got.method == oracle.method && got.uri == oracle.uri && got.version == oracle.version, "\(text)")
            #expect(got.headers.map { "\($0.name): \($0.value)" } == oracle.headers.map { "\($0.name): \($0.value)" }, "\(text) rules \(rules)")
            #expect(bytes.chunked == (framing == .chunked))
            checked += 1
        }
        #expect(checked > 5_000)
    }

    @Test func theEgressHeadIsTheOneTheHeadersVersionBuilt() throws {
        var gen = SeededRandom(seed: 1201)
        var checked = 0
        for _ in 0..<30_000 {
            var text = Self.randomHead(&gen)
            if gen.next() % 2 == 0 { text = text.replacingOccurrences(of: "\r\n\r\n", with: "\r\nservice_id: orders\r\nAuthorization: Basic x\r\n\r\n") }
            guard case .success(let head) = ScannedRequestHead.scanning(ByteBuffer(string: text)),
                  case .success = RequestFraming.of(method: head.method.text, contentLength: head.values("content-length"),
                                                    transferEncoding: head.values("transfer-encoding")),
                  case .success(let target) = RequestTarget.normalize(head.target, escaped: .reject) else { continue }
            let rules = Self.randomRules(&gen)
            let host = gen.next() % 3 == 0 ? "api.example:8443" : nil
            let token = gen.next() % 2 == 0 ? "t0k3n" : nil
            let state = gen.next() % 2 == 0 ? "k=v" : nil
            let bodyLength = Int(gen.next() % 3)
            let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let bytes = EgressRequestHead(app: head, target: target.originForm, traceparent: traceparent, tracestate: state, host: host,
                                          rules: rules, bodyLength: bodyLength).encoded(token: token)
            // The egress's edits as they were made on NIO's head, and the encoder's framing.
            var upstream = head.nio
            upstream.uri = target.originForm
            ProxyHeaders.removeHopByHop(&upstream.headers)
            upstream.headers.replaceOrAdd(name: "traceparent", value: traceparent)
            upstream.headers.remove(name: "tracestate")
            if let state { upstream.headers.add(name: "tracestate", value: state) }
            upstream.headers.remove(name: "service_id")
            upstream.headers.remove(name: "service_url")
            if let host { upstream.headers.replaceOrAdd(name: "host", value: host) }
            rules.apply(to: &upstream.headers)
            upstream.headers.remove(name: "content-length")
            upstream.headers.remove(name: "transfer-encoding")
            if bodyLength > 0 || [.POST, .PUT, .PATCH].contains(upstream.method) { upstream.headers.add(name: "content-length", value: String(bodyLength)) }
            upstream.version = .http1_1
            if let token { upstream.headers.replaceOrAdd(name: "authorization", value: "Bearer \(token)") }
            let oracle = decoded(EncodedRequestHead(upstream))
            let got = decoded(bytes)
            #expect(got.method == oracle.method && got.uri == oracle.uri && got.version == oracle.version, "\(text)")
            #expect(got.headers.map { "\($0.name): \($0.value)" } == oracle.headers.map { "\($0.name): \($0.value)" }, "\(text) rules \(rules)")
            checked += 1
        }
        #expect(checked > 5_000)
    }

    static let names = ["Host", "x-a", "X-B", "Connection", "keep-alive", "TE", "Upgrade", "proxy-authorization", "X-Forwarded-For",
                        "x-forwarded-proto", "X-Forwarded-Host", "forwarded", "x-real-ip", "traceparent", "tracestate", "Expect",
                        "x-correlation-id", "user-agent", "content-length", "transfer-encoding", "trailer"]
    static let values = ["1", "a b", "203.0.113.9", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v,q=w", "", "100-continue",
                         "chunked", "x-a", "close", "keep-alive, X-B", "upgrade, te", "example.com:8080"]
    static let targets = ["/", "/a/../b?q=1", "//x//y", "http://other.example:81/p?q", "/%61b", "*"]
    static let methods = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"]

    static func pick<T>(_ list: [T], _ gen: inout SeededRandom) -> T { list[Int(gen.next() % UInt64(list.count))] }

    static func randomHead(_ gen: inout SeededRandom) -> String {
        var text = "\(pick(methods, &gen)) \(pick(targets, &gen)) \(gen.next() % 5 == 0 ? "HTTP/1.0" : "HTTP/1.1")\r\n"
        for _ in 0..<Int(gen.next() % 9) {
            let name = pick(names, &gen)
            let value = name.lowercased() == "content-length" ? String(gen.next() % 3) : pick(values, &gen)
            text += "\(name):\(gen.next() % 2 == 0 ? " " : "")\(value)\r\n"
        }
        return text + "\r\n"
    }

    static func randomRules(_ gen: inout SeededRandom) -> HeaderRules {
        guard gen.next() % 3 != 0 else { return HeaderRules() }
        let pool = ["x-a", "X-B", "x-forwarded-for", "x-correlation-id", "traceparent", "host", "content-length", "x-new", "user-agent"]
        var remove: [String] = [], rename: [String: String] = [:], add: [String: String] = [:]
        for _ in 0..<Int(gen.next() % 3) { remove.append(pick(pool, &gen)) }
        for _ in 0..<Int(gen.next() % 3) { rename[pick(pool, &gen)] = pick(pool, &gen) }
        for _ in 0..<Int(gen.next() % 3) { add[pick(pool, &gen)] = pick(["v", "w x", "1"], &gen) }
        return HeaderRules(remove: remove, rename: rename, add: add)
    }

    /// The request as the ingress built it before, over `HTTPHeaders`.
    static func oracle(_ head: HTTPRequestHead, _ target: RequestTarget, _ framing: RequestFraming, _ correlation: String,
                       _ rules: HeaderRules, client: String?, scheme: String, trusted: Bool,
                       random: inout SeededRandom) -> (HTTPRequestHead, String) {
        var upstream = head
        upstream.uri = target.originForm
        ProxyHeaders.removeHopByHop(&upstream.headers)
        upstream.headers.remove(name: "expect")
        if let authority = target.authority { upstream.headers.replaceOrAdd(name: "host", value: authority) }
        addForwarded(&upstream.headers, client: client, proto: scheme, trusted: trusted)
        if !upstream.headers.contains(name: "host") { upstream.headers.add(name: "host", value: "localhost") }
        upstream.headers.replaceOrAdd(name: "x-correlation-id", value: correlation)
        let (trace, _) = TracePropagation.nextHop(
            traceparent: head.headers.first(name: "traceparent"), tracestate: head.headers.first(name: "tracestate"), random: &random)
        upstream.headers.replaceOrAdd(name: "traceparent", value: trace.traceparent)
        upstream.headers.remove(name: "tracestate")
        if let state = trace.traceStateHeaderValue { upstream.headers.add(name: "tracestate", value: state) }
        rules.apply(to: &upstream.headers)
        upstream.headers.remove(name: "content-length")
        upstream.headers.remove(name: "transfer-encoding")
        if let field = framing.field(method: head.method.rawValue) { upstream.headers.add(name: field.name, value: field.value) }
        upstream.version = .http1_1
        return (upstream, trace.traceIDHex)
    }

    static func addForwarded(_ headers: inout HTTPHeaders, client: String?, proto: String, trusted: Bool) {
        if !trusted { for name in ProxyHeaders.forwardingHeaders { headers.remove(name: name) } }
        if let client {
            if let prior = headers.first(name: "x-forwarded-for") {
                let all = headers["x-forwarded-for"].joined(separator: ", ")
                headers.replaceOrAdd(name: "x-forwarded-for", value: (all.isEmpty ? prior : all) + ", " + client)
            } else {
                headers.add(name: "x-forwarded-for", value: client)
            }
        }
        if !trusted || !headers.contains(name: "x-forwarded-proto") { headers.replaceOrAdd(name: "x-forwarded-proto", value: proto) }
        if let host = headers.first(name: "host"), !headers.contains(name: "x-forwarded-host") {
            headers.add(name: "x-forwarded-host", value: host)
        }
    }
}
