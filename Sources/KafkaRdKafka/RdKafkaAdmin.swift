import CRdKafka
import Dispatch
import MeshCore

/// ``KafkaAdmin`` on librdkafka's Admin API. Each call runs on a private queue and waits on its own
/// result queue, so callers never block.
public final class RdKafkaAdmin: KafkaAdmin, @unchecked Sendable {
    private let client: RdKafkaClient
    private let cluster: RdKafkaClusterSettings
    private let queue = DispatchQueue(label: "light-mesh.kafka.admin")
    private static let timeoutMs: Int32 = 15_000

    public init(_ cluster: RdKafkaClusterSettings) throws(KafkaError) {
        self.cluster = cluster
        var conf = try RdKafkaConf(cluster.base(clientId: "light-mesh-admin") + (try cluster.extras(reserved: [])))
        let context = RdKafkaClientContext(name: "light-mesh-admin", logger: cluster.logger)
        context.install(on: conf.pointer!)
        client = RdKafkaClient(try conf.makeClient(RD_KAFKA_PRODUCER), context: context)
    }

    /// Never blocks the releasing thread; a request in progress finishes before the client is freed.
    deinit {
        let client = self.client
        DispatchQueue.global().async { client.close() }
    }

    /// Runs an admin request and waits for its result event.
    private func request(_ rk: OpaquePointer, _ submit: (OpaquePointer, OpaquePointer) -> Void, _ read: (OpaquePointer) -> KafkaError?) -> KafkaError? {
        let resultQueue = rd_kafka_queue_new(rk)!
        defer { rd_kafka_queue_destroy(resultQueue) }
        submit(rk, resultQueue)
        guard let event = rd_kafka_queue_poll(resultQueue, RdKafkaAdmin.timeoutMs + 1_000) else {
            return KafkaError(code: "timed_out", message: "admin request timed out", retriable: true)
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return KafkaError(rdkafka: err, context: String(cString: rd_kafka_event_error_string(event)))
        }
        return read(event)
    }

    private func options(_ rk: OpaquePointer, _ api: rd_kafka_admin_op_t) -> OpaquePointer {
        let o = rd_kafka_AdminOptions_new(rk, api)!
        var errstr = [CChar](repeating: 0, count: 256)
        _ = rd_kafka_AdminOptions_set_request_timeout(o, RdKafkaAdmin.timeoutMs, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(o, RdKafkaAdmin.timeoutMs, &errstr, errstr.count)
        return o
    }

    private static func topicResultError(_ results: UnsafeMutablePointer<OpaquePointer?>?, _ count: Int) -> KafkaError? {
        guard let results else { return nil }
        for i in 0..<count {
            guard let r = results[i] else { continue }
            let err = rd_kafka_topic_result_error(r)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                let name = String(cString: rd_kafka_topic_result_name(r))
                let text = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? ""
                return KafkaError(rdkafka: err, context: "\(name): \(text)")
            }
        }
        return nil
    }

    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int16, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        queue.async { [self] in completion(Result { () throws(KafkaError) in try client.use("create topic \(name)") { (rk: OpaquePointer) throws(KafkaError) in
            var errstr = [CChar](repeating: 0, count: 256)
            guard let topic = rd_kafka_NewTopic_new(name, partitions, Int32(replicationFactor), &errstr, errstr.count) else {
                throw KafkaError(code: "invalid_request", message: errstr.cString)
            }
            defer { rd_kafka_NewTopic_destroy(topic) }
            let opts = options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)
            defer { rd_kafka_AdminOptions_destroy(opts) }
            let error = request(rk, { rk, q in
                var topics: [OpaquePointer?] = [topic]
                rd_kafka_CreateTopics(rk, &topics, 1, opts, q)
            }, { event in
                var count = 0
                let result = rd_kafka_event_CreateTopics_result(event)
                return RdKafkaAdmin.topicResultError(rd_kafka_CreateTopics_result_topics(result, &count), count)
            })
            if let error { throw error }
        } }) }
    }

    public func deleteTopic(_ name: String, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        queue.async { [self] in completion(Result { () throws(KafkaError) in try client.use("delete topic \(name)") { (rk: OpaquePointer) throws(KafkaError) in
            let topic = rd_kafka_DeleteTopic_new(name)
            defer { rd_kafka_DeleteTopic_destroy(topic) }
            let opts = options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS)
            defer { rd_kafka_AdminOptions_destroy(opts) }
            let error = request(rk, { rk, q in
                var topics: [OpaquePointer?] = [topic]
                rd_kafka_DeleteTopics(rk, &topics, 1, opts, q)
            }, { event in
                var count = 0
                let result = rd_kafka_event_DeleteTopics_result(event)
                return RdKafkaAdmin.topicResultError(rd_kafka_DeleteTopics_result_topics(result, &count), count)
            })
            if let error { throw error }
        } }) }
    }

    public func listTopics(_ completion: @escaping @Sendable (Result<[TopicDescription], KafkaError>) -> Void) {
        queue.async { [client] in completion(Result { () throws(KafkaError) in try client.use("list topics") { (rk: OpaquePointer) throws(KafkaError) -> [TopicDescription] in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(rk, 1, nil, &metadata, RdKafkaAdmin.timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError(rdkafka: err, context: "metadata")
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            let m = metadata.pointee
            var topics: [TopicDescription] = []
            for i in 0..<Int(m.topic_cnt) {
                let t = m.topics[i]
                topics.append(TopicDescription(name: String(cString: t.topic), partitions: t.partition_cnt))
            }
            return topics.sorted { $0.name < $1.name }
        } }) }
    }

    public func watermarks(_ partition: TopicPartition, _ completion: @escaping @Sendable (Result<Watermarks, KafkaError>) -> Void) {
        queue.async { [client] in completion(Result { () throws(KafkaError) in try client.use("watermarks \(partition)") { (rk: OpaquePointer) throws(KafkaError) -> Watermarks in
            var low: Int64 = 0, high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(rk, partition.topic, partition.partition, &low, &high, RdKafkaAdmin.timeoutMs)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "watermarks \(partition)") }
            return Watermarks(low: low, high: high)
        } }) }
    }

    /// A group's committed offsets for every partition of every topic, read with a consumer of that
    /// group that never joins it (so no rebalance is triggered).
    public func groupOffsets(_ groupId: String, _ completion: @escaping @Sendable (Result<[PartitionOffset], KafkaError>) -> Void) {
        listTopics { [cluster] topics in
            switch topics {
            case .failure(let e): completion(.failure(e))
            case .success(let topics):
                do throws(KafkaError) {
                    var config = KafkaConsumerConfig(groupId: groupId)
                    config.clientId = "light-mesh-admin-offsets"
                    let reader = try RdKafkaConsumer(cluster, config: config)
                    let partitions = topics.flatMap { t in (0..<t.partitions).map { TopicPartition(t.name, $0) } }
                    reader.committed(partitions) { result in
                        completion(result)
                        _ = reader
                    }
                } catch {
                    completion(.failure(error))
                }
            }
        }
    }
}
