import HTTPSidecar
import MeshCore
import MeshSimulator

/// Settings of the egress workload: apps that call upstream services through the sidecar's egress
/// decision code (``UpstreamPool``) over simulated connections.
public struct HTTPEgressConfig: Hashable, Sendable {
    public var concurrency = 4
    public var thinkTime: Duration = .milliseconds(5)
    public var attemptTimeout: Duration = .milliseconds(60)
    public var deadline: Duration = .milliseconds(600)
    /// Share of requests that are POSTs (never retried once they may have been sent).
    public var unsafeShare = 0.3
    public var policy: LoadBalancingPolicy = .peakEWMA
    public var serviceMin: Duration = .microseconds(300)
    public var serviceTailMean: Duration = .milliseconds(2)
    public init() {}
}

/// The egress workload's invariant names.
enum HTTPEgressChecks {
    static let invariants = [
        "http.no-duplicate-unsafe", "http.no-traffic-to-unavailable", "http.retry-budget",
        "http.one-response", "http.deadline", "http.right-response", "http.complete", "http.trace-survives",
    ]
}

/// Kernel-level record the upstreams and the checker share (it survives crashes).
final class HTTPLedger {
    var receivedUnsafe: [String: Int] = [:]
}

/// The wire format between the simulated sidecar and upstreams.
enum EgressMessage {
    case request(id: UInt64, method: String, key: String, probe: Bool, traceparent: String)
    /// The upstream echoes the `traceparent` it received, as a traced service's span would carry it on.
    case response(id: UInt64, status: Int, key: String, traceparent: String)

    func encode() -> [UInt8] {
        switch self {
        case .request(let id, let method, let key, let probe, let trace): Array("Q|\(id)|\(method)|\(key)|\(probe ? 1 : 0)|\(trace)".utf8)
        case .response(let id, let status, let key, let trace): Array("R|\(id)|\(status)|\(key)|\(trace)".utf8)
        }
    }

    static func decode(_ bytes: [UInt8]) -> EgressMessage? {
        let f = String(decoding: bytes, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        if f.count == 6, f[0] == "Q", let id = UInt64(f[1]) { return .request(id: id, method: f[2], key: f[3], probe: f[4] == "1", traceparent: f[5]) }
        if f.count == 5, f[0] == "R", let id = UInt64(f[1]), let status = Int(f[2]) { return .response(id: id, status: status, key: f[3], traceparent: f[4]) }
        return nil
    }
}

/// An upstream service pod: answers after a service time; buggify makes it slow or return bursts of 503.
final class HTTPUpstream: SimProcess {
    static let slow = FaultSite("http.upstream.slow")
    static let errorBurst = FaultSite("http.upstream.error-burst")
    static let port = 8080

    private let config: HTTPEgressConfig
    private let ledger: HTTPLedger
    private let faults: any FaultInjector
    private var open: Set<StreamID> = []
    private var pending: [UInt64: (StreamID, EgressMessage)] = [:]
    private var burstLeft = 0

    init(config: HTTPEgressConfig, ledger: HTTPLedger, faults: any FaultInjector) {
        self.config = config
        self.ledger = ledger
        self.faults = faults
    }

    func start(on host: SimHost) { host.listen(port: Self.port) }

    func receive(_ event: NetEvent, on host: SimHost) {
        switch event {
        case .accepted(let s, _, _): open.insert(s)
        case .closed(let s), .reset(let s):
            open.remove(s)
            host.close(s)
        case .data(let s, let bytes):
            guard case .request(let id, let method, let key, _, let trace)? = EgressMessage.decode(bytes) else { return }
            if !RetryPolicy.idempotentMethods.contains(method) {
                ledger.receivedUnsafe[key, default: 0] += 1
                host.simulation.expect(ledger.receivedUnsafe[key]! == 1, "http.no-duplicate-unsafe",
                                       "\(method) \(key) reached an upstream twice", host: host.id)
            }
            if burstLeft == 0 && faults.fires(Self.errorBurst) { burstLeft = 20 }
            let status: Int
            if burstLeft > 0 { burstLeft -= 1; status = 503 } else { status = 200 }
            var service = Double(config.serviceMin.nanoseconds) - Double(config.serviceTailMean.nanoseconds) * log1p(-host.random.nextUnit())
            if faults.fires(Self.slow) { service *= 40 }
            let t = host.setTimer(after: .nanoseconds(Int64(service)))
            pending[t.rawValue] = (s, .response(id: id, status: status, key: key, traceparent: trace))
        default:
            break
        }
    }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        guard let (s, message) = pending.removeValue(forKey: token.rawValue), open.contains(s) else { return }
        host.write(s, message.encode())
    }
}

import Foundation
