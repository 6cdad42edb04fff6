import Foundation
import MeshCore
import MeshSimulator

/// A process that records what it receives and lets a test act on its host.
final class Recorder: SimProcess {
    var events: [String] = []
    var timers: [UInt64] = []
    var onStart: ((SimHost) -> Void)?
    var onEvent: ((NetEvent, SimHost) -> Void)?

    init(onStart: ((SimHost) -> Void)? = nil) { self.onStart = onStart }

    func start(on host: SimHost) { onStart?(host) }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .datagram(let from, _, let payload): events.append("dgram \(from) \(payload)")
        case .accepted(let s, let from, _): events.append("accepted \(s) from \(from)")
        case .connected(let s): events.append("connected \(s)")
        case .connectFailed(let s, let kind): events.append("failed \(s) \(kind.rawValue)")
        case .data(let s, let bytes): events.append("data \(s) \(bytes)")
        case .closed(let s): events.append("closed \(s)")
        case .reset(let s): events.append("reset \(s)")
        }
        onEvent?(event, host)
    }

    func timerFired(_ token: TimerToken, on host: SimHost) { timers.append(token.rawValue) }
}

/// Adds a host running a fresh `Recorder` per incarnation; returns the host and a way to reach the current one.
func recorderHost(_ sim: Simulation, _ name: String, listen port: Int? = nil) -> (SimHost, () -> Recorder?) {
    var current: Recorder?
    let host = sim.addHost(named: name) { _ in
        let r = Recorder { h in if let port { h.listen(port: port) } }
        current = r
        return r
    }
    return (host, { current })
}

/// The repository root, found from this file's path.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func fixture(_ relative: String) -> String { repositoryRoot + "/" + relative }

/// A deterministic network: fixed 1ms latency, no faults.
func quietNetwork() -> NetworkConfig {
    var c = NetworkConfig()
    c.latencyMin = .milliseconds(1)
    c.latencyTailMean = .zero
    return c
}

/// A mutable box for test closures that the seams require to be `@Sendable`; the simulator runs them
/// on the test's own thread.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
