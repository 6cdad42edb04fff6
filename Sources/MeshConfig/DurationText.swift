import Foundation
import MeshCore

/// Parses durations written in scenarios and configuration: `250us`, `10ms`, `2s`, `1m`, `1500ns`.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let value = Double(t.dropLast(suffix.count)), value >= 0, value.isFinite else { return nil }
            return .nanoseconds(Int64(value * scale))
        }
        return nil
    }

    /// `d` as the files write it, in the largest unit that keeps it whole (`10s`, `250ms`, `1500ns`):
    /// ``parse(_:)`` reads it back to the same value.
    public static func format(_ d: Duration) -> String {
        let ns = d.nanoseconds
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}
