/// A point on a monotonic timeline, in nanoseconds from an arbitrary origin.
///
/// Production clocks count from process start; the simulator counts from zero at the start of a run.
/// Instants from different clocks must never be compared.
public struct MeshInstant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: Int64

    @inlinable public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// The clock's origin.
    public static let zero = MeshInstant(nanoseconds: 0)

    @inlinable public static func < (a: MeshInstant, b: MeshInstant) -> Bool { a.nanoseconds < b.nanoseconds }

    @inlinable public static func + (a: MeshInstant, d: Duration) -> MeshInstant {
        MeshInstant(nanoseconds: a.nanoseconds &+ d.nanoseconds)
    }

    @inlinable public static func - (a: MeshInstant, d: Duration) -> MeshInstant {
        MeshInstant(nanoseconds: a.nanoseconds &- d.nanoseconds)
    }

    /// The duration from `b` to `a`.
    @inlinable public static func - (a: MeshInstant, b: MeshInstant) -> Duration {
        .nanoseconds(a.nanoseconds &- b.nanoseconds)
    }

    public var description: String {
        let ms = Double(nanoseconds) / 1_000_000
        return "\(ms)ms"
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64.max`.
    @inlinable public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (mul, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        return mul &+ attoseconds / 1_000_000_000
    }

    /// The duration in seconds as a `Double`, for rates and reports.
    @inlinable public var seconds: Double { Double(nanoseconds) / 1e9 }
}
