import CRdKafka
import Dispatch
import Foundation
import MeshCore
import Synchronization

/// ``KafkaProducer`` on librdkafka: idempotent by default, delivery reports resume callers with the
/// partition and offset (or a typed error), and transactions when a `transactionalId` is set.
///
/// Delivery reports arrive as batched events on librdkafka's main queue, and one thread (the
/// poller) serves them all: `rd_kafka_flush` and the transaction steps, which with the event API
/// wait for reports instead of serving them, can never run completions on another thread at the
/// same time. Blocking calls (flush, transaction steps) run on private queues, never on the caller's
/// thread or Swift's cooperative pool. Nothing touches the client after it is destroyed, and
/// releasing the last reference (even inside a completion) never blocks.
public final class RdKafkaProducer: KafkaProducer, @unchecked Sendable {
    private let client: RdKafkaClient
    private let poller: RdKafkaDeliveryPoller
    private let blocking = DispatchQueue(label: "light-mesh.kafka.producer.blocking")
    private let flushing = DispatchQueue(label: "light-mesh.kafka.producer.flush", attributes: .concurrent)
    private let topics = RdKafkaTopicHandles()

    public init(_ cluster: RdKafkaClusterSettings, config: KafkaProducerConfig) throws(KafkaError) {
        var owned: [(String, String)] = [
            ("enable.idempotence", config.idempotent ? "true" : "false"),
            ("acks", config.idempotent ? "all" : config.acks.rawValue),
        ]
        if let id = config.transactionalId { owned.append(("transactional.id", id)) }
        let tuning: [(String, String)] = [
            ("linger.ms", String(config.lingerMilliseconds)),
            ("message.timeout.ms", String(milliseconds(config.deliveryTimeout))),
        ]
        let settings = cluster.base(clientId: config.clientId) + owned + tuning + (try cluster.extras(reserved: owned))
        var conf = try RdKafkaConf(settings)
        let context = RdKafkaClientContext(name: config.clientId, logger: cluster.logger)
        context.install(on: conf.pointer!, statisticsCallback: false)
        rd_kafka_conf_set_events(conf.pointer!, Int32(RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_STATS | RD_KAFKA_EVENT_ERROR))
        client = RdKafkaClient(try conf.makeClient(RD_KAFKA_PRODUCER), context: context)
        poller = RdKafkaDeliveryPoller(client)
    }

    /// Never blocks, even when the last reference goes inside one of this producer's completions
    /// (on the poller thread): flushing, purging and freeing run on a background queue.
    deinit {
        let (client, poller, topics) = (self.client, self.poller, self.topics)
        DispatchQueue.global().async { RdKafkaProducer.shutdown(client, poller, topics, timeout: .seconds(5)) }
    }

    public func send(_ record: ProducerRecord, _ completion: @escaping @Sendable (Result<RecordMetadata, KafkaError>) -> Void) {
        sendBatch([record]) { completion($0[0]) }
    }

    /// One pass for the whole batch: the client is held open once, topic handles are looked up once
    /// per run of one topic, and one ``DeliveryBatch`` keeps every record's result (each record's
    /// opaque points at its slot), so a record costs no allocation of its own beyond librdkafka's copy.
    public func sendBatch(_ records: [ProducerRecord], _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void) {
        guard !records.isEmpty else { return completion([]) }
        let batch = DeliveryBatch(count: records.count, completion)
        do throws(KafkaError) {
            try client.use("produce") { (rk: OpaquePointer) throws(KafkaError) in
                var handle: (topic: String, rkt: OpaquePointer?)?
                for (i, record) in records.enumerated() {
                    if handle?.topic != record.topic { handle = (record.topic, topics.handle(rk, record.topic)) }
                    do throws(KafkaError) {
                        try RdKafkaProducer.enqueue(rk, handle?.rkt, record, batch.opaque(i))
                    } catch {
                        batch.deliver(i, .failure(error))
                    }
                }
            }
        } catch {
            for i in records.indices { batch.deliver(i, .failure(Self.sendFailure(error))) }
        }
    }

