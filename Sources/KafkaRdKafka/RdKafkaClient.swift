import CRdKafka
import Foundation
import MeshCore
import Synchronization

/// One `rd_kafka_t`, shared by a client's threads, that is never used after it is destroyed.
///
/// Every call into librdkafka goes through ``use(_:)``, which holds the handle open for the call;
/// ``close(_:)`` refuses new uses at once, waits for the uses in progress to end, runs the caller's
/// shutdown steps and only then destroys the handle. Asynchronous work therefore captures this
/// object (never the raw pointer), and a call that arrives after close fails with `client_closed`
/// instead of touching freed memory.
final class RdKafkaClient: @unchecked Sendable {
    /// Lifecycle: `open` → `closing` (no new uses; shutdown steps and draining uses) → `destroyed`.
    private enum Phase { case open, closing, destroyed }

    private struct State {
        var phase = Phase.open
        var users = 0
    }

    private let pointer: OpaquePointer
    private let state = Mutex(State())
    /// Logging, statistics and callback state; it outlives the handle.
    let context: RdKafkaClientContext

    init(_ pointer: OpaquePointer, context: RdKafkaClientContext) {
        self.pointer = pointer
        self.context = context
    }

    /// The handle for a librdkafka callback, which only runs while the handle is alive.
    var callbackHandle: OpaquePointer { pointer }

    var isOpen: Bool { state.withLock { $0.phase == .open } }

    /// Runs `body` with the handle held open, or fails with `client_closed` once close has begun.
    func use<R>(_ what: @autoclosure () -> String, _ body: (OpaquePointer) throws(KafkaError) -> R) throws(KafkaError) -> R {
        let admitted = state.withLock { s -> Bool in
            guard s.phase == .open else { return false }
            s.users += 1
            return true
        }
        guard admitted else { throw KafkaError.clientClosed(what()) }
        defer { state.withLock { $0.users -= 1 } }
        return try body(pointer)
    }

    /// Like ``use(_:_:)`` for calls with nothing to report when the client is closed.
    func ifOpen(_ body: (OpaquePointer) -> Void) {
        try? use("") { (rk: OpaquePointer) throws(KafkaError) in body(rk) }
    }

    /// Begins closing: refuses new uses, waits for the uses in progress, runs `shutdown` (which
    /// still calls librdkafka on the handle: flush, leave the group), then destroys the handle.
    /// Only the first call closes; later ones return `false` at once.
    @discardableResult
    func close(_ shutdown: (OpaquePointer) -> Void = { _ in }) -> Bool {
        let first = state.withLock { s -> Bool in
            guard s.phase == .open else { return false }
            s.phase = .closing
            return true
        }
        guard first else { return false }
        while state.withLock({ $0.users }) > 0 { usleep(1_000) }
        shutdown(pointer)
        rd_kafka_destroy(pointer)
        state.withLock { $0.phase = .destroyed }
        return true
    }
}

extension KafkaError {
    static func clientClosed(_ what: String) -> KafkaError {
        KafkaError(code: "client_closed", message: what.isEmpty ? "the client is closed" : "\(what): the client is closed")
    }
}
