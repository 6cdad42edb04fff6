import MeshCore
import Testing

@Suite struct ResilienceTests {
    @Test func backoffGrowsAndIsCapped() {
        let b = ExponentialBackoff(initial: .milliseconds(10), maximum: .milliseconds(100))
        var r = SeededRandom(seed: 3)
        for retry in 0..<12 {
            let cap = min(100_000_000, 10_000_000 * (1 << retry))
            for _ in 0..<50 {
                let d = b.delay(forRetry: retry, using: &r).nanoseconds
                #expect(d >= Int64(cap / 2) && d <= Int64(cap), "retry \(retry): \(d) outside [\(cap / 2), \(cap)]")
            }
        }
    }

    @Test func budgetAllowsTheFloorThenRefuses() {
        var budget = RetryBudget(ratio: 0, minRetriesPerSecond: 5, window: .seconds(1))
        let t = MeshInstant(nanoseconds: 1_000_000_000)
        let granted = (0..<20).filter { _ in budget.tryRetry(now: t) }.count
        #expect(granted == 5)
    }

    @Test func budgetGrowsWithRequestsAndForgetsOldOnes() {
        var budget = RetryBudget(ratio: 0.5, minRetriesPerSecond: 0, window: .seconds(1))
        let t0 = MeshInstant(nanoseconds: 5_000_000_000)
        for _ in 0..<10 { budget.recordRequest(now: t0) }
        let granted = (0..<10).filter { _ in budget.tryRetry(now: t0) }.count
        #expect(granted == 5)
        // Deposits older than the window no longer fund retries.
        var fresh = RetryBudget(ratio: 0.5, minRetriesPerSecond: 0, window: .seconds(1))
        for _ in 0..<10 { fresh.recordRequest(now: t0) }
        let late = fresh.tryRetry(now: t0 + .seconds(2))
        #expect(!late)
    }
}
