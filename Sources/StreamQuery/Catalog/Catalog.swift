/// The streams and tables a server knows, by name, in the order they were created (so `SHOW`
/// lists and every replay of the statements give the same order).
public struct Catalog: Hashable, Sendable {
    public private(set) var sources: [SourceDescription] = []

    public init() {}

    public func source(_ name: String) -> SourceDescription? { sources.first { $0.name == name } }

    /// Adds `source`. An existing one with the name is an error unless `replace` (it is swapped in
    /// place) or `ifNotExists` (nothing changes; false is returned).
    @discardableResult
    public mutating func add(_ source: SourceDescription, replace: Bool = false, ifNotExists: Bool = false) throws(PlanError) -> Bool {
        if let i = sources.firstIndex(where: { $0.name == source.name }) {
            if ifNotExists { return false }
            guard replace else { throw PlanError("a \(sources[i].kind.rawValue.lowercased()) named \(source.name) exists already") }
            guard sources[i].kind == source.kind else { throw PlanError("\(source.name) is a \(sources[i].kind.rawValue), not a \(source.kind.rawValue)") }
            sources[i] = source
            return true
        }
        sources.append(source)
        return true
    }

    /// Removes the source `name` of `kind`; false when there is none and `ifExists`.
    @discardableResult
    public mutating func drop(_ name: String, kind: SourceKind, ifExists: Bool) throws(PlanError) -> Bool {
        guard let i = sources.firstIndex(where: { $0.name == name }) else {
            if ifExists { return false }
            throw PlanError("\(kind.rawValue.lowercased()) \(name) does not exist")
        }
        guard sources[i].kind == kind else { throw PlanError("\(name) is a \(sources[i].kind.rawValue), not a \(kind.rawValue)") }
        sources.remove(at: i)
        return true
    }
}
