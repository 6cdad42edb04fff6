import Foundation
import MeshCore

/// The faults one run injects, and at what rates. Printed on one line with every run so a failure can
/// be replayed exactly; ``init(line:)`` parses that line back.
public struct FaultProfile: Hashable, Sendable, CustomStringConvertible {
    /// A fault that strikes every `every` on average (exponentially distributed) and lasts about `length`.
    public struct Periodic: Hashable, Sendable {
        public var every: Duration
        public var length: Duration
        public init(every: Duration, length: Duration) {
            self.every = every
            self.length = length
        }
    }

    public var loss = 0.0
    public var duplicate = 0.0
    public var reorder = 0.0
    /// Host crashes; `length` is the downtime before restart.
    public var crash: Periodic?
    /// Random one- or two-way network partitions.
    public var partition: Periodic?
    /// A host's traffic delayed in both directions.
    public var clog: Periodic?
    /// In-flight messages to a host held back, then released together (reordering them).
    public var hold: Periodic?
    /// All latencies multiplied by `spikeFactor`.
    public var latencySpike: Periodic?
    public var spikeFactor = 10.0
    /// Buggify: per-site enable probability, and per-call fire probability; `nil` is off.
    public var buggifyEnable: Double?
    public var buggifyFire = 0.05

    public init() {}

    /// Fault kinds that are on, by name (the names used in coverage as `fault.NAME`).
    public var enabledKinds: [String] {
        var kinds: [String] = []
        if loss > 0 { kinds.append("loss") }
        if duplicate > 0 { kinds.append("duplicate") }
        if reorder > 0 { kinds.append("reorder") }
        if crash != nil { kinds.append("crash") }
        if partition != nil { kinds.append("partition") }
        if clog != nil { kinds.append("clog") }
        if hold != nil { kinds.append("hold") }
        if latencySpike != nil { kinds.append("latency-spike") }
        if buggifyEnable != nil { kinds.append("buggify") }
        return kinds
    }

    public var description: String {
        func rate(_ v: Double) -> String { String(format: "%.4f", v) }
        func periodic(_ p: Periodic?) -> String {
            guard let p else { return "off" }
            return "\(p.every.nanoseconds / 1_000_000)ms/\(p.length.nanoseconds / 1_000_000)ms"
        }
        var parts = [
            "loss=\(rate(loss))", "dup=\(rate(duplicate))", "reorder=\(rate(reorder))",
            "crash=\(periodic(crash))", "partition=\(periodic(partition))", "clog=\(periodic(clog))",
            "hold=\(periodic(hold))", "spike=\(periodic(latencySpike))",
        ]
        if latencySpike != nil { parts.append("spike-factor=\(rate(spikeFactor))") }
        parts.append(buggifyEnable.map { "buggify=\(rate($0))/\(rate(buggifyFire))" } ?? "buggify=off")
        return parts.joined(separator: " ")
    }

    /// Parses a line printed by ``description``.
    public init(line: String) throws {
        self.init()
        for field in line.split(separator: " ") {
            let kv = field.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw ProfileError(field: String(field)) }
            let (key, value) = (kv[0], kv[1])
            func number(_ s: String) throws -> Double {
                guard let v = Double(s) else { throw ProfileError(field: String(field)) }
                return v
            }
            func periodic(_ s: String) throws -> Periodic? {
                if s == "off" { return nil }
                let ms = s.split(separator: "/").map { $0.hasSuffix("ms") ? Int64($0.dropLast(2)) : nil }
                guard ms.count == 2, let every = ms[0], let length = ms[1] else { throw ProfileError(field: String(field)) }
                return Periodic(every: .milliseconds(every), length: .milliseconds(length))
            }
            switch key {
            case "loss": loss = try number(value)
            case "dup": duplicate = try number(value)
            case "reorder": reorder = try number(value)
            case "crash": crash = try periodic(value)
            case "partition": partition = try periodic(value)
            case "clog": clog = try periodic(value)
            case "hold": hold = try periodic(value)
            case "spike": latencySpike = try periodic(value)
            case "spike-factor": spikeFactor = try number(value)
            case "buggify":
                if value == "off" {
                    buggifyEnable = nil
                } else {
                    let pair = value.split(separator: "/").map(String.init)
                    guard pair.count == 2 else { throw ProfileError(field: String(field)) }
                    buggifyEnable = try number(pair[0])
                    buggifyFire = try number(pair[1])
                }
            default: throw ProfileError(field: String(field))
            }
        }
    }

    public struct ProfileError: Error, CustomStringConvertible {
        public var field: String
        public var description: String { "cannot read fault profile field '\(field)'" }
    }
}

/// Ranges a swarm draws fault profiles from: for each kind, the probability that a run enables it,
/// and the range its rate, period or length is drawn from.
public struct FaultRanges: Hashable, Sendable {
    public struct Rate: Hashable, Sendable {
        public var probability: Double
        public var low: Double
        public var high: Double
        public init(probability: Double, low: Double, high: Double) {
            self.probability = probability
            self.low = low
            self.high = high
        }
    }
    public struct Periodic: Hashable, Sendable {
        public var probability: Double
        public var every: ClosedRange<Duration>
        public var length: ClosedRange<Duration>
        public init(probability: Double, every: ClosedRange<Duration>, length: ClosedRange<Duration>) {
            self.probability = probability
            self.every = every
            self.length = length
        }
    }

    public var loss: Rate?
    public var duplicate: Rate?
    public var reorder: Rate?
    public var crash: Periodic?
    public var partition: Periodic?
    public var clog: Periodic?
    public var hold: Periodic?
    public var latencySpike: Periodic?
    public var spikeFactor: Rate?
    /// Probability buggify is on, and the range of its per-call fire probability.
    public var buggify: Rate?
    /// Per-site enable probability when buggify is on.
    public var buggifyEnable = 0.25

    public init() {}

    /// Draws the profile for `seed`. Same seed, same profile.
    public func draw(seed: UInt64) -> FaultProfile {
        var random = SeededRandom(seed: seed).split(named: "profile")
        func rounded(_ v: Double) -> Double { (v * 10_000).rounded() / 10_000 }
        func rate(_ r: Rate?) -> Double {
            guard let r, random.chance(r.probability) else { return 0 }
            return rounded(r.low + (r.high - r.low) * random.nextUnit())
        }
        func ms(_ range: ClosedRange<Duration>) -> Duration {
            let lo = Double(range.lowerBound.nanoseconds), hi = Double(range.upperBound.nanoseconds)
            return .milliseconds(Int64((lo + (hi - lo) * random.nextUnit()) / 1_000_000))
        }
        func periodic(_ p: Periodic?) -> FaultProfile.Periodic? {
            guard let p, random.chance(p.probability) else { return nil }
            return FaultProfile.Periodic(every: max(.milliseconds(1), ms(p.every)), length: ms(p.length))
        }
        var profile = FaultProfile()
        profile.loss = rate(loss)
        profile.duplicate = rate(duplicate)
        profile.reorder = rate(reorder)
        profile.crash = periodic(crash)
        profile.partition = periodic(partition)
        profile.clog = periodic(clog)
        profile.hold = periodic(hold)
        profile.latencySpike = periodic(latencySpike)
        if profile.latencySpike != nil, let spikeFactor {
            profile.spikeFactor = rounded(spikeFactor.low + (spikeFactor.high - spikeFactor.low) * random.nextUnit())
        }
        if let buggify, random.chance(buggify.probability) {
            profile.buggifyEnable = buggifyEnable
            profile.buggifyFire = rounded(buggify.low + (buggify.high - buggify.low) * random.nextUnit())
        }
        return profile
    }
}
