import CRdKafka
import Dispatch
import Foundation
import MeshCore
import Synchronization

/// The completion of one produced record, carried through librdkafka as the message opaque.
private final class DeliveryBox {
    let completion: @Sendable (Result<RecordMetadata, KafkaError>) -> Void
    init(_ completion: @escaping @Sendable (Result<RecordMetadata, KafkaError>) -> Void) { self.completion = completion }
}

/// ``KafkaProducer`` on librdkafka: idempotent by default, delivery reports resume callers with the
/// partition and offset (or a typed error), and transactions when a `transactionalId` is set.
///
/// A dedicated thread serves delivery reports (`rd_kafka_poll`); blocking calls (flush, transaction
/// steps) run on a private queue, never on the caller's thread or Swift's cooperative pool.
public final class RdKafkaProducer: KafkaProducer, @unchecked Sendable {
    private let rk: RdHandle
    private let context: RdKafkaClientContext
    private let blocking = DispatchQueue(label: "light-mesh.kafka.producer.blocking")
    private let stopped = StopFlag()
    private let poller: Thread
    private let closed = Atomic<Bool>(false)

    public init(_ cluster: RdKafkaClusterSettings, config: KafkaProducerConfig) throws(KafkaError) {
        var settings = cluster.base(clientId: config.clientId)
        settings.append(("enable.idempotence", config.idempotent ? "true" : "false"))
        settings.append(("acks", config.idempotent ? "all" : config.acks.rawValue))
        settings.append(("linger.ms", String(config.lingerMilliseconds)))
        settings.append(("message.timeout.ms", String(milliseconds(config.deliveryTimeout))))
        if let id = config.transactionalId { settings.append(("transactional.id", id)) }
        settings += cluster.extras()
        var conf = try RdKafkaConf(settings)
        let context = RdKafkaClientContext(name: config.clientId, logger: cluster.logger)
        context.install(on: conf.pointer!)
        rd_kafka_conf_set_dr_msg_cb(conf.pointer!) { rk, message, _ in
            guard let message, let opaque = message.pointee._private, let ctx = RdKafkaClientContext.from(rk) else { return }
            let box = Unmanaged<DeliveryBox>.fromOpaque(opaque).takeRetainedValue()
            box.completion(RdKafkaProducer.result(of: message, topicNames: &ctx.deliveryTopicNames))
        }
        let rk = RdHandle(pointer: try conf.makeClient(RD_KAFKA_PRODUCER))
        self.rk = rk
        self.context = context
        let stopped = self.stopped
        poller = Thread {
            while !stopped.isSet { rd_kafka_poll(rk.pointer, 50) }
        }
        poller.name = "kafka-producer-poll"
        poller.start()
    }

    deinit { close(timeout: .seconds(5)) }

