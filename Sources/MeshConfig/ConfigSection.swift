import MeshCore

/// One mapping of a configuration document, read key by key with every value checked and every
/// error naming its key. The sidecars' files (with their `LIGHT_MESH_*` overrides) and the
/// simulator's scenario files both read through it, so a section shared by both (a service's
/// retry, breaker and outlier settings: ``PoolSections``) has one reader, one spelling and one set
/// of rules.
public protocol ConfigSection {
    /// The full dotted path of `key` in this section, as errors name it.
    func name(_ key: String) -> String
    mutating func int(_ key: String, min: Int) throws -> Int?
    mutating func double(_ key: String) throws -> Double?
    mutating func bool(_ key: String) throws -> Bool?
    mutating func duration(_ key: String) throws -> Duration?
    mutating func child(_ key: String) throws -> Self
    /// Refuses keys that were never read (a misspelled key is an error, not a default).
    mutating func done() throws
}

extension YAMLFields: ConfigSection {
    public mutating func int(_ key: String, min: Int) throws -> Int? {
        let value = try int(key)
        if let value, value < min { throw ConfigError(key: name(key), "must be at least \(min)") }
        return value
    }

    public mutating func done() throws { try rejectUnknownKeys() }
}
