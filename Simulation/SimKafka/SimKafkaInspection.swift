import MeshCore

/// One readable record of a simulated partition, as a checker sees it.
public struct SimLogEntry: Hashable, Sendable {
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [KafkaHeader]

    public init(offset: Int64, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader] = []) {
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// Read-only views of the cluster's ground truth for checkers: what the logs hold and what each
/// group has committed, straight from the brokers' state (never from a client's view).
extension SimKafkaCluster {
    /// The readable records of `tp` (below the high watermark, not aborted), in offset order.
    public func readableLog(_ tp: TopicPartition) -> [SimLogEntry] {
        guard let t = topics[tp.topic], Int(tp.partition) < t.partitions.count else { return [] }
        let p = t.partitions[Int(tp.partition)]
        return p.log.prefix { $0.offset < p.highWatermark }.filter { $0.txn != .aborted && $0.txn != .marker }
            .map { SimLogEntry(offset: $0.offset, key: $0.key, value: $0.value, headers: $0.headers) }
    }

    /// The high watermark of `tp` (0 for an unknown partition).
    public func highWatermark(_ tp: TopicPartition) -> Int64 {
        guard let t = topics[tp.topic], Int(tp.partition) < t.partitions.count else { return 0 }
        return t.partitions[Int(tp.partition)].highWatermark
    }

    /// The offsets `group` has committed, by partition.
    public func committedOffsets(_ group: String) -> [TopicPartition: Int64] {
        groups[group]?.committed ?? [:]
    }

    /// The group's members and what each holds (revoking in brackets), for a checker's message.
    public func groupDescription(_ group: String) -> String {
        guard let g = groups[group] else { return "no group \(group)" }
        let members = g.members.map { m in
            "\(m.id) \(m.assignment.map(\.description).joined(separator: ","))" + (m.revoking.isEmpty ? "" : " [\(m.revoking.map(\.description).joined(separator: ","))]")
        }
        return "generation \(g.generation), members: " + (members.isEmpty ? "none" : members.joined(separator: "; "))
    }
}