    /// Packed records in one pass over their one buffer: librdkafka copies each key, value and header
    /// straight from the spans, with no per-record arrays on the way.
    public func sendPacked(_ batch: PackedRecords, _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void) {
        guard !batch.isEmpty else { return completion([]) }
        let delivery = DeliveryBatch(count: batch.count, completion)
        do throws(KafkaError) {
            try client.use("produce") { (rk: OpaquePointer) throws(KafkaError) in
                let rkt = topics.handle(rk, batch.topic)
                batch.storage.withUnsafeBytes { storage in
                    func bytes(_ span: PackedRecords.Span) -> UnsafeRawBufferPointer? {
                        guard !span.isNull else { return nil }
                        // librdkafka reads what this points at: a span outside the storage is a bug, never a read.
                        precondition(span.start >= 0 && span.start <= storage.count - span.count, "a packed span outside its storage")
                        // A non-null, zero-length span still needs a non-null pointer.
                        let base = storage.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
                        return UnsafeRawBufferPointer(start: base + span.start, count: span.count)
                    }
                    for (i, record) in batch.records.enumerated() {
                        var headers: OpaquePointer?
                        let count = record.headers.count + batch.shared.count
                        if count > 0 {
                            headers = rd_kafka_headers_new(count)
                            for h in batch.headers[record.headers] { Self.addHeader(headers, h.name, bytes(h.value)) }
                            for h in batch.shared {
                                if let value = h.value { value.withUnsafeBytes { Self.addHeader(headers, h.key, $0) } } else { Self.addHeader(headers, h.key, nil) }
                            }
                        }
                        do throws(KafkaError) {
                            try Self.enqueue(rk, rkt, topic: batch.topic, partition: record.partition < 0 ? nil : record.partition,
                                             key: bytes(record.key), value: bytes(record.value),
                                             timestamp: record.timestamp < 0 ? nil : record.timestamp, headers: headers, opaque: delivery.opaque(i))
                        } catch {
                            delivery.deliver(i, .failure(error))
                        }
                    }
                }
            }
        } catch {
            for i in batch.records.indices { delivery.deliver(i, .failure(Self.sendFailure(error))) }
        }
    }

    /// What every record of a batch fails with when the client could not be used: a closed client
    /// is a closed producer to the caller.
    private static func sendFailure(_ error: KafkaError) -> KafkaError {
        error.code == "client_closed" ? KafkaError(code: "producer_closed", message: "the producer is closed") : error
    }

    private static func addHeader(_ headers: OpaquePointer?, _ name: String, _ value: UnsafeRawBufferPointer?) {
        if let value {
            _ = rd_kafka_header_add(headers, name, -1, value.baseAddress ?? UnsafeRawPointer(bitPattern: 1), value.count)
        } else {
            _ = rd_kafka_header_add(headers, name, -1, nil, 0)
        }
    }

    /// Enqueues one record, to the cached topic handle `rkt` when there is one (skipping
    /// librdkafka's lookup by name), with `opaque` (its delivery slot) as the message's opaque.
    private static func enqueue(_ rk: OpaquePointer, _ rkt: OpaquePointer?, _ record: ProducerRecord, _ opaque: UnsafeMutableRawPointer) throws(KafkaError) {
        var headers: OpaquePointer?
        if !record.headers.isEmpty {
            headers = rd_kafka_headers_new(record.headers.count)
            for h in record.headers {
                if let value = h.value { value.withUnsafeBytes { addHeader(headers, h.key, $0) } } else { addHeader(headers, h.key, nil) }
            }
        }
        let outcome = withBytes(record.key) { key in
            withBytes(record.value) { value in
                Result { () throws(KafkaError) in
                    try enqueue(rk, rkt, topic: record.topic, partition: record.partition, key: key, value: value, timestamp: record.timestamp,
                                headers: headers, opaque: opaque)
                }
            }
        }
        try outcome.get()
    }

