import CRdKafka
import Dispatch
import Foundation
import MeshCore
import Synchronization

/// ``KafkaGroupConsumer`` on librdkafka with manual offset management.
///
/// - Polling runs on a dedicated serial queue (`rd_kafka_consumer_poll` blocks), never on the caller's
///   thread or the cooperative pool; the handler is called there with the events in order.
/// - Rebalances follow the configured protocol: cooperative-sticky (the default) hands over only the
///   partitions that move (`rd_kafka_incremental_assign`/`unassign`); eager revokes everything.
/// - Before partitions go, the rebalance callback runs the before-revoke step installed with
///   ``onRevoke(_:)``, waits for its answer up to the revocation timeout, and commits the offsets it
///   returned while the partitions are still ours (librdkafka unassigns when the callback returns).
///   Lost partitions (`rd_kafka_assignment_lost`) are reported as `.lost` and never committed.
/// - Auto-commit and auto offset store are off: offsets move only through ``commit(_:_:)`` and the
///   before-revoke step.
/// - Nothing blocks the caller: commits, committed-offset reads, closing and releasing the last
///   reference all run on the consumer's own queues.
public final class RdKafkaConsumer: KafkaGroupConsumer, @unchecked Sendable {
    public let groupId: String
    private let client: RdKafkaClient
    private let pollQueue = DispatchQueue(label: "light-mesh.kafka.consumer.poll")
    private let blocking = DispatchQueue(label: "light-mesh.kafka.consumer.blocking")
    /// Topic names by handle; touched only on `pollQueue`.
    private var topicNames = TopicNameCache()
    /// The consumer queue, read in batches; touched only on `pollQueue`, released before the client.
    private let consumerQueue: OpaquePointer
    private let batch = MessageBatch(capacity: 1_000)
    /// How long close may serve a rebalance before leaving: the before-revoke step's bound and a margin.
    private let drainBound: Duration

    public init(_ cluster: RdKafkaClusterSettings, config: KafkaConsumerConfig) throws(KafkaError) {
        groupId = config.groupId
        drainBound = config.revocationTimeout + .seconds(5)
        let owned: [(String, String)] = [
            ("group.id", config.groupId),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", config.resetPolicy.rawValue),
            ("isolation.level", config.isolation.rawValue),
            ("session.timeout.ms", String(milliseconds(config.sessionTimeout))),
            ("enable.partition.eof", "false"),
            ("partition.assignment.strategy", config.rebalanceProtocol == .cooperative ? "cooperative-sticky" : "range,roundrobin"),
        ]
        let settings = cluster.base(clientId: config.clientId) + owned + (try cluster.extras(reserved: owned))
        var conf = try RdKafkaConf(settings)
        let context = RdKafkaClientContext(name: config.clientId, logger: cluster.logger)
        context.revocation.withLock { $0.timeout = config.revocationTimeout }
        context.install(on: conf.pointer!)
        rd_kafka_conf_set_rebalance_cb(conf.pointer!) { rk, err, partitions, _ in
            guard let rk, let ctx = RdKafkaClientContext.from(rk) else { return }
            RdKafkaRebalance.handle(rk, ctx, err, partitions)
        }
        let rk = try conf.makeClient(RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk)
        consumerQueue = rd_kafka_queue_get_consumer(rk)
        client = RdKafkaClient(rk, context: context)
    }

    /// Releasing the last reference never blocks: leaving the group and freeing the client run on a
    /// background queue (the before-revoke step still runs there).
    deinit {
        let (client, queue, bound) = (self.client, RdHandle(pointer: consumerQueue), drainBound)
        DispatchQueue.global().async { RdKafkaConsumer.shutdown(client, queue, drainFor: bound) }
    }

    public func onRevoke(_ handler: @escaping RevocationHandler) {
        client.context.revocation.withLock { $0.handler = handler }
    }

