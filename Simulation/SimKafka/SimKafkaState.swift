import MeshCore
import MeshSimulator

/// Settings of the simulated cluster.
public struct SimKafkaConfig: Sendable {
    /// A request without a reply by then fails with `request_timed_out` (outcome unknown).
    public var requestTimeout: Duration = .seconds(1)
    /// How long a new leader takes to be elected after the old one crashed.
    public var leaderElectionDelay: Duration = .milliseconds(100)
    /// With `acks=1`, how long after the ack the followers copy a record; a leader crash before that
    /// loses it (this is how `acks=1` loses acknowledged data on failover).
    public var replicationLag: Duration = .milliseconds(20)
    /// An empty fetch waits this long before looking again (Kafka's `fetch.max.wait.ms`).
    public var fetchWait: Duration = .milliseconds(10)
    /// `min.insync.replicas`: an `acks=all` write needs this many in-sync replicas (capped by the
    /// replication factor), else it is refused with `not_enough_replicas`.
    public var minInsyncReplicas = 2
    /// How long a restarted broker takes to catch up and rejoin a partition's in-sync replicas.
    public var catchUpDelay: Duration = .milliseconds(50)
    /// Retention: each partition keeps at most this many records, the oldest deleted first (the log
    /// start advances; a consumer whose position fell below it gets `offset_out_of_range` and its
    /// reset policy). `nil` keeps everything.
    public var retainedRecords: Int? = nil
    /// The producer's pause between retries.
    public var retryBackoff: Duration = .milliseconds(50)
    /// Producing to an unknown topic creates it with this many partitions (0: refuse with unknown_topic_or_part).
    public var autoCreatePartitions: Int32 = 0
    public init() {}
}

/// One stored record.
struct StoredRecord {
    var offset: Int64
    var key: [UInt8]?
    var value: [UInt8]?
    var headers: [KafkaHeader]
    var timestamp: Int64
    var producerId: Int64
    /// `marker` is a transaction's commit or abort control record: it takes an offset, as in Kafka,
    /// but is never returned to consumers.
    enum Txn { case none, open, committed, aborted, marker }
    var txn: Txn
}

/// A partition's log and replication state.
struct SimPartition {
    var log: [StoredRecord] = []
    var logStart: Int64 = 0
    var leader: Int
    var replicas: [Int]
    /// The in-sync replicas: they hold every `acks=all` write. A crashed broker leaves it (unless it
    /// is the last one, as in Kafka, so the partition waits for it rather than losing data); a
    /// restarted one rejoins after catching up. Leaders are elected from it only.
    var isr: Set<Int> = []
    /// Where the log of a replica outside the ISR ends: what it had copied when it fell out.
    var staleEnd: [Int: Int64] = [:]
    /// Offset up to which followers have copied the log; the high watermark.
    var replicatedEnd: Int64 = 0
    /// Idempotence: the last sequence written per producer id.
    var lastSequence: [Int64: (sequence: Int64, offset: Int64)] = [:]
    /// First offset of each open transaction, per producer id.
    var openTransactions: [Int64: Int64] = [:]
    var electing = false

    var logEnd: Int64 { logStart + Int64(log.count) }
    var highWatermark: Int64 { replicatedEnd }
    /// The last stable offset: nothing at or above the first open transaction is visible to `read_committed`.
    var lastStableOffset: Int64 { openTransactions.values.min().map { min($0, highWatermark) } ?? highWatermark }

    func record(at offset: Int64) -> StoredRecord? {
        let i = Int(offset - logStart)
        return i >= 0 && i < log.count ? log[i] : nil
    }
}

struct SimTopic {
    var partitions: [SimPartition]
}

/// A transactional producer's state at the coordinator.
struct SimTransaction {
    var producerId: Int64
    var epoch: Int32
    var partitions: Set<TopicPartition> = []
    var offsets: [(group: String, offsets: [PartitionOffset])] = []
}
