import MeshCore

/// How the pool picks an endpoint among the available ones.
public enum LoadBalancingPolicy: String, Hashable, Sendable, CaseIterable {
    /// Next endpoint in turn.
    case roundRobin = "round-robin"
    /// Power of two choices: two random endpoints, the one with fewer requests in flight.
    case leastRequest = "least-request"
    /// Power of two choices on peak-EWMA latency × (in-flight + 1), linkerd-style. The default: it
    /// steers away from an endpoint as soon as it slows down or queues, at O(1) cost per pick, and
    /// needs no coordination between sidecars.
    case peakEWMA = "peak-ewma"
}

/// Latency estimate that jumps up at once on a slow response and decays slowly (peak EWMA).
public struct PeakEWMA: Hashable, Sendable {
    /// How fast the estimate forgets: after `decay` it has moved ~63% towards new samples.
    public var decay: Duration = .seconds(10)
    public private(set) var nanoseconds: Double
    public private(set) var stamp: MeshInstant

    public init(initial: Duration = .milliseconds(10), now: MeshInstant = .zero) {
        nanoseconds = Double(initial.nanoseconds)
        stamp = now
    }

    public mutating func observe(_ latency: Duration, now: MeshInstant) {
        let sample = Double(latency.nanoseconds)
        if sample > nanoseconds {
            nanoseconds = sample
        } else {
            let elapsed = max(0, Double((now - stamp).nanoseconds))
            let w = exp(-elapsed / Double(decay.nanoseconds))
            nanoseconds = nanoseconds * w + sample * (1 - w)
        }
        stamp = now
    }
}

import Foundation
