import Foundation
import HTTPSidecarEngines
import KafkaSidecar
import MeshCore
import MeshSimulator
import NIOHTTP1

/// What the simulated pull apps processed: the independent history the pull checker judges by.
/// Kernel-level, so it survives crashes of the apps and the sidecars.
final class PullAppLedger {
    /// Offsets an app processed, per partition (it processes what it is handed, then commits).
    var processed: [TopicPartition: Set<Int64>] = [:]
}

/// An app that reads a topic through its pod's pull sidecar over REST, as a Confluent v2 client
/// (even hosts) or a Strimzi bridge client (odd hosts) would: it creates an instance (manual
/// commits, binary records), subscribes, fetches with a timeout, processes what it gets and commits
/// it, in its flavour's offsets, explicitly or with an empty body. Buggify makes it walk away from
/// records it was handed (as if it crashed mid-batch) and from its instance, commit past what it
/// was handed (the sidecar must refuse), or go idle past the instance timeout. One request at a
/// time, over the production HTTP/1.1 client link (``SimFetcher``); answers are read with
/// Foundation's JSON parser, not the product's writer.
final class KafkaPullApp: SimProcess {
    static let hold = FaultSite("kafka.pull-app.hold")
    static let overcommit = FaultSite("kafka.pull-app.overcommit")
    static let idle = FaultSite("kafka.pull-app.idle")

    private let index: Int
    private let topic: String
    private let ledger: PullAppLedger
    private let faults: any FaultInjector
    private let idleTimeout: Duration
    private let sidecar: () -> HostID?
    private let fetcher: SimFetcher
    private var instance: String?
    private var made = 0
    /// The last record processed per partition and not yet committed (a refused commit is tried
    /// again after the next fetch, as a client would).
    private var uncommitted: [TopicPartition: Int64] = [:]
    /// A commit naming partitions was refused because one of them moved: the next one commits
    /// everything handed out (an empty body), which covers exactly the partitions still held.
    private var commitAllNext = false
    private var waitTimer: TimerToken?
    private var next: (() -> Void)?
    private weak var host: SimHost?

    var flavour: APIFlavour { index % 2 == 0 ? .confluent : .strimzi }

    init(index: Int, topic: String, ledger: PullAppLedger, faults: any FaultInjector, idleTimeout: Duration, sidecar: @escaping () -> HostID?) {
        self.index = index
        self.topic = topic
        self.ledger = ledger
        self.faults = faults
        self.idleTimeout = idleTimeout
        self.sidecar = sidecar
        fetcher = SimFetcher(url: FetchURL("http://sidecar:\(PullSidecarHTTP.port)/")!, port: PullSidecarHTTP.port, timeout: .seconds(2), maxIdle: 1)
    }

    func start(on host: SimHost) {
        self.host = host
        fetcher.reset()
        instance = nil
        later(.milliseconds(10)) { self.create() }
    }

    func receive(_ event: NetEvent, on host: SimHost) { _ = fetcher.receive(event, on: host) }

    func timerFired(_ token: TimerToken, on host: SimHost) {
        if fetcher.timerFired(token, on: host) { return }
        guard token == waitTimer, let step = next else { return }
        waitTimer = nil
        next = nil
        step()
    }

    private func later(_ delay: Duration, _ step: @escaping () -> Void) {
        guard let host else { return }
        next = step
        waitTimer = host.setTimer(after: delay)
    }

    private var base: String { "/consumers/\(KafkaPullPod.group)/instances/\(instance ?? "")" }

