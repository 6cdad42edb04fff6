/// `sometimes` / `reachable` assertions: places and conditions a run is *expected* to reach across a
/// swarm, counted per run. A swarm reports which were never hit, which is how we learn that a fault
/// or a code path is not being exercised at all.
public final class Coverage {
    private var hits: [String: Int] = [:]

    init() {}

    /// Counts one hit of `name`.
    public func hit(_ name: String) { hits[name, default: 0] += 1 }

    /// Counts a hit of `name` when `condition` holds (Antithesis-style `sometimes`).
    public func sometimes(_ condition: Bool, _ name: String) {
        if condition { hit(name) }
    }

    /// Marks `name` as reached (a `reachable` assertion).
    public func reachable(_ name: String) { hit(name) }

    /// Hits of every name, sorted by name.
    public var counts: [(name: String, hits: Int)] {
        hits.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    public func count(_ name: String) -> Int { hits[name] ?? 0 }
}
