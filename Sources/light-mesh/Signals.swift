import Dispatch
import Foundation

/// Suspends until SIGINT or SIGTERM (listening from the call on; see ``ShutdownSignal``).
func waitForSignal() async {
    await ShutdownSignal().wait()
}

/// A signal source handed to a `@Sendable` cancellation closure (cancel is thread-safe).
struct SignalSourceHandle: @unchecked Sendable {
    let source: any DispatchSourceSignal
}

/// Listens for SIGINT and SIGTERM from the moment it is made; ``wait()`` returns once one came,
/// even one that came before the wait. A command makes it before it says it is ready, so a signal
/// sent right after that line is not lost.
///
/// A process-wide handler writes a byte to a pipe, and a thread reading the pipe wakes the waiter.
/// (A dispatch signal source sets the signal to ignored and reads it on one thread; a signal the
/// kernel hands to another thread, such as an event loop's, is then discarded.)
final class ShutdownSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    private var continuation: CheckedContinuation<Void, Never>?

    init() {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fatalError("no pipe for signals: errno \(errno)") }
        shutdownSignalPipe = fds[1]
        for sig in [SIGINT, SIGTERM] { signal(sig, onShutdownSignal) }
        let readEnd = fds[0]
        let thread = Thread { [self] in
            var byte: UInt8 = 0
            while read(readEnd, &byte, 1) < 0 && errno == EINTR {}
            fire()
        }
        thread.start()
    }

    private func fire() {
        lock.lock()
        fired = true
        let c = continuation
        continuation = nil
        lock.unlock()
        c?.resume()
    }

    /// Suspends until SIGINT or SIGTERM came.
    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if fired {
                lock.unlock()
                c.resume()
            } else {
                continuation = c
                lock.unlock()
            }
        }
    }
}

/// The write end of the signal pipe (set once, before the handler is installed).
nonisolated(unsafe) private var shutdownSignalPipe: Int32 = -1

/// The handler: async-signal-safe, it only writes a byte.
private func onShutdownSignal(_: Int32) {
    var byte: UInt8 = 1
    _ = write(shutdownSignalPipe, &byte, 1)
}
