/// Header edits configured per listener or per service, applied in a fixed order: remove, then
/// rename, then add (set). Names compare case-insensitively, as HTTP field names do.
///
/// `add` replaces an existing field of that name rather than appending a second one: a configured
/// value is meant to be the value the peer sees, and a duplicate would let the caller's value win
/// on servers that read the first occurrence.
public struct HeaderRules: Hashable, Sendable {
    public var remove: [String] = []
    /// Old name → new name; the values are kept.
    public var rename: [String: String] = [:]
    /// Name → value, set after removal and renaming.
    public var add: [String: String] = [:]

    public init(remove: [String] = [], rename: [String: String] = [:], add: [String: String] = [:]) {
        self.remove = remove.map { $0.lowercased() }
        self.rename = Dictionary(rename.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        self.add = add
    }

    public var isEmpty: Bool { remove.isEmpty && rename.isEmpty && add.isEmpty }

    /// The first name or value that cannot go on the wire as configured (a name that is not an
    /// RFC 9110 token, a value with CR, LF or NUL: header injection), or nil when all are valid.
    public var invalidEntry: String? {
        for name in remove + Array(rename.keys) + Array(rename.values) + Array(add.keys) where !Self.isToken(name) {
            return "'\(name)' is not a valid header name"
        }
        for (name, value) in add where value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
            return "the value of \(name) contains CR, LF or NUL"
        }
        return nil
    }

    public static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    /// Applies the rules to an ordered list of fields.
    public func apply(to fields: inout [(name: String, value: String)]) {
        guard !isEmpty else { return }
        if !remove.isEmpty { fields.removeAll { remove.contains($0.name.lowercased()) } }
        if !rename.isEmpty {
            for i in fields.indices {
                if let to = rename[fields[i].name.lowercased()] { fields[i].name = to }
            }
        }
        for (name, value) in add.sorted(by: { $0.key < $1.key }) {
            fields.removeAll { $0.name.lowercased() == name.lowercased() }
            fields.append((name, value))
        }
    }
}

/// Request and response header rules of one listener or service.
public struct HeaderRewrite: Hashable, Sendable {
    public var request = HeaderRules()
    public var response = HeaderRules()
    public init(request: HeaderRules = HeaderRules(), response: HeaderRules = HeaderRules()) {
        self.request = request
        self.response = response
    }
}
