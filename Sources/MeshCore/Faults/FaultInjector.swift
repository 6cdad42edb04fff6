/// A named place in product code where the simulator may inject a fault ("buggify").
///
/// Declare sites as static constants so their names are stable: the name identifies the site in logs,
/// in the coverage table and in the per-run decision of whether the site is enabled.
public struct FaultSite: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }
}

/// Seam: decides whether a fault site fires.
///
/// Contract:
/// - Production uses ``InertFaults``: `fires` is always `false`, costs one predictable branch, and has no
///   side effects; product behaviour with it is exactly the behaviour without fault points.
/// - The simulator activates sites in two levels: once per run a site is *enabled* with some
///   probability (so most runs exercise only a few sites, FoundationDB-style), then each call on an
///   enabled site fires with some probability. Both draws come from the run's seed.
/// - A site must only make behaviour *worse in a legal way* (slower, dropped, retried, failed with a
///   typed error): never something the real world could not do.
public protocol FaultInjector: AnyObject, Sendable {
    /// Whether the fault at `site` fires now.
    func fires(_ site: FaultSite) -> Bool
}

/// The production fault injector: nothing ever fires.
public final class InertFaults: FaultInjector {
    public static let shared = InertFaults()
    public init() {}
    @inline(__always) public func fires(_ site: FaultSite) -> Bool { false }
}
