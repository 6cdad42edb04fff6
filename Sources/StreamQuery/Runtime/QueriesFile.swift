import Foundation

/// A file of statements that a headless server runs (ksqlDB's `queries.file`): `CREATE STREAM` and
/// `CREATE TABLE` declare sources, and each `CREATE ... AS SELECT` becomes a persistent query whose
/// sink the later statements can read. Nothing else is taken: an interactive statement (`SELECT`,
/// `INSERT`, `DROP`, `SHOW`, `SET`, ...) is refused with its position, as is a statement that does
/// not plan.
///
/// A query's id is numbered by its place among the file's queries (`CTAS_PER_KEY_1`), and the id
/// names its state in the store: a file edited so that a query moves gets a new id, and that query
/// starts over from the beginning of its input.
public struct QueriesFile: Sendable {
    public private(set) var catalog = Catalog()
    public private(set) var queries: [PersistentQuery] = []

    /// A statement of the file that cannot run, with where it starts.
    public struct Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        public var statement: String
        public var message: String
        public var description: String { "\(message) (in: \(statement))" }
    }

    public init(_ text: String) throws(Refusal) {
        for piece in SQLScript.statements(text) {
            let shown = String(piece.text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(120))
            do {
                switch try piece.result.get() {
                case .createSource(let create):
                    _ = try catalog.add(SourceDescription(create))
                case .createAsSelect(let ctas):
                    let query = try PersistentQuery(ctas, catalog: catalog, number: queries.count + 1)
                    _ = try catalog.add(query.sink)
                    queries.append(query)
                default:
                    throw PlanError("a queries file takes CREATE STREAM, CREATE TABLE and CREATE ... AS SELECT only")
                }
            } catch let error as PlanError {
                throw Refusal(statement: shown, message: error.message)
            } catch {
                throw Refusal(statement: shown, message: "\(error)")
            }
        }
        guard !queries.isEmpty else { throw Refusal(statement: "", message: "the file has no CREATE ... AS SELECT: nothing to run") }
    }
}
