import ArgumentParser
import Foundation
import MeshConfig
import MeshCore

/// The flags a user gave, written as the configuration keys they stand for: the command line is one
/// more way of writing a configuration document, and the same reader as a file's reads it. So a
/// flag and its key have one set of rules and one default (a flag not given leaves its key out, and
/// the settings' own default applies), and an error names the flag the user typed.
struct FlagDocument {
    private var root: [String: Any] = [:]
    /// The flag behind each key path written (errors name the flag of the longest matching path).
    private var flags: [(path: String, flag: String)] = []

    /// Sets `path` (its parts: a service or route name may contain dots) to `value`, unless nil.
    mutating func set(_ path: [String], _ value: Any?, flag: String) {
        guard let value else { return }
        root = Self.setting(root, path[...], value)
        flags.append((path.joined(separator: "."), flag))
    }

    private static func setting(_ node: [String: Any], _ path: ArraySlice<String>, _ value: Any) -> [String: Any] {
        var node = node
        guard let first = path.first else { return node }
        if path.count == 1 {
            node[first] = value
        } else {
            node[first] = setting(node[first] as? [String: Any] ?? [:], path.dropFirst(), value)
        }
        return node
    }

    /// Names `flags` for errors about keys under `path` that no single flag set (a section's rules).
    mutating func name(_ path: [String], flags: String) {
        self.flags.append((path.joined(separator: "."), flags))
    }

    /// The document the reader takes: written as JSON (which is YAML) by hand, since Foundation's
    /// JSON writer costs the process megabytes of resident memory it would otherwise never touch.
    func document() throws -> YAMLFields {
        var text = ""
        Self.write(root, into: &text)
        return try YAMLFields.document(text, source: "flags")
    }

    private static func write(_ value: Any, into out: inout String) {
        switch value {
        case let map as [String: Any]:
            out += "{"
            for (i, key) in map.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                quote(key, into: &out)
                out += ":"
                write(map[key]!, into: &out)
            }
            out += "}"
        case let list as [Any]:
            out += "["
            for (i, item) in list.enumerated() {
                if i > 0 { out += "," }
                write(item, into: &out)
            }
            out += "]"
        case let text as String: quote(text, into: &out)
        case let flag as Bool: out += flag ? "true" : "false"
        case let number as Int: out += String(number)
        case let number as Double: out += number.isFinite ? String(number) : "null"
        default: quote("\(value)", into: &out)
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    private static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// `error` (from the reader) as the user typed it: naming the flag behind its key.
    func explain(_ error: ConfigError) -> ValidationError {
        let match = flags.filter { error.key == $0.path || error.key.hasPrefix($0.path + ".") || error.key.hasPrefix($0.path + "[") }
            .max { $0.path.count < $1.path.count }
        guard let match else { return ValidationError("\(error)") }
        return ValidationError("\(match.flag): \(error.message) (\(error.key))")
    }

    /// Seconds given as a number on the command line, written as the files write durations.
    static func seconds(_ value: Double?) -> String? { value.map { "\($0)s" } }

    /// `NAME=VALUE` split at the first `=`, or a clear error naming `flag` and the expected shape.
    static func pair(_ text: String, flag: String, shape: String) throws -> (String, String) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("\(flag) expects \(shape), got '\(text)'") }
        return (parts[0], parts[1])
    }
}
