import MeshCore

/// How the simulated network behaves when no fault is active, plus the rates of the always-on faults.
public struct NetworkConfig: Hashable, Sendable {
    /// Every message takes at least this long.
    public var latencyMin: Duration = .microseconds(500)
    /// Mean of the exponential tail added to `latencyMin`.
    public var latencyTailMean: Duration = .milliseconds(2)
    /// Probability that a datagram is lost (a stream segment is retransmitted instead, after `retransmitDelay`).
    public var loss: Double = 0
    /// Probability that a datagram is delivered twice.
    public var duplicate: Double = 0
    /// Probability that a message takes an extra detour of up to `reorderDelay`, overtaking later ones.
    public var reorder: Double = 0
    public var reorderDelay: Duration = .milliseconds(20)
    /// Most datagrams in flight per directed link; more are dropped (0 = unbounded).
    public var capacity: Int = 0
    /// The delay a lost stream segment adds (a TCP retransmission timeout).
    public var retransmitDelay: Duration = .milliseconds(200)
    public init() {}
}
