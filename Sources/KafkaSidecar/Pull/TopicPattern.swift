import MeshCore

/// A pull subscription by `topic_pattern`: handed to the consumer as one subscription entry that
/// starts with `^`, which librdkafka (and SimKafka) read as a regular expression over topic names,
/// re-evaluated as topics come and go. Kafka's internal topics never match.
public enum TopicPattern {
    /// The longest pattern taken.
    public static let maxLength = 1_000

    /// The subscription entry of `pattern`, or why it is refused (422). Java patterns (the Confluent
    /// and Strimzi proxies') and librdkafka's POSIX-style ones agree on the common subset: literals,
    /// `.`, `*`, `+`, `?`, `[...]`, `(...)`, `|`, `^`, `$`; back-references and look-around are refused.
    public static func subscription(_ pattern: String) -> Result<String, PullError> {
        guard !pattern.isEmpty, pattern.utf8.count <= maxLength else {
            return .failure(.constraint("topic_pattern must be 1 to \(maxLength) bytes"))
        }
        guard pattern.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            return .failure(.constraint("topic_pattern must be printable ASCII"))
        }
        let bytes = Array(pattern.utf8)
        let backReference = zip(bytes, bytes.dropFirst()).contains { $0 == 0x5C && ($1 >= 0x31 && $1 <= 0x39 || $1 == 0x6B) }
        if pattern.contains("(?") || backReference {
            return .failure(.constraint("topic_pattern may not use back-references or look-around"))
        }
        guard (try? Regex(pattern)) != nil else {
            return .failure(.constraint("topic_pattern is not a regular expression"))
        }
        return .success(pattern.hasPrefix("^") ? pattern : "^" + pattern)
    }

    /// Whether a subscription entry is a pattern.
    public static func isPattern(_ entry: String) -> Bool { entry.hasPrefix("^") }
}
