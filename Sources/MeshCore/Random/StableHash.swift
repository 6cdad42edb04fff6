/// FNV-1a, 64-bit: a hash that is the same in every process and build (unlike `Hasher`, which is
/// randomly seeded per process). Used for sub-stream seeds, fault-site identities and event-log hashes.
public enum StableHash {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    /// Hashes the UTF-8 bytes of `string`, starting from `seed`.
    public static func fnv1a(_ string: String, seed: UInt64 = offsetBasis) -> UInt64 {
        var h = seed
        for byte in string.utf8 { h = (h ^ UInt64(byte)) &* prime }
        return h
    }

    /// Folds a 64-bit word into `hash` (one multiply-xorshift round per word: FNV-style, word-wise).
    @inlinable public static func fold(_ hash: inout UInt64, _ value: UInt64) {
        var h = (hash ^ value) &* prime
        h ^= h >> 32
        hash = h
    }
}
