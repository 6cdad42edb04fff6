import Dispatch
import Foundation

/// Suspends until SIGINT or SIGTERM.
func waitForSignal() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let once = SignalOnce(continuation)
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { once.fire() }
            source.resume()
            once.keep(source)
        }
    }
}

/// Resumes a continuation once, whichever signal comes first; keeps the signal sources alive.
final class SignalOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var sources: [any DispatchSourceSignal] = []
    init(_ c: CheckedContinuation<Void, Never>) { continuation = c }
    func keep(_ s: any DispatchSourceSignal) { lock.lock(); sources.append(s); lock.unlock() }
    func fire() {
        lock.lock()
        let c = continuation
        continuation = nil
        lock.unlock()
        c?.resume()
    }
}

/// A signal source handed to a `@Sendable` cancellation closure (cancel is thread-safe).
struct SignalSourceHandle: @unchecked Sendable {
    let source: any DispatchSourceSignal
}
