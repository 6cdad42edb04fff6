import MeshCore
import Synchronization

/// The delivery bookkeeping of one batch of produced records: one object for the whole batch.
/// Each record's librdkafka opaque points at its slot (the batch and the record's index); results
/// arrive on the poller thread (or at once, for a record librdkafka refused to enqueue), and the
/// last one calls the completion with all of them in order.
///
/// Lifetime: the batch holds a reference to itself from creation until its last result, so it
/// outlives every opaque librdkafka holds; then the reference is dropped and the slots are freed.
final class DeliveryBatch: @unchecked Sendable {
    private struct Slot {
        unowned(unsafe) let batch: DeliveryBatch
        let index: Int
    }

    private let results: UnsafeMutableBufferPointer<Result<RecordMetadata, KafkaError>?>
    private let slots: UnsafeMutableBufferPointer<Slot>
    private let left: Atomic<Int>
    private let completion: @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void
    private var keepAlive: DeliveryBatch?

    init(count: Int, _ completion: @escaping @Sendable ([Result<RecordMetadata, KafkaError>]) -> Void) {
        results = .allocate(capacity: count)
        results.initialize(repeating: nil)
        slots = .allocate(capacity: count)
        left = Atomic(count)
        self.completion = completion
        for i in 0..<count { slots.initializeElement(at: i, to: Slot(batch: self, index: i)) }
        keepAlive = self
    }

    deinit {
        _ = results.deinitialize()
        results.deallocate()
        _ = slots.deinitialize()
        slots.deallocate()
    }

    /// The opaque to hand librdkafka with record `i`.
    func opaque(_ i: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(slots.baseAddress! + i) }

    /// Record `i`'s result. Each index gets exactly one (the poller's delivery report, or the
    /// failure to enqueue it); writes to distinct indices need no lock, and the counter's
    /// acquire-release ordering makes them all visible to whoever delivers the last one.
    func deliver(_ i: Int, _ result: Result<RecordMetadata, KafkaError>) {
        results[i] = result
        guard left.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 else { return }
        let last = keepAlive
        keepAlive = nil
        withExtendedLifetime(last) { completion(results.map { $0! }) }
    }

    /// The result of the record whose opaque is `opaque` (a delivery report, on the poller thread).
    static func deliver(_ opaque: UnsafeMutableRawPointer, _ result: Result<RecordMetadata, KafkaError>) {
        let slot = opaque.assumingMemoryBound(to: Slot.self).pointee
        slot.batch.deliver(slot.index, result)
    }
}