    public func subscribe(_ topics: [String]) throws(KafkaError) {
        try client.use("subscribe") { (rk: OpaquePointer) throws(KafkaError) in
            let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for t in topics { rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA) }
            let err = rd_kafka_subscribe(rk, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "subscribe \(topics)") }
        }
    }

    public func assign(_ partitions: [TopicPartition]) throws(KafkaError) {
        try assign(partitions, startingAt: nil)
    }

    /// Assigns partitions starting at `start` (`nil`: the group's committed offsets, else the reset
    /// policy). Starting at the beginning or end skips the committed-offset lookup entirely.
    public func assign(_ partitions: [TopicPartition], startingAt start: SeekTarget?) throws(KafkaError) {
        let offset: Int64
        switch start {
        case nil: offset = Int64(RD_KAFKA_OFFSET_STORED)
        case .beginning: offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .end: offset = Int64(RD_KAFKA_OFFSET_END)
        case .offset(let o): offset = o
        }
        try client.use("assign") { (rk: OpaquePointer) throws(KafkaError) in
            let list = PartitionList.make(partitions, offsets: partitions.map { _ in offset })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_assign(rk, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "assign") }
        }
        client.context.rebalanceEvents.withLock { $0.append(.assigned(partitions.sorted())) }
    }

    public func poll(maxRecords: Int, timeout: Duration, _ handler: @escaping @Sendable ([ConsumerEvent]) -> Void) {
        pollQueue.async { [self] in
            let events = (try? client.use("poll") { rk in pollNow(rk, maxRecords: maxRecords, timeout: timeout) }) ?? []
            handler(events)
        }
    }

    /// One poll on `pollQueue`: records until `maxRecords`, the timeout, or an assignment change.
    private func pollNow(_ rk: OpaquePointer, maxRecords: Int, timeout: Duration) -> [ConsumerEvent] {
        let context = client.context
        var events: [ConsumerEvent] = []
        var records: [ConsumerRecord] = []
        func flushRecords() {
            if !records.isEmpty { events.append(.records(records)); records.removeAll() }
        }
        /// Moves rebalance events gathered by the callback into the output, after the records before
        /// them; records of partitions given up are dropped (the next owner reads them again from the
        /// committed offset, and the before-revoke step has already answered for them).
        func takeRebalances() -> Bool {
            let pending = context.rebalanceEvents.withLock { e in defer { e.removeAll() }; return e }
            guard !pending.isEmpty else { return false }
            for event in pending {
                switch event {
                case .revoked(let gone), .lost(let gone):
                    let set = Set(gone)
                    records.removeAll { set.contains($0.topicPartition) }
                default: break
                }
            }
            flushRecords()
            events += pending
            return true
        }
        let deadline = ContinuousClock.now + timeout
        while records.count < maxRecords {
            if takeRebalances() { break }  // hand assignment changes over promptly
            // Take what is already fetched, in one call; wait (for one message) only when nothing is.
            var taken = batch.take(from: consumerQueue, max: maxRecords - records.count)
            if taken == 0 && records.isEmpty {
                let left = deadline - ContinuousClock.now
                guard left > .zero else { break }
                guard let first = rd_kafka_consumer_poll(rk, milliseconds(left)) else { continue }
                batch.put(first)
                taken = 1
            }
            guard taken > 0 else { break }
            _ = takeRebalances()
            for message in batch.messages(taken) {
                defer { rd_kafka_message_destroy(message) }
                if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    flushRecords()
                    events.append(.error(KafkaError(rdkafka: message.pointee.err, context: "consume")))
                    continue
                }
                records.append(RdKafkaConsumer.record(message, topicNames: &topicNames))
            }
        }
        _ = takeRebalances()
        flushRecords()
        return events
    }

    static func record(_ message: UnsafeMutablePointer<rd_kafka_message_t>, topicNames: inout TopicNameCache) -> ConsumerRecord {
        let m = message.pointee
        let topic = topicNames.name(m.rkt)
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &type)
        func bytes(_ p: UnsafeMutableRawPointer?, _ n: Int) -> [UInt8]? {
            guard let p else { return nil }
            return Array(UnsafeRawBufferPointer(start: p, count: n))
        }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var index = 0
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let v = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                headers.append(KafkaHeader(name.map { String(cString: $0) } ?? "", v))
                index += 1
            }
        }
        return ConsumerRecord(
            topicPartition: TopicPartition(topic, m.partition), offset: m.offset,
            key: bytes(m.key, m.key_len), value: bytes(m.payload, m.len), headers: headers, timestamp: timestamp,
            timestampType: type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? .logAppendTime : .createTime)
    }

    public func commit(_ offsets: [PartitionOffset], _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        blocking.async { [client] in
            completion(Result { () throws(KafkaError) in
                try client.use("commit") { (rk: OpaquePointer) throws(KafkaError) in try RdKafkaConsumer.commitNow(rk, offsets) }
            })
        }
    }

    /// A synchronous commit, reporting the first partition that failed.
    static func commitNow(_ rk: OpaquePointer, _ offsets: [PartitionOffset]) throws(KafkaError) {
        let list = PartitionList.make(offsets.map(\.topicPartition), offsets: offsets.map(\.offset))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(rk, list, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "commit") }
        if let bad = PartitionList.elements(list).first(where: { $0.err != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            throw KafkaError(rdkafka: bad.err, context: "commit \(String(cString: bad.topic))-\(bad.partition)")
        }
    }

    public func committed(_ partitions: [TopicPartition], _ completion: @escaping @Sendable (Result<[PartitionOffset], KafkaError>) -> Void) {
        blocking.async { [client] in
            completion(Result { () throws(KafkaError) in
                try client.use("committed") { (rk: OpaquePointer) throws(KafkaError) -> [PartitionOffset] in
                    let list = PartitionList.make(partitions)
                    defer { rd_kafka_topic_partition_list_destroy(list) }
                    let err = rd_kafka_committed(rk, list, 10_000)
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "committed") }
                    return PartitionList.elements(list).filter { $0.offset >= 0 }
                        .map { PartitionOffset(TopicPartition(String(cString: $0.topic), $0.partition), $0.offset) }
                        .sorted { $0.topicPartition < $1.topicPartition }
                }
            })
        }
    }

    public func pause(_ partitions: [TopicPartition]) {
        client.ifOpen { rk in
            let list = PartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            _ = rd_kafka_pause_partitions(rk, list)
        }
    }

    public func resume(_ partitions: [TopicPartition]) {
        client.ifOpen { rk in
            let list = PartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            _ = rd_kafka_resume_partitions(rk, list)
        }
    }

    /// Starts the seek without waiting for it (librdkafka applies it before the partition's next
    /// fetch); a partition that is not assigned is refused at once.
    public func seek(_ partition: TopicPartition, to target: SeekTarget) throws(KafkaError) {
        let offset: Int64
        switch target {
        case .offset(let o): offset = o
        case .beginning: offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .end: offset = Int64(RD_KAFKA_OFFSET_END)
        }
        try client.use("seek") { (rk: OpaquePointer) throws(KafkaError) in
            guard RdKafkaConsumer.assignment(rk).contains(partition) else {
                throw KafkaError(code: "state", message: "seek \(partition): the partition is not assigned")
            }
            let list = PartitionList.make([partition], offsets: [offset])
            defer { rd_kafka_topic_partition_list_destroy(list) }
            if let error = rd_kafka_seek_partitions(rk, list, 0) { throw KafkaError(consuming: error, context: "seek \(partition)") }
        }
    }

    /// Whether the consumer has a group subscription (a manual assignment has none).
    static func subscribed(_ rk: OpaquePointer) -> Bool {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_subscription(rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return false }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return list.pointee.cnt > 0
    }

    static func assignment(_ rk: OpaquePointer) -> [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return PartitionList.partitions(list)
    }

    public func position(_ partition: TopicPartition) -> Int64? {
        try? client.use("position") { (rk: OpaquePointer) throws(KafkaError) -> Int64? in
            let list = PartitionList.make([partition])
            defer { rd_kafka_topic_partition_list_destroy(list) }
            guard rd_kafka_position(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  let e = PartitionList.elements(list).first, e.offset >= 0 else { return nil }
            return e.offset
        } ?? nil
    }

    public func groupMetadata() -> ConsumerGroupMetadata {
        let (member, native) = (try? client.use("group metadata") { (rk: OpaquePointer) throws(KafkaError) -> (String, [UInt8]) in
            let member = rd_kafka_memberid(rk).map { p -> String in defer { rd_kafka_mem_free(rk, p) }; return String(cString: p) } ?? ""
            var native: [UInt8] = []
            if let cgmd = rd_kafka_consumer_group_metadata(rk) {
                defer { rd_kafka_consumer_group_metadata_destroy(cgmd) }
                var buffer: UnsafeMutableRawPointer?
                var size = 0
                if let error = rd_kafka_consumer_group_metadata_write(cgmd, &buffer, &size) {
                    rd_kafka_error_destroy(error)
                } else if let buffer {
                    native = Array(UnsafeRawBufferPointer(start: buffer, count: size))
                    rd_kafka_mem_free(nil, buffer)
                }
            }
            return (member, native)
        }) ?? ("", [])
        return ConsumerGroupMetadata(groupId: groupId, generation: -1, memberId: member, native: native)
    }

    /// Leaves the group (running the before-revoke step for what is still assigned) and frees the
    /// client, after the poll in progress; `completion` runs when it is done. Idempotent.
    public func close(_ completion: @escaping @Sendable () -> Void) {
        let (queue, bound) = (RdHandle(pointer: consumerQueue), drainBound)
        pollQueue.async { [client] in
            RdKafkaConsumer.shutdown(client, queue, drainFor: bound)
            completion()
        }
    }

    /// Leaves the group, releases the consumer queue handle (librdkafka counts it as a reference to
    /// the client) and frees the client.
    ///
    /// librdkafka 2.0.2 aborts the process (`rd_kafka_cgrp_terminated: assert:
    /// !rd_kafka_assignment_in_progress`) when a cooperative consumer is closed while a rebalance is
    /// moving its partitions (librdkafka issues 4312 and 4792; seen here once in CI). So the consumer
    /// first unsubscribes and keeps serving the rebalance (the before-revoke step runs as usual;
    /// records fetched meanwhile are dropped, the next owner reads them from the committed offset)
    /// until nothing is assigned and that stays so, bounded, and only then closes.
    private static func shutdown(_ client: RdKafkaClient, _ queue: RdHandle, drainFor bound: Duration) {
        client.close { rk in
            if subscribed(rk) && rd_kafka_unsubscribe(rk) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let deadline = ContinuousClock.now + bound
                var quietPolls = 0
                while quietPolls < 3 && ContinuousClock.now < deadline {
                    if let message = rd_kafka_consumer_poll(rk, 100) { rd_kafka_message_destroy(message) }
                    quietPolls = assignment(rk).isEmpty ? quietPolls + 1 : 0
                }
            }
            _ = rd_kafka_consumer_close(rk)
            rd_kafka_queue_destroy(queue.pointer)
        }
    }
}

/// A reusable array of message pointers for `rd_kafka_consume_batch_queue`; one per consumer, used
/// only on its poll queue.
final class MessageBatch: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
    }

    deinit { slots.deallocate() }

    /// Takes up to `max` messages already in the queue, without waiting; returns how many.
    func take(from queue: OpaquePointer, max: Int) -> Int {
        let n = rd_kafka_consume_batch_queue(queue, 0, slots, Swift.min(max, capacity))
        return n > 0 ? n : 0
    }

    /// Puts one message in the first slot.
    func put(_ message: UnsafeMutablePointer<rd_kafka_message_t>) { slots[0] = message }

    /// The first `count` messages taken (each must be destroyed by the caller).
    func messages(_ count: Int) -> [UnsafeMutablePointer<rd_kafka_message_t>] {
        (0..<count).compactMap { slots[$0] }
    }
}
