import MeshCore

/// A history of client operations, Jepsen-style: each is invoked, then ends ok, failed (definitely
/// not applied) or unknown (may or may not have taken effect). Checkers read it at the end of a run.
public final class History {
    public enum Outcome: Hashable, Sendable {
        case pending
        case ok(String)
        case failed(String)
        case unknown(String)
    }

    public struct Operation: Hashable, Sendable {
        public var id: Int
        public var process: String
        public var name: String
        public var argument: String
        public var invoked: MeshInstant
        public var deadline: MeshInstant?
        public var completed: MeshInstant?
        public var outcome: Outcome
        /// When the answer began to reach the client (its head), for operations whose answer
        /// streams: a deadline promise about the answer's start is judged by this, not by when a
        /// long body ended or was cut off (by a fault, or by the client's own crash).
        public var answerBegan: MeshInstant? = nil
    }

    public private(set) var operations: [Operation] = []

    init() {}

    /// Records an invocation and returns its id.
    public func invoke(process: String, _ name: String, _ argument: String, at time: MeshInstant, deadline: MeshInstant? = nil) -> Int {
        operations.append(Operation(id: operations.count, process: process, name: name, argument: argument, invoked: time, deadline: deadline, completed: nil, outcome: .pending))
        return operations.count - 1
    }

    /// Records the end of operation `id`. Returns `false` if it had already ended (a double completion).
    @discardableResult
    public func complete(_ id: Int, _ outcome: Outcome, at time: MeshInstant) -> Bool {
        guard operations[id].outcome == .pending else { return false }
        operations[id].outcome = outcome
        operations[id].completed = time
        return true
    }

    /// Records that operation `id`'s answer began to arrive (only the first time, while it is pending).
    public func answerBegan(_ id: Int, at time: MeshInstant) {
        guard operations[id].outcome == .pending, operations[id].answerBegan == nil else { return }
        operations[id].answerBegan = time
    }

    /// Marks every pending operation of `process` as unknown (its client crashed).
    public func abandon(process: String, at time: MeshInstant) {
        for i in operations.indices where operations[i].process == process && operations[i].outcome == .pending {
            operations[i].outcome = .unknown("client crashed")
            operations[i].completed = time
        }
    }
}