    /// One request to the sidecar; `done` gets the status and the parsed JSON body (nil: none or not JSON).
    /// A transport failure (the sidecar is down or the network lost it) tries `retry` again shortly.
    private func send(_ method: HTTPMethod, _ target: String, _ body: String?, accept: String? = nil, retry: @escaping () -> Void,
                      _ done: @escaping (Int, Any?) -> Void) {
        guard let host, let peer = sidecar() else { return later(.milliseconds(100), retry) }
        var fields = [("content-type", "application/vnd.kafka.v2+json")]
        if let accept { fields.append(("accept", accept)) }
        fetcher.send(method, target, fields: fields, body: Array((body ?? "").utf8), to: peer, on: host) { [self] result in
            switch result {
            case .success(let answer):
                done(answer.status, answer.body.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(answer.body), options: [.fragmentsAllowed]))
            case .failure:
                later(.milliseconds(100), retry)
            }
        }
    }

    // MARK: the client's steps

    private func create() {
        guard let host else { return }
        made += 1
        let name = "\(host.name)-\(host.incarnation)-\(made)"
        let body = #"{"name":"\#(name)","format":"binary","auto.offset.reset":"earliest","#
            + (flavour == .confluent ? #""auto.commit.enable":"false","# : #""enable.auto.commit":false,"#)
            + #""api_flavour":"\#(flavour.rawValue)"}"#
        send(.POST, "/consumers/\(KafkaPullPod.group)", body, retry: { self.create() }) { [self] status, json in
            guard status == 200, let object = json as? [String: Any], object["instance_id"] as? String == name else {
                return later(.milliseconds(100)) { self.create() }
            }
            instance = name
            uncommitted = [:]  // a new instance: what the old one held comes back to the group
            commitAllNext = false
            subscribe()
        }
    }

    private func subscribe() {
        // Strimzi clients subscribe by pattern (one that matches only the topic: the dead-letter and
        // audit topics of other workloads share its prefix).
        let body = flavour == .strimzi ? #"{"topic_pattern":"\#(topic)$"}"# : #"{"topics":["\#(topic)"]}"#
        send(.POST, base + "/subscription", body, retry: { self.subscribe() }) { [self] status, _ in
            switch status {
            case 204: fetch()
            case 404: create()
            default: later(.milliseconds(50)) { self.subscribe() }
            }
        }
    }

    private func fetch() {
        guard let host else { return }
        if faults.fires(Self.idle) {
            // Silent past the instance timeout: the sidecar closes the instance; the next call finds none.
            host.simulation.coverage.hit("kafka-pull.app-idle")
            return later(idleTimeout + .milliseconds(300)) { self.fetch() }
        }
        let maxBytes = [0, 100, 1_000, 100_000][Int(host.random.next() % 4)]
        let query = "timeout=200" + (maxBytes > 0 ? "&max_bytes=\(maxBytes)" : "")
        send(.GET, base + "/records?" + query, nil, accept: "application/vnd.kafka.binary.v2+json", retry: { self.fetch() }) { [self] status, json in
            switch status {
            case 200:
                let records = (json as? [[String: Any]] ?? []).compactMap(Self.record)
                handle(records)
            case 404:
                host.simulation.coverage.hit("kafka-pull.instance-gone")
                create()
            default:
                host.simulation.violation("kafka-pull.rest-wellformed", "a fetch was answered \(status): \(String(describing: json))", host: host.id)
            }
        }
    }

    private static func record(_ o: [String: Any]) -> (tp: TopicPartition, offset: Int64)? {
        guard let topic = o["topic"] as? String, let p = o["partition"] as? Int, let offset = o["offset"] as? Int64 ?? (o["offset"] as? Int).map(Int64.init)
        else { return nil }
        return (TopicPartition(topic, Int32(p)), offset)
    }

    private func handle(_ records: [(tp: TopicPartition, offset: Int64)]) {
        guard let host else { return }
        guard !records.isEmpty else { return uncommitted.isEmpty ? fetch() : commit(uncommitted) }
        if faults.fires(Self.hold) {
            // As if the app crashed mid-batch: nothing processed, nothing committed, the instance
            // left to expire. The records must come back to some instance.
            host.simulation.coverage.hit("kafka-pull.records-abandoned")
            return create()
        }
        var last: [TopicPartition: Int64] = [:]
        for r in records {
            ledger.processed[r.tp, default: []].insert(r.offset)
            last[r.tp] = max(last[r.tp] ?? -1, r.offset)
        }
        uncommitted.merge(last) { max($0, $1) }
        if faults.fires(Self.overcommit), let (tp, offset) = last.min(by: { $0.key < $1.key }) {
            return overcommit(tp, offset)
        }
        commit(uncommitted)
    }

    /// Commits what was processed: explicitly in the flavour's offsets (Confluent names the last
    /// record, Strimzi the next offset), or half the time with an empty body (everything handed out).
    private func commit(_ last: [TopicPartition: Int64]) {
        guard let host else { return }
        let body: String?
        if host.random.next() % 2 == 0 || commitAllNext {
            body = nil
        } else {
            let entries = last.sorted { $0.key < $1.key }.map { tp, offset in
                #"{"topic":"\#(tp.topic)","partition":\#(tp.partition),"offset":\#(flavour == .confluent ? offset : offset + 1)}"#
            }
            body = #"{"offsets":["# + entries.joined(separator: ",") + "]}"
        }
        send(.POST, base + "/offsets", body, retry: { self.fetch() }) { [self] status, _ in
            switch status {
            case 200 where flavour == .confluent, 204 where flavour == .strimzi:
                host.simulation.coverage.hit("kafka-pull.committed-" + flavour.rawValue)
                if body == nil { uncommitted = [:] } else { for (tp, offset) in last where uncommitted[tp] == offset { uncommitted[tp] = nil } }
                commitAllNext = false
                fetch()
            case 409, 404:
                // A partition moved meanwhile (Strimzi says 404 for it too): its records go to its next
                // owner from the last commit, and the rest is committed with an empty body next time.
                // An instance that is gone shows at the next fetch.
                host.simulation.coverage.hit("kafka-pull.commit-refused")
                commitAllNext = true
                fetch()
            default:
                // The broker refused: tried again after the next fetch.
                host.simulation.coverage.hit("kafka-pull.commit-failed")
                fetch()
            }
        }
    }

    /// A commit past what the sidecar returned: it must be refused, and commit nothing.
    private func overcommit(_ tp: TopicPartition, _ offset: Int64) {
        let body = #"{"offsets":[{"topic":"\#(tp.topic)","partition":\#(tp.partition),"offset":\#(offset + 5)}]}"#
        send(.POST, base + "/offsets", body, retry: { self.fetch() }) { [self] status, _ in
            guard let host else { return }
            if status < 300 {
                host.simulation.violation("kafka-pull.no-commit-past-handed", "\(instance ?? "") committed offset \(offset + 5) of \(tp), past the last record it was given (\(offset)): answered \(status)", host: host.id)
            } else if status == 409 {
                host.simulation.coverage.hit("kafka-pull.overcommit-refused")
            }
            fetch()
        }
    }
}
