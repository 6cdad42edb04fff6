import MeshCore

/// A keyed rate limiter using the generic cell rate algorithm (GCRA), sans-IO.
///
/// Each key admits `rate` requests per second on average with bursts of up to `burst`; over any
/// window of length W it admits at most `rate × W + burst`. One timestamp per key (the theoretical
/// arrival time), no timers, no background refill.
public struct RateLimiter: Sendable {
    public struct Config: Hashable, Sendable {
        /// Requests per second.
        public var rate: Double
        /// Requests admitted at once after a quiet period.
        public var burst: Int
        /// Keys tracked at most; the idle ones are dropped first (they would be admitted anyway).
        public var maxKeys = 100_000
        /// Seeds the key hash, so a client cannot choose keys that collide with another's. Fixed
        /// (0) in the simulator for determinism; production draws one at start.
        public var hashSeed: UInt64 = 0
        public init(rate: Double, burst: Int) {
            precondition(rate > 0 && burst >= 1, "rate must be positive and burst at least 1")
            self.rate = rate
            self.burst = burst
        }
    }

    /// The verdict, with what the `RateLimit-*` and `Retry-After` headers report.
    public struct Decision: Hashable, Sendable {
        public var allowed: Bool
        /// `RateLimit-Limit`: the burst.
        public var limit: Int
        /// `RateLimit-Remaining`: requests that would still be admitted right now.
        public var remaining: Int
        /// `RateLimit-Reset`: until the key is back to a full burst.
        public var reset: Duration
        /// `Retry-After` when refused: until the next request would be admitted.
        public var retryAfter: Duration?
    }

    public let config: Config
    private var tat: [UInt64: Int64] = [:]
    /// Tracked keys in the order they were first seen; `oldest` is the next to go when full.
    private var ring: [UInt64] = []
    private var oldest = 0
    /// Keys dropped to make room while they were still being limited.
    public private(set) var evictedWhileLimited = 0
    private let interval: Int64
    private let tolerance: Int64

    public init(_ config: Config) {
        self.config = config
        interval = Int64((1e9 / config.rate).rounded(.up))
        // ci/mutants: rate-limit-extra-burst, ingress-rate-extra-burst (the next line)
        tolerance = interval * Int64(config.burst - 1)
    }

    public var trackedKeys: Int { tat.count }

    /// Decides one request for `key` at `now`.
    public mutating func admit(_ key: String, now: MeshInstant) -> Decision {
        admit(hash: Self.hash(key, seed: config.hashSeed), now: now)
    }

    /// Decides one request for a key already hashed with ``hash(_:seed:)``.
    public mutating func admit(hash key: UInt64, now: MeshInstant) -> Decision {
        let t = now.nanoseconds
        let current = max(tat[key] ?? t, t)
        let allowAt = current - tolerance
        if t < allowAt {
            return Decision(allowed: false, limit: config.burst, remaining: 0,
                            reset: .nanoseconds(current - t), retryAfter: .nanoseconds(allowAt - t))
        }
        let next = current + interval
        if tat[key] == nil { track(key, now: t) }
        tat[key] = next
        let remaining = Int((t - (next - tolerance - interval)) / interval)
        return Decision(allowed: true, limit: config.burst, remaining: max(0, min(config.burst, remaining)),
                        reset: .nanoseconds(next - t), retryAfter: nil)
    }

    /// Makes room for a new key: below the bound it is appended to the ring; at the bound it takes
    /// the place of the oldest key, which is forgotten.
    private mutating func track(_ key: UInt64, now: Int64) {
        if ring.count < max(1, config.maxKeys) {
            ring.append(key)
            return
        }
        let victim = ring[oldest]
        if let v = tat.removeValue(forKey: victim), v - tolerance > now { evictedWhileLimited += 1 }
        ring[oldest] = key
        oldest = (oldest + 1) % ring.count
    }

    /// FNV-1a over the seed and the key's bytes, then a final mix (64 bits).
    public static func hash(_ key: String, seed: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in key.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01B3
        }
        h ^= h >> 33
        h &*= 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        return h
    }
}

/// What a rate limit counts requests by.
public enum RateLimitKey: Hashable, Sendable, CustomStringConvertible {
    /// The connection's peer address (the default).
    case clientAddress
    /// The value of a request header (an API key, a tenant id); requests without it share one bucket
    /// per client address.
    case header(String)
    /// The verified JWT's `sub` (or `client_id` when there is no subject); needs JWT verification.
    case jwtSubject

    public init?(text: String) {
        switch text {
        case "client", "client_address": self = .clientAddress
        case "jwt_subject", "jwt": self = .jwtSubject
        case _ where text.hasPrefix("header:") && text.count > 7: self = .header(String(text.dropFirst(7)).lowercased())
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .clientAddress: "client_address"
        case .header(let name): "header:\(name)"
        case .jwtSubject: "jwt_subject"
        }
    }
}
