import Dispatch
import MeshCore
import Synchronization
import Testing

@Suite struct SystemClockTests {
    @Test func timersFireOnceAndCancelledOnesNever() {
        let clock = SystemClock()
        let fired = Mutex<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        let start = clock.now
        let cancelled = clock.schedule(after: .milliseconds(5)) { fired.withLock { $0.append(1) } }
        clock.schedule(after: .milliseconds(20)) {
            fired.withLock { $0.append(2) }
            done.signal()
        }
        clock.cancel(cancelled)
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(fired.withLock { $0 } == [2])
        #expect(clock.now - start >= .milliseconds(20))
    }
}
