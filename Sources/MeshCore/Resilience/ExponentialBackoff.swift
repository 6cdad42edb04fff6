/// Exponential backoff with "equal jitter": attempt *n* waits a random time in
/// `[cap_n / 2, cap_n]` where `cap_n = min(maximum, initial * multiplier^n)`.
///
/// Half the delay is guaranteed (so retries really back off under load) and half is random (so a
/// fleet of clients does not retry in lockstep).
public struct ExponentialBackoff: Hashable, Sendable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double

    public init(initial: Duration = .milliseconds(25), maximum: Duration = .seconds(2), multiplier: Double = 2) {
        precondition(initial > .zero && maximum >= initial && multiplier >= 1, "invalid backoff")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
    }

    /// The delay before retry number `retry` (0 for the first retry).
    public func delay(forRetry retry: Int, using random: inout some RandomSource) -> Duration {
        let growth = Double.pow(multiplier, Double(min(retry, 62)))
        let capNanos = min(Double(maximum.nanoseconds), Double(initial.nanoseconds) * growth)
        let half = capNanos / 2
        return .nanoseconds(Int64(half + half * random.nextUnit()))
    }
}

extension Double {
    @usableFromInline static func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var n = Int(exponent)
        var b = base
        while n > 0 {
            if n & 1 == 1 { result *= b }
            b *= b
            n >>= 1
        }
        return result
    }
}
