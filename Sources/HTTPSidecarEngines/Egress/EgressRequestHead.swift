import HTTPSidecar
import NIOCore

/// The request head an egress attempt sends, written from the app's scanned head (a field that
/// passes unchanged is copied as the app sent it): hop-by-hop fields and the routing fields
/// (`service_id`, `service_url`) gone, the sidecar's trace hop set, `Host` set to an allow-listed
/// origin's own authority, the service's rules applied, and a length matching the body the sidecar
/// holds (no rule can change it). Each attempt may carry another bearer token, so the head is
/// written per attempt (``encoded(token:)``); a test checks it against the same edits on NIO's head.
public struct EgressRequestHead: Sendable {
    let app: ScannedRequestHead
    /// The normalized origin-form target.
    let target: String
    let traceparent: String
    let tracestate: String?
    /// The authority of an allow-listed origin (it gets its own `Host`, not the one the app used).
    let host: String?
    let rules: HeaderRules
    let bodyLength: Int

    /// The head for `app`'s request to `target`, continuing the trace as `traceparent` and
    /// `tracestate` (the exchange's hop), for a body of `bodyLength` bytes.
    public init(app: ScannedRequestHead, target: String, traceparent: String, tracestate: String?, host: String?, rules: HeaderRules,
                bodyLength: Int) {
        self.app = app
        self.target = target
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.host = host
        self.rules = rules
        self.bodyLength = bodyLength
    }

    /// The head, with `Authorization: Bearer token` when there is a token (replacing the app's).
    public func encoded(token: String?) -> EncodedRequestHead {
        app.bytes.withUnsafeReadableBytes { raw in
            var fields = RelayedFields(raw, fields: app.scan.fields, room: 6)
            fields.removeHopByHop()
            // The sidecar hop continues the app's trace with a span of its own.
            // ci/mutants: egress-trace-not-hopped (the next line)
            fields.replaceOrAdd("traceparent", traceparent)
            fields.remove("tracestate")
            if let tracestate { fields.add("tracestate", tracestate) }
            // ci/mutants: egress-routing-field-kept (the next line)
            fields.remove("service_id")
            fields.remove("service_url")
            if let host { fields.replaceOrAdd("host", host) }
            fields.apply(rules)
            // Framing last: the whole body is here, so its length is exact; no rule can change it.
            fields.remove("content-length")
            fields.remove("transfer-encoding")
            let framing: RequestFraming = bodyLength > 0 ? .length(bodyLength) : .none
            if let field = framing.field(method: app.method.text) { fields.add(field.name, field.value) }
            // ci/mutants: egress-token-not-sent (the next line)
            if let token { fields.replaceOrAdd("authorization", "Bearer " + token) }
            return fields.requestHead(method: app.method, target: target, chunked: false)
        }
    }
}
