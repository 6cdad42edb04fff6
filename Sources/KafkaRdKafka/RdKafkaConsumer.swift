import CRdKafka
import Dispatch
import Foundation
import MeshCore
import Synchronization

/// ``KafkaGroupConsumer`` on librdkafka with manual offset management.
///
/// - Polling runs on a dedicated serial queue (`rd_kafka_consumer_poll` blocks), never on the caller's
///   thread or the cooperative pool; the handler is called there with the events in order.
/// - The rebalance callback becomes `.assigned` / `.revoked` events in the same sequence as records.
///   On revocation the partitions are unassigned as the callback returns (eager protocol), so a handler
///   that wants to commit revoked partitions' progress must do so from the offsets it tracked; such a
///   late commit may be refused with `rebalance_in_progress` or `illegal_generation`, which at-least-once
///   consumers treat as "will be redelivered".
/// - Auto-commit and auto offset store are off: offsets move only through ``commit(_:_:)``.
public final class RdKafkaConsumer: KafkaGroupConsumer, @unchecked Sendable {
    public let groupId: String
    private let rk: RdHandle
    private let context: RdKafkaClientContext
    private let pollQueue = DispatchQueue(label: "light-mesh.kafka.consumer.poll")
    private let blocking = DispatchQueue(label: "light-mesh.kafka.consumer.blocking")
    private let closed = Mutex(false)
    /// Topic names by handle; touched only on `pollQueue`.
    private var topicNames = TopicNameCache()

