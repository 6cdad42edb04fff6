/// An error with a stable, machine-readable code, as returned in JSON error bodies and logged.
///
/// Codes are part of the API: clients match on them, so a code is never renamed once shipped.
public struct MeshError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable code such as `upstream_timeout` or `unknown_topic`.
    public var code: String
    /// A human-readable explanation; may change between releases.
    public var message: String
    /// Whether the same operation may succeed if retried unchanged.
    public var retriable: Bool

    public init(code: String, message: String, retriable: Bool = false) {
        self.code = code
        self.message = message
        self.retriable = retriable
    }

    public var description: String { "\(code): \(message)" }
}
