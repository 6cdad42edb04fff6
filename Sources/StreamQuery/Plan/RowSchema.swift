/// Why a statement that parsed cannot be planned: an unknown or ambiguous name, a type that does
/// not fit, an aggregate where none may be.
public struct PlanError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The columns of the rows an expression reads: each with its type and the source that named it
/// (a join's rows carry both sides'), in the order their values come in a row.
public struct RowSchema: Hashable, Sendable {
    public struct Column: Hashable, Sendable {
        public var name: String
        public var type: SQLType
        /// The qualifier that names this column's source in the query (its alias, else its name).
        public var source: String?
        public init(_ name: String, _ type: SQLType, source: String? = nil) {
            self.name = name
            self.type = type
            self.source = source
        }
    }

    public var columns: [Column]

    public init(_ columns: [Column]) { self.columns = columns }

    /// The position of the column `qualifier.name` (or `name` alone, when exactly one source has it).
    public func index(qualifier: String?, name: String) throws(PlanError) -> Int {
        let matches = columns.indices.filter { columns[$0].name == name && (qualifier == nil || columns[$0].source == qualifier) }
        guard let first = matches.first else {
            if let qualifier, !columns.contains(where: { $0.source == qualifier }) {
                throw PlanError("unknown source \(qualifier) in \(qualifier).\(name)")
            }
            throw PlanError("unknown column \(qualifier.map { "\($0)." } ?? "")\(name)")
        }
        guard matches.count == 1 else {
            throw PlanError("the column \(name) is ambiguous: qualify it with one of \(matches.compactMap { columns[$0].source }.joined(separator: ", "))")
        }
        return first
    }
}
