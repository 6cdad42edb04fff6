/// An answer of one of the Kafka sidecar's REST fronts (produce, pull consumers), decided sans-IO:
/// status, content type (empty for a 204), body.
public struct RESTAnswer: Hashable, Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// 204 No Content.
    public static let noContent = RESTAnswer(status: 204, contentType: "", body: [])

    /// The Confluent v2 content type of every answer that carries no records.
    public static let kafkaV2Type = "application/vnd.kafka.v2+json"
}