    public init(_ cluster: RdKafkaClusterSettings, config: KafkaConsumerConfig) throws(KafkaError) {
        groupId = config.groupId
        var settings = cluster.base(clientId: config.clientId)
        settings += [
            ("group.id", config.groupId),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", config.resetPolicy.rawValue),
            ("isolation.level", config.isolation.rawValue),
            ("session.timeout.ms", String(milliseconds(config.sessionTimeout))),
            ("enable.partition.eof", "false"),
        ]
        settings += cluster.extras()
        var conf = try RdKafkaConf(settings)
        let context = RdKafkaClientContext(name: config.clientId, logger: cluster.logger)
        context.install(on: conf.pointer!)
        rd_kafka_conf_set_rebalance_cb(conf.pointer!) { rk, err, partitions, _ in
            guard let rk, let ctx = RdKafkaClientContext.from(rk) else { return }
            let tps = PartitionList.partitions(partitions)
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                _ = rd_kafka_assign(rk, partitions)
                ctx.rebalanceEvents.withLock { $0.append(.assigned(tps)) }
            } else {
                ctx.rebalanceEvents.withLock { $0.append(.revoked(tps)) }
                _ = rd_kafka_assign(rk, nil)
            }
        }
        let rk = try conf.makeClient(RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk)
        self.rk = RdHandle(pointer: rk)
        self.context = context
    }

    deinit { closeNow() }

    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for t in topics { rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(rk.pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "subscribe \(topics)") }
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
        let list = PartitionList.make(partitions, offsets: partitions.map { _ in offset })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_assign(rk.pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rdkafka: err, context: "assign") }
        context.rebalanceEvents.withLock { $0.append(.assigned(partitions.sorted())) }
    }

    public func poll(maxRecords: Int, timeout: Duration, _ handler: @escaping @Sendable ([ConsumerEvent]) -> Void) {
        pollQueue.async { [self] in
            if closed.withLock({ $0 }) { return handler([]) }
            var events: [ConsumerEvent] = []
            var records: [ConsumerRecord] = []
            func flushRecords() {
                if !records.isEmpty { events.append(.records(records)); records.removeAll() }
            }
            /// Moves rebalance events gathered by the callback into the output, after the records before them.
            func takeRebalances() -> Bool {
                let pending = context.rebalanceEvents.withLock { e in defer { e.removeAll() }; return e }
                guard !pending.isEmpty else { return false }
                flushRecords()
                events += pending
                return true
            }
            let deadline = ContinuousClock.now + timeout
            while records.count < maxRecords {
                if takeRebalances() { break }  // hand assignment changes over promptly
                let left = deadline - ContinuousClock.now
                guard left > .zero else { break }
                // Wait for the first record; once we have some, take only what is already fetched.
                guard let message = rd_kafka_consumer_poll(rk.pointer, records.isEmpty ? milliseconds(left) : 0) else {
                    if records.isEmpty { continue } else { break }
                }
                defer { rd_kafka_message_destroy(message) }
                _ = takeRebalances()
                if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    flushRecords()
                    events.append(.error(KafkaError(rdkafka: message.pointee.err, context: "consume")))
                    continue
                }
                records.append(RdKafkaConsumer.record(message, topicNames: &topicNames))
            }
            _ = takeRebalances()
            flushRecords()
            handler(events)
        }
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
            key: bytes(m.key, m.key_len), value: bytes(m.payload, m.len), headers: headers, timestamp: timestamp)
    }

    public func commit(_ offsets: [PartitionOffset], _ completion: @escaping @Sendable (Result<Void, KafkaError>) -> Void) {
        let rk = self.rk
        blocking.async {
            let list = PartitionList.make(offsets.map(\.topicPartition), offsets: offsets.map(\.offset))
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_commit(rk.pointer, list, 0)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { return completion(.failure(KafkaError(rdkafka: err, context: "commit"))) }
            if let bad = PartitionList.elements(list).first(where: { $0.err != RD_KAFKA_RESP_ERR_NO_ERROR }) {
                return completion(.failure(KafkaError(rdkafka: bad.err, context: "commit \(String(cString: bad.topic))-\(bad.partition)")))
            }
            completion(.success(()))
        }
    }

    public func committed(_ partitions: [TopicPartition], _ completion: @escaping @Sendable (Result<[PartitionOffset], KafkaError>) -> Void) {
        let rk = self.rk
        blocking.async {
            let list = PartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_committed(rk.pointer, list, 10_000)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { return completion(.failure(KafkaError(rdkafka: err, context: "committed"))) }
            let found = PartitionList.elements(list).filter { $0.offset >= 0 }
                .map { PartitionOffset(TopicPartition(String(cString: $0.topic), $0.partition), $0.offset) }
            completion(.success(found.sorted { $0.topicPartition < $1.topicPartition }))
        }
    }

    public func pause(_ partitions: [TopicPartition]) {
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = rd_kafka_pause_partitions(rk.pointer, list)
    }

    public func resume(_ partitions: [TopicPartition]) {
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = rd_kafka_resume_partitions(rk.pointer, list)
    }

    public func seek(_ partition: TopicPartition, to target: SeekTarget) throws(KafkaError) {
        let offset: Int64
        switch target {
        case .offset(let o): offset = o
        case .beginning: offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .end: offset = Int64(RD_KAFKA_OFFSET_END)
        }
        let list = PartitionList.make([partition], offsets: [offset])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_seek_partitions(rk.pointer, list, 10_000) { throw KafkaError(consuming: error, context: "seek \(partition)") }
        if let e = PartitionList.elements(list).first, e.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(rdkafka: e.err, context: "seek \(partition)")
        }
    }

    public func position(_ partition: TopicPartition) -> Int64? {
        let list = PartitionList.make([partition])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard rd_kafka_position(rk.pointer, list) == RD_KAFKA_RESP_ERR_NO_ERROR,
              let e = PartitionList.elements(list).first, e.offset >= 0 else { return nil }
        return e.offset
    }

    public func groupMetadata() -> ConsumerGroupMetadata {
        let member = rd_kafka_memberid(rk.pointer).map { p -> String in defer { rd_kafka_mem_free(rk.pointer, p) }; return String(cString: p) } ?? ""
        var native: [UInt8] = []
        if let cgmd = rd_kafka_consumer_group_metadata(rk.pointer) {
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
        return ConsumerGroupMetadata(groupId: groupId, generation: -1, memberId: member, native: native)
    }

    public func close(_ completion: @escaping @Sendable () -> Void) {
        pollQueue.async { [self] in
            closeNow()
            completion()
        }
    }

    /// Leaves the group (revoking partitions) and frees the client. Idempotent.
    private func closeNow() {
        guard closed.withLock({ c in defer { c = true }; return !c }) else { return }
        _ = rd_kafka_consumer_close(rk.pointer)
        rd_kafka_destroy(rk.pointer)
        _ = context
    }
}
