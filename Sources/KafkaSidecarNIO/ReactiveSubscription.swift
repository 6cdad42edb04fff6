import KafkaSidecar
import MeshCore

/// One reactive subscription: the topics a group consumes and the app endpoint it pushes to.
public struct ReactiveSubscription: Hashable, Sendable {
    public var group: String
    public var topics: [String]
    /// The push endpoint, `http://host:port/path`.
    public var app: String
    /// The app's readiness path on the same origin; without one the app is ready while it accepts
    /// connections on the push endpoint's port.
    public var readyPath: String?
    public var engine = ReactiveConsumerConfig()
    /// The consumer's settings (the before-revoke timeout is kept above the engine's grace).
    public var rebalanceProtocol: KafkaConsumerConfig.RebalanceProtocol = .cooperative
    public var sessionTimeout: Duration = .seconds(10)
    /// Largest answer body the app may give to a push; a larger one fails the push (its records are
    /// retried) and its connection is closed.
    public var maxAnswerBytes = 4 * 1024 * 1024
    /// The push endpoint when none is configured.
    public static let defaultApp = "http://127.0.0.1:8080/kafka/records"

    public init(group: String, topics: [String], app: String, readyPath: String? = nil) {
        self.group = group
        self.topics = topics
        self.app = app
        self.readyPath = readyPath
    }
}
