import MeshCore
import Testing
@testable import KafkaSidecar

@Suite struct MetadataRoutesTests {
    func query(_ method: String, _ path: String) -> MetadataQuery? {
        if case .query(let q) = MetadataRoutes.decide(method: method, path: path) { q } else { nil }
    }

    @Test func readOnlyPathsAreMetadataAndEverythingElseIsNot() throws {
        #expect(query("GET", "/topics") == .topics)
        #expect(query("GET", "/topics/") == .topics)
        #expect(query("GET", "/topics/orders") == .topic("orders"))
        #expect(query("GET", "/topics/orders/partitions") == .partitions("orders"))
        #expect(query("GET", "/topics/orders/partitions/3") == .partition("orders", 3))
        #expect(query("GET", "/topics/orders/partitions/3/offsets") == .partitionOffsets("orders", 3))
        #expect(query("GET", "/consumers/g/lag") == .lag(group: "g"))
        // Produce and consumer paths are not metadata.
        if case .notMetadata = MetadataRoutes.decide(method: "POST", path: "/topics/orders") {} else { Issue.record("POST /topics is produce") }
        if case .notMetadata = MetadataRoutes.decide(method: "GET", path: "/consumers/g/instances/c1/records") {} else { Issue.record("records are the pull routes'") }
        // Hostile names are refused with their status.
        if case .refuse(let e) = MetadataRoutes.decide(method: "GET", path: "/topics/a%20b") { #expect(e.code == 40401) } else { Issue.record("not refused") }
        if case .refuse(let e) = MetadataRoutes.decide(method: "GET", path: "/topics/t/partitions/-1") { #expect(e.code == 40402) } else { Issue.record("not refused") }
        if case .refuse(let e) = MetadataRoutes.decide(method: "GET", path: "/consumers/" + String(repeating: "g", count: 300) + "/lag") {
            #expect(e.status == 422)
        } else { Issue.record("not refused") }
    }

    @Test func answersHideInternalTopicsAndKnowOnlyListedPartitions() throws {
        let listed = [TopicDescription(name: "b", partitions: 2), TopicDescription(name: "__consumer_offsets", partitions: 50), TopicDescription(name: "a", partitions: 1)]
        #expect(String(decoding: MetadataRoutes.topics(listed).body, as: UTF8.self) == #"["a","b"]"#)
        let topic = MetadataRoutes.topic(.topic("b"), listed[0])
        #expect(String(decoding: topic.body, as: UTF8.self) == #"{"name":"b","configs":{},"partitions":[{"partition":0},{"partition":1}]}"#)
        #expect(MetadataRoutes.topic(.partition("b", 2), listed[0]).status == 404)
        #expect(MetadataRoutes.topic(.topic("c"), nil).status == 404)
        #expect(String(decoding: MetadataRoutes.offsets(Watermarks(low: 3, high: 9)).body, as: UTF8.self) == #"{"beginning_offset":3,"end_offset":9}"#)
    }

    @Test func lagIsEndMinusCommittedNeverNegative() throws {
        let tp0 = TopicPartition("t", 0), tp1 = TopicPartition("t", 1), tp2 = TopicPartition("t", 2)
        let answer = MetadataRoutes.lag(group: "g", committed: [PartitionOffset(tp1, 5), PartitionOffset(tp0, 10), PartitionOffset(tp2, 1)],
                                        ends: [tp0: 12, tp1: 4])
        #expect(String(decoding: answer.body, as: UTF8.self)
                == #"{"group":"g","partitions":[{"topic":"t","partition":0,"committed":10,"end":12,"lag":2},{"topic":"t","partition":1,"committed":5,"end":4,"lag":0}]}"#)
    }
}
