/// A literal value written in a statement.
public enum SQLLiteral: Hashable, Sendable {
    case null
    case boolean(Bool)
    /// An integer literal that fits 64 bits.
    case integer(Int64)
    /// A number with a fraction, kept as written (exact for DECIMAL columns).
    case decimal(String)
    case string(String)
}

/// An expression of the SQL subset: column references, literals, arithmetic, comparisons, boolean
/// logic, `IS [NOT] NULL`, `[NOT] BETWEEN`, `[NOT] IN`, `[NOT] LIKE`, function calls (aggregates
/// included), `CAST`, `CASE`, subscripts (`a[1]`, `m['k']`) and struct fields (`s->f`).
public indirect enum SQLExpression: Hashable, Sendable {
    /// `name` or `source.name`.
    case column(qualifier: String?, name: String)
    case literal(SQLLiteral)
    /// `*` as an argument: `COUNT(*)`.
    case star
    case unary(SQLUnaryOperator, SQLExpression)
    case binary(SQLBinaryOperator, SQLExpression, SQLExpression)
    case isNull(SQLExpression, negated: Bool)
    case between(SQLExpression, low: SQLExpression, high: SQLExpression, negated: Bool)
    case inList(SQLExpression, [SQLExpression], negated: Bool)
    case like(SQLExpression, pattern: SQLExpression, negated: Bool)
    /// A function call, its name upper-cased; `distinct` for `COUNT(DISTINCT x)`.
    case call(name: String, arguments: [SQLExpression], distinct: Bool)
    case cast(SQLExpression, SQLType)
    /// `CASE [operand] WHEN ... THEN ... [ELSE ...] END`.
    case caseWhen(operand: SQLExpression?, branches: [SQLWhen], otherwise: SQLExpression?)
    /// `base[index]`: an array element (1-based, negative from the end) or a map value.
    case element(SQLExpression, SQLExpression)
    /// `base->field`.
    case field(SQLExpression, String)
}

/// One `WHEN condition THEN result` of a CASE.
public struct SQLWhen: Hashable, Sendable {
    public var condition: SQLExpression
    public var result: SQLExpression
    public init(_ condition: SQLExpression, _ result: SQLExpression) {
        self.condition = condition
        self.result = result
    }
}

public enum SQLUnaryOperator: String, Hashable, Sendable {
    case negate = "-"
    case plus = "+"
    case not = "NOT"
}

public enum SQLBinaryOperator: String, Hashable, Sendable {
    case or = "OR"
    case and = "AND"
    case equal = "="
    case notEqual = "<>"
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case add = "+"
    case subtract = "-"
    case multiply = "*"
    case divide = "/"
    case modulo = "%"
    case concat = "||"
}
