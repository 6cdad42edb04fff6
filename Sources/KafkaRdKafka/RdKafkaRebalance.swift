import CRdKafka
import Dispatch
import MeshCore
import Synchronization

/// What the consumer does inside librdkafka's rebalance callback (on the thread polling it).
///
/// Assign: add the partitions (`incremental_assign` under the cooperative protocol, `assign` under
/// eager), checking the result; only a successful assignment becomes `.assigned`.
///
/// Revoke: run the before-revoke step and wait for its offsets (bounded), commit them synchronously
/// while the partitions are still ours, then give the partitions up (`incremental_unassign` or
/// `assign(NULL)`) and report `.revoked`, or `.lost` when librdkafka says the assignment was lost,
/// in which case nothing is committed. Failures become `.error` events before the revocation.
enum RdKafkaRebalance {
    static func handle(
        _ rk: OpaquePointer, _ ctx: RdKafkaClientContext, _ err: rd_kafka_resp_err_t,
        _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
    ) {
        let cooperative = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } == "COOPERATIVE"
        let tps = PartitionList.partitions(partitions)
        var events: [ConsumerEvent] = []
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            if let failure = assign(rk, partitions, cooperative: cooperative) {
                events.append(.error(failure))
            } else {
                events.append(.assigned(tps))
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(rk) != 0
            let offsets = beforeRevoke(ctx, PartitionRevocation(partitions: tps, lost: lost))
            if !lost && !offsets.isEmpty {
                do throws(KafkaError) {
                    try RdKafkaConsumer.commitNow(rk, offsets)
                } catch {
                    events.append(.error(KafkaError(code: error.code, message: "commit before revocation: \(error.message)", retriable: error.retriable)))
                }
            }
            if let failure = unassign(rk, partitions, cooperative: cooperative) { events.append(.error(failure)) }
            events.append(lost ? .lost(tps) : .revoked(tps))
        default:
            // A rebalance error: librdkafka asks the application to drop its assignment to resync.
            events.append(.error(KafkaError(rdkafka: err, context: "rebalance")))
            let held = RdKafkaConsumer.assignment(rk)
            _ = unassign(rk, nil, cooperative: cooperative, all: held)
            if !held.isEmpty { events.append(.lost(held)) }
        }
        ctx.rebalanceEvents.withLock { $0 += events }
    }

    private static func assign(_ rk: OpaquePointer, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, cooperative: Bool) -> KafkaError? {
        if cooperative {
            return rd_kafka_incremental_assign(rk, partitions).map { KafkaError(consuming: $0, context: "incremental assign") }
        }
        let err = rd_kafka_assign(rk, partitions)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(rdkafka: err, context: "assign")
    }

    private static func unassign(
        _ rk: OpaquePointer, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, cooperative: Bool,
        all: [TopicPartition]? = nil
    ) -> KafkaError? {
        if cooperative {
            if let all {
                guard !all.isEmpty else { return nil }
                let list = PartitionList.make(all)
                defer { rd_kafka_topic_partition_list_destroy(list) }
                return rd_kafka_incremental_unassign(rk, list).map { KafkaError(consuming: $0, context: "incremental unassign") }
            }
            return rd_kafka_incremental_unassign(rk, partitions).map { KafkaError(consuming: $0, context: "incremental unassign") }
        }
        let err = rd_kafka_assign(rk, nil)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(rdkafka: err, context: "unassign")
    }

    /// Calls the installed before-revoke step and waits for its answer, at most the revocation
    /// timeout; no step, or no answer in time, commits nothing. Only offsets of the revoked
    /// partitions are kept. Lost partitions are reported to the step without waiting.
    private static func beforeRevoke(_ ctx: RdKafkaClientContext, _ revocation: PartitionRevocation) -> [PartitionOffset] {
        let (handler, timeout) = ctx.revocation.withLock { ($0.handler, $0.timeout) }
        guard let handler, !revocation.partitions.isEmpty else { return [] }
        if revocation.lost {  // told, not waited for: nothing of lost partitions can be committed
            handler(revocation) { _ in }
            return []
        }
        let answer = RevocationAnswer()
        handler(revocation) { offsets in answer.give(offsets) }
        guard let offsets = answer.wait(timeout) else {
            ctx.logger.warning("the before-revoke step did not answer in time; partitions go without its commit",
                               metadata: ["kafka.client": "\(ctx.name)", "kafka.partitions": "\(revocation.partitions)"])
            return []
        }
        let revoked = Set(revocation.partitions)
        return offsets.filter { revoked.contains($0.topicPartition) }
    }
}

/// The before-revoke step's answer, given once from any thread and waited for with a bound.
private final class RevocationAnswer: @unchecked Sendable {
    private let offsets = Mutex<[PartitionOffset]?>(nil)
    private let given = DispatchSemaphore(value: 0)

    func give(_ value: [PartitionOffset]) {
        let first = offsets.withLock { o -> Bool in
            guard o == nil else { return false }
            o = value
            return true
        }
        if first { given.signal() }
    }

    func wait(_ timeout: Duration) -> [PartitionOffset]? {
        let nanos = Int(clamping: max(0, timeout.nanoseconds))
        guard given.wait(timeout: .now() + .nanoseconds(nanos)) == .success else { return nil }
        return offsets.withLock { $0 }
    }
}