    private static func result(of message: UnsafePointer<rd_kafka_message_t>, topicNames: inout TopicNameCache) -> Result<RecordMetadata, KafkaError> {
        let m = message.pointee
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let unknown = rd_kafka_message_status(message) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED
            return .failure(KafkaError(rdkafka: m.err, context: "delivery failed", outcomeUnknown: unknown))
        }
        let topic = topicNames.name(m.rkt)
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &type)
        return .success(RecordMetadata(topicPartition: TopicPartition(topic, m.partition), offset: m.offset, timestamp: timestamp))
    }

    public func send(_ record: ProducerRecord, _ completion: @escaping @Sendable (Result<RecordMetadata, KafkaError>) -> Void) {
        if closed.load(ordering: .relaxed) {
            completion(.failure(KafkaError(code: "producer_closed", message: "the producer is closed")))
            return
        }
        let box = Unmanaged.passRetained(DeliveryBox(completion))
        var headers: OpaquePointer?
        if !record.headers.isEmpty {
            headers = rd_kafka_headers_new(record.headers.count)
            for h in record.headers {
                if let value = h.value {
                    value.withUnsafeBytes { _ = rd_kafka_header_add(headers, h.key, -1, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), $0.count) }
                } else {
                    _ = rd_kafka_header_add(headers, h.key, -1, nil, 0)
                }
            }
        }
        let error: OpaquePointer? = record.topic.withCString { topic in
            withBytes(record.key) { key in
                withBytes(record.value) { value in
                    // At most 8 fields, built on the stack: no allocation per record.
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 8) { vus in
                        var n = 0
                        func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                            var v = rd_kafka_vu_t()
                            v.vtype = type
                            fill(&v)
                            vus.initializeElement(at: n, to: v)
                            n += 1
                        }
                        add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topic }
                        if let p = record.partition { add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = p } }
                        if let key { add(RD_KAFKA_VTYPE_KEY) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress); $0.u.mem.size = key.count } }
                        if let value { add(RD_KAFKA_VTYPE_VALUE) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress); $0.u.mem.size = value.count } }
                        add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                        add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = box.toOpaque() }
                        if let ts = record.timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = ts } }
                        if let headers { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
                        return rd_kafka_produceva(rk.pointer, vus.baseAddress, n)
                    }
                }
            }
        }
        if let error {
            // Not enqueued: we still own the headers and the completion.
            if let headers { rd_kafka_headers_destroy(headers) }
            box.release()
            completion(.failure(KafkaError(consuming: error, context: "produce to \(record.topic)")))
        }
    }

    public func flush(timeout: Duration, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        let rk = self.rk
        DispatchQueue.global().async {
            let err = rd_kafka_flush(rk.pointer, milliseconds(timeout))
            completion(err == RD_KAFKA_RESP_ERR_NO_ERROR ? .success(()) : .failure(KafkaError(rdkafka: err, context: "flush")))
        }
    }

    // MARK: Transactions

    private func transactional(_ what: String, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void, _ call: @escaping @Sendable (OpaquePointer) -> OpaquePointer?) {
        let rk = self.rk
        blocking.async {
            if let error = call(rk.pointer) {
                completion(.failure(KafkaError(consuming: error, context: what)))
            } else {
                completion(.success(()))
            }
        }
    }

    public func initTransactions(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        transactional("init transactions", completion) { rd_kafka_init_transactions($0, 30_000) }
    }

    public func beginTransaction() throws(KafkaError) {
        if let error = rd_kafka_begin_transaction(rk.pointer) { throw KafkaError(consuming: error, context: "begin transaction") }
    }

    public func sendOffsetsToTransaction(
        _ offsets: [PartitionOffset], group: ConsumerGroupMetadata,
        _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void
    ) {
        let native = group.native
        transactional("send offsets to transaction", completion) { rk in
            let list = PartitionList.make(offsets.map(\.topicPartition), offsets: offsets.map(\.offset))
            defer { rd_kafka_topic_partition_list_destroy(list) }
            var metadata: OpaquePointer?
            if !native.isEmpty {
                if let error = native.withUnsafeBytes({ rd_kafka_consumer_group_metadata_read(&metadata, $0.baseAddress, $0.count) }) {
                    return error
                }
            } else {
                metadata = rd_kafka_consumer_group_metadata_new_with_genid(group.groupId, group.generation, group.memberId, nil)
            }
            defer { rd_kafka_consumer_group_metadata_destroy(metadata) }
            return rd_kafka_send_offsets_to_transaction(rk, list, metadata, 30_000)
        }
    }

    public func commitTransaction(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        transactional("commit transaction", completion) { rd_kafka_commit_transaction($0, 30_000) }
    }

    public func abortTransaction(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        transactional("abort transaction", completion) { rd_kafka_abort_transaction($0, 30_000) }
    }

    /// Flushes what is queued (up to `timeout`), fails what is left, and frees the client. Idempotent.
    public func close(timeout: Duration = .seconds(10)) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = rd_kafka_flush(rk.pointer, milliseconds(timeout))
        _ = rd_kafka_purge(rk.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        stopped.set()
        while !poller.isFinished { usleep(1_000) }
        _ = rd_kafka_poll(rk.pointer, 0)  // deliver the purge reports so no completion is lost
        rd_kafka_destroy(rk.pointer)
        _ = context
    }
}

/// Calls `body` with the bytes of `bytes`, or `nil` when there are none (a null key or value).
/// An empty array is passed as a non-null, zero-length buffer.
func withBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    if bytes.isEmpty {
        var zero: UInt8 = 0
        return withUnsafeBytes(of: &zero) { body(UnsafeRawBufferPointer(start: $0.baseAddress, count: 0)) }
    }
    return bytes.withUnsafeBytes { body($0) }
}

/// A flag one thread sets and another polls.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
