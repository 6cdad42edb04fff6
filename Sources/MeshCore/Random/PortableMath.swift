/// Logarithms and exponential draws computed only with IEEE-754 basic operations (+, −, ×, ÷ and
/// exact scaling), which every platform rounds identically, instead of the C maths library, whose
/// `log`/`log1p` differ in the last bit between libm implementations. A simulation seed therefore
/// draws the same latencies and fault times on Linux and macOS.
public enum PortableMath {
    /// The natural logarithm of a positive, finite `x`: `x = m·2ᵉ` with `m` in [√½, √2), then
    /// `ln m = 2·atanh(s)`, `s = (m − 1)/(m + 1)`, as a fixed 20-term odd series (|s| < 0.172, so the
    /// last term is below 2⁻¹⁰⁰), summed from the smallest term up in one fixed order.
    public static func log(_ x: Double) -> Double {
        precondition(x > 0 && x.isFinite, "PortableMath.log takes a positive finite value")
        var m = x.significand  // [1, 2), exact
        var e = Double(Int(x.exponent))
        if m > 1.4142135623730951 {
            m *= 0.5  // exact
            e += 1
        }
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        var sum = 0.0
        var k = 39.0
        while k >= 1 {
            sum = sum * s2 + 1 / k
            k -= 2
        }
        return e * ln2 + 2 * s * sum
    }

    /// ln 2, correctly rounded.
    public static let ln2 = 0.6931471805599453

    /// A draw from the exponential distribution with this `mean`, given a uniform `unit` in [0, 1).
    public static func exponential(mean: Double, unit: Double) -> Double {
        -mean * log(1 - unit)  // 1 − unit is exact and in (0, 1]
    }
}

extension RandomSource {
    /// An exponentially distributed draw with this `mean`, the same on every platform.
    @inlinable public mutating func nextExponential(mean: Double) -> Double {
        PortableMath.exponential(mean: mean, unit: nextUnit())
    }
}
