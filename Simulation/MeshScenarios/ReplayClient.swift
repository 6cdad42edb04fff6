import Foundation
import HTTPSidecarEngines
import KafkaSidecar
import MeshCore
import MeshSimulator
import NIOHTTP1

/// What the replay client asked for and was told: the independent history the replay checker
/// judges by, with the brokers' logs. Kernel-level, so it survives crashes.
final class ReplayLedger {
    /// Replays sent.
    var started = 0
    /// Replays answered 200 with `"complete":true`.
    var completed = 0
    /// The first complete replay after the heal: per dead-letter partition, the offset it reached.
    var finalCoverage: [Int32: Int64]?
}

/// An operator's script against the dead-letter sidecar's REST port: while faults run, a replay
/// every few hundred milliseconds with a small `max` (or none); after the heal, replays until one
/// answers complete, whose coverage the checker holds the brokers to. One request at a time over
/// the production HTTP/1.1 client link (``SimFetcher``); answers read with Foundation's JSON parser.
final class ReplayClient: SimProcess {
    private let topic: String
    private let ledger: ReplayLedger
    private let stopAt: MeshInstant
    private let sidecar: () -> HostID?
    private let fetcher: SimFetcher
    private var waitTimer: TimerToken?
    private weak var host: SimHost?

    init(topic: String, ledger: ReplayLedger, stopAt: MeshInstant, sidecar: @escaping () -> HostID?) {
        self.topic = topic
        self.ledger = ledger
        self.stopAt = stopAt
        self.sidecar = sidecar
        fetcher = SimFetcher(url: FetchURL("http://sidecar:\(DeadLetterSidecarHTTP.port)/")!, port: DeadLetterSidecarHTTP.port, timeout: .seconds(5), maxIdle: 1)
    }

    func start(on host: SimHost) {
        self.host = host
        fetcher.reset()
        waitTimer = host.setTimer(after: .milliseconds(500))
    }

    func receive(_ event: NetEvent, on host: SimHost) { _ = fetcher.receive(event, on: host) }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        if fetcher.timerFired(token, on: host) { return }
        guard token == waitTimer else { return }
        waitTimer = nil
        replay()
    }

    private func again(_ delay: Duration) {
        guard let host else { return }
        waitTimer = host.setTimer(after: delay)
    }

    private func replay() {
        guard let host, let peer = sidecar() else { return again(.milliseconds(200)) }
        let final = host.now >= stopAt
        if final && ledger.finalCoverage != nil { return }
        let body: String
        if final {
            body = #"{"max":100000}"#
        } else {
            switch host.random.next() % 3 {
            case 0: body = ""
            case 1: body = #"{"max":\#(1 + host.random.next() % 20)}"#
            default: body = #"{"max":\#(5 + host.random.next() % 50),"group":"lightmesh-replay.\#(topic)"}"#
            }
        }
        ledger.started += 1
        host.log("replay.start", Int64(ledger.started), final ? 1 : 0, body)
        fetcher.send(.POST, "/deadletters/\(topic)/replay", fields: [("content-type", "application/json")], body: Array(body.utf8), to: peer, on: host) { [self] result in
            guard let host = self.host else { return }
            if case .success(let answer) = result,
               let object = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any] {
                if answer.status == 200, object["complete"] as? Bool == true {
                    ledger.completed += 1
                    if final, let parts = object["partitions"] as? [[String: Any]] {
                        var coverage: [Int32: Int64] = [:]
                        for p in parts {
                            if let n = p["partition"] as? Int, let to = p["to"] as? Int { coverage[Int32(n)] = Int64(to) }
                        }
                        ledger.finalCoverage = coverage
                        host.simulation.coverage.hit("kafka-deadletters.final-replay")
                    }
                } else if answer.status == 409 {
                    host.simulation.coverage.hit("kafka-deadletters.replay-running")
                } else if answer.status != 200 && answer.status != 500 && answer.status != 404 {
                    host.simulation.violation("kafka-deadletters.rest-wellformed", "a replay was answered \(answer.status): \(String(decoding: answer.body.prefix(200), as: UTF8.self))", host: host.id)
                }
            }
            again(final ? .milliseconds(200) : .milliseconds(Int64(200 + host.random.next() % 600)))
        }
    }
}
