import MeshCore

/// What a pull consumer keeps for one assigned partition. A class: the engine changes it in place
/// for every record it buffers (a value in the engine's dictionary was copied whole each time,
/// buffer included, which made filling a large buffer quadratic).
final class PullPartition {
    /// Fetched and not yet handed to the app, in offset order.
    var buffered: [ConsumerRecord] = []
    var bufferedBytes = 0
    /// The offset after the last record handed to the app: no commit of this partition may go past
    /// it (a commit never passes a record the app was not given).
    var handedUpTo: Int64?
    /// The offset last committed by this instance (to skip auto commits that would change nothing).
    var committedUpTo: Int64?
    /// Polls numbered below this began before a seek of this partition: their records are stale.
    var pollBarrier: UInt64 = 0

    func take(_ record: ConsumerRecord) {
        buffered.append(record)
        bufferedBytes += PullPartition.size(record)
    }

    /// Drops what was fetched and not handed (a seek, a revocation).
    func clearBuffer() {
        buffered.removeAll()
        bufferedBytes = 0
    }

    /// Bytes of a record in an answer's budget: its key and value.
    static func size(_ record: ConsumerRecord) -> Int { (record.key?.count ?? 0) + (record.value?.count ?? 0) }
}
