import MeshCore

/// A push to the app as both drivers send it (NIO's ``ReactiveDriver`` and the simulator's pod): a
/// POST to the subscription's app URL carrying the batch as ``PushCodec`` JSON and the batch's own
/// trace context. The driver adds only `Host` and `Content-Length` (``FetchURL``'s request head).
public struct PushRequest {
    /// The request's fields, in order, besides `Host` and `Content-Length`.
    public var fields: [(String, String)]
    public var body: [UInt8]

    public init(_ batch: PushBatch, jsonValues: Bool, random: inout some RandomSource) {
        body = PushCodec.encode(batch, jsonValues: jsonValues)
        fields = [("content-type", "application/json"), ("traceparent", PushCodec.traceparent(for: batch, random: &random))]
    }

    /// Whether an answer to the readiness probe (a GET of the subscription's ready path) says the
    /// app is ready.
    public static func isReady(status: Int) -> Bool { status < 400 }
}
