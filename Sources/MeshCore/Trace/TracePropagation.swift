import W3CTraceContext

/// W3C trace context across hops: an HTTP request into the sidecar, a record into Kafka, a push to the app.
public enum TracePropagation {
    /// The context for the next hop: the caller's trace with a new span id, or a new sampled trace when
    /// the caller sent none or an invalid `traceparent` (which, per the W3C spec, is then ignored along
    /// with its `tracestate`).
    public static func nextHop(
        traceparent: String?, tracestate: String?, random: inout some RandomSource
    ) -> (context: TraceContext, continued: Bool) {
        if let traceparent, let incoming = try? TraceContext(traceParentHeaderValue: traceparent, traceStateHeaderValue: tracestate) {
            let next = TraceContext(traceID: incoming.traceID, spanID: SpanID.random(using: &random), flags: incoming.flags, state: incoming.state)
            return (next, true)
        }
        let fresh = TraceContext(traceID: TraceID.random(using: &random), spanID: SpanID.random(using: &random), flags: .sampled, state: TraceState())
        return (fresh, false)
    }
}
