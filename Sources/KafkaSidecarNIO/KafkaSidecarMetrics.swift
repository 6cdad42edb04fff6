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

    /// One record's produce result, timed from the REST request's arrival.
    func produced(_ result: Result<RecordMetadata, KafkaError>, since start: NIODeadline) {
        switch result {
        case .success: producedOK.increment()
        case .failure: producedFailed.increment()
        }
        produceDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }
}
