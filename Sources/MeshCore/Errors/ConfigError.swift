/// A configuration (or scenario file) that cannot be used; `key` names the offending key by its
/// path (`ingress.tls.key`, `egress.services.pets.oauth.client_secret`). Raised when a file is read
/// and when a running component builds from a configuration, so both name keys the same way.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String
    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { key.isEmpty ? message : "\(key): \(message)" }
}
