import HTTPClientNIO
import HTTPSidecarEngines
import NIOConcurrencyHelpers

/// The configuration generation a listener runs on now. Connections read ``current`` at the start
/// of each request; a reload swaps in the next generation, so requests already running finish on
/// the one they started with and no connection is dropped.
final class Generation<Shared: Sendable>: Sendable {
    private let box: NIOLockedValueBox<Shared>
    init(_ first: Shared) { box = NIOLockedValueBox(first) }
    var current: Shared { box.withLockedValue { $0 } }
    func replace(_ next: Shared) { box.withLockedValue { $0 = next } }
}

/// A listener's next configuration generation, built and checked but not yet applied.
public struct PreparedReload: Sendable {
    /// What the reload cannot change without a restart.
    public let warnings: [String]
    private let apply: @Sendable () -> Void

    init(warnings: [String], apply: @escaping @Sendable () -> Void) {
        self.warnings = warnings
        self.apply = apply
    }

    /// Swaps the new generation in.
    public func commit() { apply() }
}