    /// Enqueues one record from raw parts; librdkafka copies the key and value and takes the headers
    /// (on failure they are freed here, and the caller delivers the error).
    private static func enqueue(
        _ rk: OpaquePointer, _ rkt: OpaquePointer?, topic: String, partition: Int32?, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
        timestamp: Int64?, headers: OpaquePointer?, opaque: UnsafeMutableRawPointer
    ) throws(KafkaError) {
        // At most 8 fields, built on the stack: no allocation per record.
        let error: OpaquePointer? = withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 8) { vus in
            var n = 0
            func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                var v = rd_kafka_vu_t()
                v.vtype = type
                fill(&v)
                vus.initializeElement(at: n, to: v)
                n += 1
            }
            if let p = partition { add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = p } }
            if let key { add(RD_KAFKA_VTYPE_KEY) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress); $0.u.mem.size = key.count } }
            if let value { add(RD_KAFKA_VTYPE_VALUE) { $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress); $0.u.mem.size = value.count } }
            add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
            add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
            if let timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
            if let headers { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
            if let rkt {
                add(RD_KAFKA_VTYPE_RKT) { $0.u.ptr = UnsafeMutableRawPointer(rkt) }
                return rd_kafka_produceva(rk, vus.baseAddress, n)
            }
            return topic.withCString { name in
                add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = name }
                return rd_kafka_produceva(rk, vus.baseAddress, n)
            }
        }
        if let error {
            // Not enqueued: we still own the headers, and the caller delivers the failure.
            if let headers { rd_kafka_headers_destroy(headers) }
            throw KafkaError(consuming: error, context: "produce to \(topic)")
        }
    }

    /// Waits on a private queue (`rd_kafka_flush` with delivery-report events waits for the poller to
    /// serve every report; it does not serve them itself), so completions sent before the call have
    /// all run when this one does.
    public func flush(timeout: Duration, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        flushing.async { [client] in
            completion(Result { () throws(KafkaError) in
                try client.use("flush") { (rk: OpaquePointer) throws(KafkaError) in
                    let err = rd_kafka_flush(rk, milliseconds(timeout))
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "flush") }
                }
            })
        }
    }

    // MARK: Transactions

    private func transactional(_ what: String, _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void, _ call: @escaping @Sendable (OpaquePointer) -> OpaquePointer?) {
        blocking.async { [client] in
            completion(Result { () throws(KafkaError) in
                try client.use(what) { (rk: OpaquePointer) throws(KafkaError) in
                    if let error = call(rk) { throw KafkaError(consuming: error, context: what) }
                }
            })
        }
    }

    public func initTransactions(_ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        transactional("init transactions", completion) { rd_kafka_init_transactions($0, 30_000) }
    }

    public func beginTransaction() throws(KafkaError) {
        try client.use("begin transaction") { (rk: OpaquePointer) throws(KafkaError) in
            if let error = rd_kafka_begin_transaction(rk) { throw KafkaError(consuming: error, context: "begin transaction") }
        }
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

    /// Flushes what is queued (up to `timeout`), fails what is left (each completion runs, with
    /// `purge_queue` or `purge_inflight`), and frees the client. Idempotent. Called from one of this
    /// producer's own completions, it does not wait: the work continues on a background queue.
    public func close(timeout: Duration = .seconds(10)) {
        let (client, poller, topics) = (self.client, self.poller, self.topics)
        if poller.isCurrentThread {
            DispatchQueue.global().async { RdKafkaProducer.shutdown(client, poller, topics, timeout: timeout) }
        } else {
            RdKafkaProducer.shutdown(client, poller, topics, timeout: timeout)
        }
    }

    private static func shutdown(_ client: RdKafkaClient, _ poller: RdKafkaDeliveryPoller, _ topics: RdKafkaTopicHandles, timeout: Duration) {
        client.close { rk in
            _ = rd_kafka_flush(rk, milliseconds(timeout))
            _ = rd_kafka_purge(rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            // The poller serves the purge reports, so no completion is lost, then stops.
            _ = rd_kafka_flush(rk, 1_000)
            poller.stop()
            topics.destroyAll()
        }
    }
}

/// The one thread that serves a producer's delivery reports, statistics and errors from
/// librdkafka's main queue, one batch of reports per event.
final class RdKafkaDeliveryPoller: @unchecked Sendable {
    private let stopped = StopFlag()
    private let finished = DispatchSemaphore(value: 0)
    private let thread: Thread

    init(_ client: RdKafkaClient) {
        let rk = RdHandle(pointer: client.callbackHandle)
        let context = client.context
        let (stopped, finished) = (self.stopped, self.finished)
        thread = Thread {
            let queue = rd_kafka_queue_get_main(rk.pointer)!
            var topicNames = TopicNameCache()
            while !stopped.isSet {
                guard let event = rd_kafka_queue_poll(queue, 50) else { continue }
                RdKafkaDeliveryPoller.serve(event, context, &topicNames)
                rd_kafka_event_destroy(event)
            }
            // Whatever arrived before the stop is still served.
            while let event = rd_kafka_queue_poll(queue, 0) {
                RdKafkaDeliveryPoller.serve(event, context, &topicNames)
                rd_kafka_event_destroy(event)
            }
            rd_kafka_queue_destroy(queue)
            finished.signal()
        }
        thread.name = "kafka-producer-poll"
        thread.start()
    }

    /// True on the poller thread itself (inside a completion).
    var isCurrentThread: Bool { Thread.current === thread }

    /// Stops the thread and waits for it to finish (never call from the poller thread).
    func stop() {
        stopped.set()
        finished.wait()
    }

    private static func serve(_ event: OpaquePointer, _ context: RdKafkaClientContext, _ topicNames: inout TopicNameCache) {
        switch Int32(rd_kafka_event_type(event)) {
        case Int32(RD_KAFKA_EVENT_DR):
            while let message = rd_kafka_event_message_next(event) {
                guard let opaque = message.pointee._private else { continue }
                DeliveryBatch.deliver(opaque, result(of: message, topicNames: &topicNames))
            }
        case Int32(RD_KAFKA_EVENT_STATS):
            if let json = rd_kafka_event_stats(event) { context.statistics(String(cString: json)) }
        case Int32(RD_KAFKA_EVENT_ERROR):
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? ""
            context.logger.error("kafka producer error: \(text)", metadata: ["kafka.client": "\(context.name)", "kafka.fatal": "\(rd_kafka_event_error_is_fatal(event) != 0)"])
        default:
            break
        }
    }

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
}

/// Topic handles by name, so a send skips librdkafka's lookup by name; bounded, so a producer fed
/// arbitrary topic names does not keep a handle for each (beyond the bound, sends go by name).
final class RdKafkaTopicHandles: @unchecked Sendable {
    private struct Handles {
        var byName: [String: RdHandle] = [:]
        /// The last one used: records to one topic come in runs, and this skips the hash.
        var last: (name: String, handle: RdHandle)?
    }
    private let handles = Mutex(Handles())
    static let bound = 256

    func handle(_ rk: OpaquePointer, _ name: String) -> OpaquePointer? {
        let found = handles.withLock { h -> RdHandle? in
            if let last = h.last, last.name == name { return last.handle }
            if let known = h.byName[name] {
                h.last = (name, known)
                return known
            }
            guard h.byName.count < RdKafkaTopicHandles.bound, let rkt = rd_kafka_topic_new(rk, name, nil) else { return nil }
            let made = RdHandle(pointer: rkt)
            h.byName[name] = made
            h.last = (name, made)
            return made
        }
        return found?.pointer
    }

    /// Releases every handle (before the client is destroyed).
    func destroyAll() {
        handles.withLock { h in
            for rkt in h.byName.values { rd_kafka_topic_destroy(rkt.pointer) }
            h = Handles()
        }
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
