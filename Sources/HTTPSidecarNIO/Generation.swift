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
