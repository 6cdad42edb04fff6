/// A retry budget: retries may add at most `ratio` of the recent request volume, plus a floor of
/// `minRetriesPerSecond`, so retries cannot amplify an outage (linkerd2/Envoy style).
///
/// Sans-IO: the caller passes `now`. Requests deposit `ratio` tokens, a retry withdraws one token;
/// deposits expire after `window`, so a burst long ago does not fund retries today.
public struct RetryBudget: Sendable {
    public var ratio: Double
    public var minRetriesPerSecond: Double
    public var window: Duration

    /// Deposits per time slot; the window is split into `slots` slots.
    private var slotDeposits: [Double]
    private var slotStart: [Int64]
    private var withdrawn: [Double]
    private let slotNanos: Int64

    public init(ratio: Double = 0.2, minRetriesPerSecond: Double = 10, window: Duration = .seconds(10), slots: Int = 10) {
        precondition(ratio >= 0 && minRetriesPerSecond >= 0 && slots > 0)
        self.ratio = ratio
        self.minRetriesPerSecond = minRetriesPerSecond
        self.window = window
        self.slotDeposits = Array(repeating: 0, count: slots)
        self.slotStart = Array(repeating: Int64.min, count: slots)
        self.withdrawn = Array(repeating: 0, count: slots)
        self.slotNanos = max(1, window.nanoseconds / Int64(slots))
    }

    /// Records an original (non-retry) request.
    public mutating func recordRequest(now: MeshInstant) {
        let i = slot(now)
        slotDeposits[i] += ratio
    }

    /// Withdraws one retry if the budget allows it; returns whether the retry may go ahead.
    public mutating func tryRetry(now: MeshInstant) -> Bool {
        guard available(now: now) >= 1 else { return false }
        withdrawn[slot(now)] += 1
        return true
    }

    /// Retries currently available.
    public mutating func available(now: MeshInstant) -> Double {
        _ = slot(now)
        let floor = minRetriesPerSecond * window.seconds
        var deposits = 0.0, spent = 0.0
        for i in slotDeposits.indices where isLive(i, now) {
            deposits += slotDeposits[i]
            spent += withdrawn[i]
        }
        return deposits + floor - spent
    }

    private func isLive(_ i: Int, _ now: MeshInstant) -> Bool {
        slotStart[i] != Int64.min && now.nanoseconds - slotStart[i] < window.nanoseconds
    }

    private mutating func slot(_ now: MeshInstant) -> Int {
        let index = Int((now.nanoseconds / slotNanos) % Int64(slotDeposits.count))
        let start = now.nanoseconds - now.nanoseconds % slotNanos
        if slotStart[index] != start {
            slotStart[index] = start
            slotDeposits[index] = 0
            withdrawn[index] = 0
        }
        return index
    }
}
