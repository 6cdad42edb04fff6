import CoreMetrics
import MeshCore
import NIOCore

/// A Prometheus label value, escaped (backslash, quote and newline), so a group or topic name cannot break
/// the exposition format.
func prometheusLabel(_ value: String) -> String {
    var out = ""
    for c in value {
        switch c {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        default: out.append(c)
        }
    }
    return out
}

/// The Kafka sidecar's swift-metrics instruments (the reactive consumers' counters are emitted from
/// their engines' own statistics at scrape time, see ``ReactiveDriver/prometheusText()``).
public final class KafkaSidecarMetrics: Sendable {
    private let producedOK: Counter
    private let producedFailed: Counter
    private let produceDuration: Timer

    public init(factory: any MetricsFactory) {
        producedOK = Counter(label: "lightmesh_kafka_produced_records_total", dimensions: [("result", "ok")], factory: factory)
        producedFailed = Counter(label: "lightmesh_kafka_produced_records_total", dimensions: [("result", "failed")], factory: factory)
        produceDuration = Timer(label: "lightmesh_kafka_produce_duration_seconds", preferredDisplayUnit: .seconds, factory: factory)
    }

    /// One produce request's results: each record counted by its result, and the request timed once,
    /// from its arrival to its last record's acknowledgement.
    func produced(_ results: [Result<RecordMetadata, KafkaError>], since start: NIODeadline) {
        let failed = results.reduce(0) { n, r in if case .failure = r { n + 1 } else { n } }
        if failed < results.count { producedOK.increment(by: results.count - failed) }
        if failed > 0 { producedFailed.increment(by: failed) }
        produceDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }
}
