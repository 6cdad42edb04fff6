import CRdKafka
import Foundation
import Logging
import MeshCore
import Metrics
import Synchronization

/// State shared with librdkafka's C callbacks through the client's opaque pointer: logging, statistics,
/// and (for consumers) the rebalance events of the poll in progress. It outlives the `rd_kafka_t`.
final class RdKafkaClientContext: @unchecked Sendable {
    let logger: Logger
    let name: String
    /// Events gathered during the current `rd_kafka_consumer_poll` (rebalance callbacks run inside it).
    let rebalanceEvents = Mutex<[ConsumerEvent]>([])
    /// A consumer's before-revoke step, and how long it may take.
    let revocation = Mutex<(handler: RevocationHandler?, timeout: Duration)>((nil, .seconds(10)))
    private let queued: Gauge
    private let queuedBytes: Gauge
    private let transmitted: Gauge
    private let received: Gauge

    init(name: String, logger: Logger) {
        self.name = name
        self.logger = logger
        let dims = [("client", name)]
        queued = Gauge(label: "kafka_client_queued_messages", dimensions: dims)
        queuedBytes = Gauge(label: "kafka_client_queued_bytes", dimensions: dims)
        transmitted = Gauge(label: "kafka_client_transmitted_messages_total", dimensions: dims)
        received = Gauge(label: "kafka_client_received_messages_total", dimensions: dims)
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ rk: OpaquePointer?) -> RdKafkaClientContext? {
        guard let rk, let raw = rd_kafka_opaque(rk) else { return nil }
        return Unmanaged<RdKafkaClientContext>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Routes librdkafka's syslog-levelled lines to swift-log.
    func log(level: Int32, facility: String, message: String) {
        let l: Logger.Level
        switch level {
        case ...3: l = .error
        case 4: l = .warning
        case 5, 6: l = .info
        default: l = .debug
        }
        logger.log(level: l, "\(message)", metadata: ["kafka.facility": "\(facility)", "kafka.client": "\(name)"])
    }

    /// Feeds a few top-level statistics into swift-metrics gauges.
    func statistics(_ json: String) {
        guard let data = json.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        if let v = object["msg_cnt"] as? Int { queued.record(v) }
        if let v = object["msg_size"] as? Int { queuedBytes.record(v) }
        if let v = object["txmsgs"] as? Int { transmitted.record(v) }
        if let v = object["rxmsgs"] as? Int { received.record(v) }
    }

    /// Installs the log callback, the statistics callback (unless statistics arrive as queue events),
    /// and this context as the opaque.
    func install(on conf: OpaquePointer, statisticsCallback: Bool = true) {
        rd_kafka_conf_set_opaque(conf, opaque)
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, buffer in
            guard let ctx = RdKafkaClientContext.from(rk) else { return }
            ctx.log(level: level, facility: facility.map { String(cString: $0) } ?? "", message: buffer.map { String(cString: $0) } ?? "")
        }
        guard statisticsCallback else { return }
        rd_kafka_conf_set_stats_cb(conf) { rk, json, length, _ in
            guard let ctx = RdKafkaClientContext.from(rk), let json else { return 0 }
            let text = String(decoding: UnsafeRawBufferPointer(start: json, count: length), as: UTF8.self)
            ctx.statistics(text)
            return 0  // librdkafka frees the JSON
        }
    }
}

/// Connection settings common to every client of one cluster.
public struct RdKafkaClusterSettings: Sendable {
    /// `host:port,host:port`.
    public var bootstrapServers: String
    /// Extra librdkafka properties, applied last (e.g. security settings).
    public var properties: [String: String] = [:]
    /// How often librdkafka emits statistics into the metrics gauges; `nil` turns them off.
    public var statisticsInterval: Duration? = .seconds(30)
    public var logger = Logger(label: "light-mesh.kafka")

    public init(bootstrapServers: String) { self.bootstrapServers = bootstrapServers }

    func base(clientId: String) -> [(String, String)] {
        var s: [(String, String)] = [("bootstrap.servers", bootstrapServers), ("client.id", clientId)]
        if let statisticsInterval { s.append(("statistics.interval.ms", String(milliseconds(statisticsInterval)))) }
        return s
    }

    /// The extra properties, refusing any that would override a setting the adapter sets for product
    /// semantics (`enable.auto.commit`, `enable.idempotence`, ...): those come from the typed
    /// configuration, and a silent override would break the seam's contract.
    func extras(reserved: [(String, String)]) throws(KafkaError) -> [(String, String)] {
        let owned = Set(reserved.map(\.0)).union(RdKafkaClusterSettings.alwaysOwned)
        if let clash = properties.keys.sorted().first(where: { owned.contains($0) }) {
            throw KafkaError.invalidConfig("\(clash) is set by light-mesh (it carries the product's delivery and commit guarantees) and cannot be overridden in the extra properties")
        }
        return properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Keys refused in the extra properties of every client, whether or not this client sets them.
    static let alwaysOwned: Set<String> = [
        "enable.auto.commit", "enable.auto.offset.store", "enable.idempotence", "transactional.id",
        "group.id", "isolation.level", "enable.partition.eof", "partition.assignment.strategy",
        "group.protocol", "auto.offset.reset", "acks", "request.required.acks",
    ]
}
