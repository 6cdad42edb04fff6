/// Seam: the source of randomness for all product code (jitter, load-balancer choices, sampling).
///
/// Contract: a `RandomSource` is a `RandomNumberGenerator`; product code draws only from the source it
/// was given, never from `SystemRandomNumberGenerator` directly. The simulator hands each subsystem its
/// own seeded sub-stream (see ``SeededRandom/split(named:)``), so a new draw in one subsystem does not
/// shift the draws of another, and the same seed replays the same run.
public protocol RandomSource: RandomNumberGenerator {}

extension RandomSource {
    /// A uniform draw in `[0, 1)`.
    @inlinable public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    @inlinable public mutating func chance(_ p: Double) -> Bool {
        if p <= 0 { return false }
        if p >= 1 { return true }
        return nextUnit() < p
    }
}

/// Production randomness from the operating system.
public struct SystemRandom: RandomSource {
    private var base = SystemRandomNumberGenerator()
    public init() {}
    public mutating func next() -> UInt64 { base.next() }
}

/// A fast, seedable generator (xoshiro256**), seeded through SplitMix64.
///
/// Same seed, same sequence, on every platform and in every process.
public struct SeededRandom: RandomSource, Sendable {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// The seed this generator was created from.
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        var sm = seed
        s0 = SeededRandom.splitMix(&sm)
        s1 = SeededRandom.splitMix(&sm)
        s2 = SeededRandom.splitMix(&sm)
        s3 = SeededRandom.splitMix(&sm)
    }

    @inlinable public mutating func next() -> UInt64 {
        let result = (s1 &* 5).rotatedLeft(7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3.rotatedLeft(45)
        return result
    }

    /// An independent generator for the sub-stream called `name`.
    ///
    /// It depends only on this generator's seed and the name, not on how many values were drawn,
    /// so adding draws to one sub-stream never shifts another.
    public func split(named name: String) -> SeededRandom {
        SeededRandom(seed: StableHash.fnv1a(name, seed: seed ^ 0x9E37_79B9_7F4A_7C15))
    }

    static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension UInt64 {
    @inlinable func rotatedLeft(_ k: UInt64) -> UInt64 { (self << k) | (self >> (64 - k)) }
}
