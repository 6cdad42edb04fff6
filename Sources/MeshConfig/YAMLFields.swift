import MeshCore
import Yams

/// Typed access to one YAML mapping that remembers which keys were read, so unknown keys (typos)
/// are refused with their full path instead of being silently ignored.
public struct YAMLFields {
    public let path: String
    private let pairs: [(String, Node)]
    private var read: Set<String> = []

    public init(_ node: Node?, path: String) throws {
        self.path = path
        guard let node else { pairs = []; return }
        guard let mapping = node.mapping else { throw ConfigError(key: path, "expected a mapping") }
        var pairs: [(String, Node)] = []
        for (k, v) in mapping {
            guard let name = k.string else { throw ConfigError(key: path, "keys must be strings") }
            pairs.append((name, v))
        }
        self.pairs = pairs
    }

    /// The full path of `key` under this mapping, as error messages name it.
    public func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Keys of this mapping, in file order.
    public var keys: [String] { pairs.map(\.0) }

    /// Parses a whole document; an empty document is an empty mapping.
    public static func document(_ text: String, source: String) throws -> YAMLFields {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw ConfigError(key: "", "\(source) is not valid YAML: \(error)") }
        return try YAMLFields(root, path: "")
    }

    public mutating func node(_ key: String) -> Node? {
        read.insert(key)
        return pairs.first { $0.0 == key }?.1
    }

    public mutating func has(_ key: String) -> Bool { pairs.contains { $0.0 == key } }

    public mutating func string(_ key: String) throws -> String? {
        guard let n = node(key) else { return nil }
        guard let s = n.string else { throw ConfigError(key: name(key), "expected a string") }
        return s
    }

    public mutating func int(_ key: String) throws -> Int? {
        guard let n = node(key) else { return nil }
        guard let v = n.int else { throw ConfigError(key: name(key), "expected an integer, got '\(n.string ?? "?")'") }
        return v
    }

    /// `true`/`false` (also yes/no, on/off).
    public mutating func bool(_ key: String) throws -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigError(key: name(key), "expected true or false, got '\(text)'")
        }
    }

    public mutating func double(_ key: String) throws -> Double? {
        guard let n = node(key) else { return nil }
        guard let v = n.float ?? n.int.map(Double.init) else { throw ConfigError(key: name(key), "expected a number, got '\(n.string ?? "?")'") }
        return v
    }

    public mutating func probability(_ key: String) throws -> Double? {
        guard let v = try double(key) else { return nil }
        guard (0...1).contains(v) else { throw ConfigError(key: name(key), "must be between 0 and 1, got \(v)") }
        return v
    }

    public mutating func duration(_ key: String) throws -> Duration? {
        guard let n = node(key) else { return nil }
        guard let s = n.string, let d = DurationText.parse(s) else {
            throw ConfigError(key: name(key), "expected a duration such as 250us, 10ms or 2s, got '\(n.string ?? "?")'")
        }
        return d
    }

    /// A two-element list `[low, high]` of numbers.
    public mutating func numberRange(_ key: String) throws -> (Double, Double)? {
        guard let n = node(key) else { return nil }
        let values = n.sequence?.compactMap { $0.float ?? $0.int.map(Double.init) } ?? []
        guard values.count == 2, values[0] <= values[1] else { throw ConfigError(key: name(key), "expected [low, high]") }
        return (values[0], values[1])
    }

    /// A two-element list `[low, high]` of durations.
    public mutating func durationRange(_ key: String) throws -> ClosedRange<Duration>? {
        guard let n = node(key) else { return nil }
        let values = n.sequence?.compactMap { $0.string.flatMap(DurationText.parse) } ?? []
        guard values.count == 2, values[0] <= values[1] else { throw ConfigError(key: name(key), "expected [low, high] durations") }
        return values[0]...values[1]
    }

    public mutating func strings(_ key: String) throws -> [String]? {
        guard let n = node(key) else { return nil }
        guard let seq = n.sequence else { throw ConfigError(key: name(key), "expected a list") }
        return try seq.map {
            guard let s = $0.string else { throw ConfigError(key: name(key), "expected a list of strings") }
            return s
        }
    }

    public mutating func child(_ key: String) throws -> YAMLFields {
        try YAMLFields(node(key), path: name(key))
    }

    public mutating func children(_ key: String) throws -> [YAMLFields] {
        guard let n = node(key) else { return [] }
        guard let seq = n.sequence else { throw ConfigError(key: name(key), "expected a list") }
        return try seq.enumerated().map { try YAMLFields($0.element, path: "\(name(key))[\($0.offset)]") }
    }

    /// Throws if the mapping has a key nobody read.
    public func rejectUnknownKeys() throws {
        for (key, _) in pairs where !read.contains(key) {
            throw ConfigError(key: name(key), "unknown key")
        }
    }
}
