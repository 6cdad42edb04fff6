import CRdKafka
import MeshCore

/// Owns an `rd_kafka_conf_t` until it is handed to `rd_kafka_new`.
struct RdKafkaConf {
    private(set) var pointer: OpaquePointer?

    /// Builds a configuration; an unknown key or bad value is refused naming the key.
    init(_ settings: [(String, String)]) throws(KafkaError) {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in settings {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError.invalidConfig("\(key): \(errstr.cString)")
            }
        }
        pointer = conf
    }

    /// Creates the client; the configuration is consumed whether or not it succeeds.
    mutating func makeClient(_ type: rd_kafka_type_t) throws(KafkaError) -> OpaquePointer {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let conf = pointer else { throw KafkaError.invalidConfig("configuration already used") }
        pointer = nil
        guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError.invalidConfig(errstr.cString)
        }
        return rk
    }

    func destroy() {
        if let pointer { rd_kafka_conf_destroy(pointer) }
    }
}

/// A `Sendable` wrapper for librdkafka handles, which are thread-safe.
struct RdHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// Converts between Swift topic-partition lists and `rd_kafka_topic_partition_list_t`.
enum PartitionList {
    /// A new list the caller must destroy; `offsets` are set when given.
    static func make(_ partitions: [TopicPartition], offsets: [Int64]? = nil) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(1, partitions.count)))!
        for (i, tp) in partitions.enumerated() {
            let element = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
            if let offsets { element.pointee.offset = offsets[i] }
        }
        return list
    }

    static func elements(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [rd_kafka_topic_partition_t] {
        guard let list, list.pointee.cnt > 0 else { return [] }
        return (0..<Int(list.pointee.cnt)).map { list.pointee.elems[$0] }
    }

    static func partitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition] {
        elements(list).map { TopicPartition(String(cString: $0.topic), $0.partition) }.sorted()
    }
}

/// Milliseconds for librdkafka timeouts.
func milliseconds(_ d: Duration) -> Int32 { Int32(clamping: max(0, d.nanoseconds / 1_000_000)) }

/// Topic names by librdkafka topic handle, so a record does not allocate its topic name again; the
/// last handle is checked first (records of one topic come in runs), skipping the hash.
/// Not thread-safe: each owner touches it from one thread only.
struct TopicNameCache {
    private var names: [OpaquePointer: String] = [:]
    private var last: (handle: OpaquePointer, name: String)?

    mutating func name(_ rkt: OpaquePointer?) -> String {
        guard let rkt else { return "" }
        if let last, last.handle == rkt { return last.name }
        let n = names[rkt] ?? String(cString: rd_kafka_topic_name(rkt))
        names[rkt] = n
        last = (rkt, n)
        return n
    }
}

extension Array where Element == CChar {
    /// The NUL-terminated text librdkafka wrote into an error buffer.
    var cString: String { withUnsafeBufferPointer { String(cString: $0.baseAddress!) } }
}
