import Foundation
import MeshCore
import Synchronization
import Testing

extension KafkaLiveSuites {
    /// Rebalances under both protocols, in both worlds: the before-revoke step commits while the
    /// partitions are still ours, and cooperative rebalancing moves only what must move.
    @Suite struct RebalanceConformanceTests {
        static let cases: [(WorldKind, KafkaConsumerConfig.RebalanceProtocol)] =
            WorldKind.allCases.flatMap { w in [(w, .cooperative), (w, .eager)] }

        private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

        /// Offsets the before-revoke step hands back: what the test says it processed.
        final class Processed: @unchecked Sendable {
            private let state = Mutex<(next: [TopicPartition: Int64], revocations: [PartitionRevocation])>(([:], []))
            func set(_ tp: TopicPartition, _ next: Int64) { state.withLock { $0.next[tp] = next } }
            var revocations: [PartitionRevocation] { state.withLock { $0.revocations } }
            func answer(_ r: PartitionRevocation) -> [PartitionOffset] {
                state.withLock { s in
                    s.revocations.append(r)
                    return r.partitions.compactMap { tp in s.next[tp].map { PartitionOffset(tp, $0) } }
                }
            }
        }

        private func member(_ w: any KafkaWorld, client: Int, group: String, _ proto: KafkaConsumerConfig.RebalanceProtocol, _ processed: Processed) throws -> any KafkaGroupConsumer {
            var config = KafkaConsumerConfig(groupId: group)
            config.rebalanceProtocol = proto
            config.revocationTimeout = .seconds(5)
            let c = try w.cluster(client: client).makeConsumer(config)
            c.onRevoke { revocation, release in release(processed.answer(revocation)) }
            return c
        }

        /// The first member reads everything of two partitions but commits nothing itself; when a second
        /// member joins and takes a partition, the first member's before-revoke step commits offset 6 of
        /// what moves, and the new owner starts exactly there (before: the commit came after the
        /// unassign and was refused with `illegal_generation`, so the records were read again).
        @Test(arguments: cases)
        func revokeStepCommitsBeforeThePartitionMoves(_ kind: WorldKind, _ proto: KafkaConsumerConfig.RebalanceProtocol) throws {
            let w = try kind.make()
            let topic = "revoke-commit-\(proto)"
            w.createTopic(topic, partitions: 2)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produceAll(producer, (0..<20).map { ProducerRecord(topic: topic, partition: Int32($0 % 2), value: bytes("\($0)")) })
            let processedA = Processed(), processedB = Processed()
            let a = try member(w, client: 1, group: "g-\(topic)", proto, processedA)
            try a.subscribe([topic])
            let first = try w.consume(a, count: 20)
            #expect(first.records.count == 20)
            for tp in [TopicPartition(topic, 0), TopicPartition(topic, 1)] { processedA.set(tp, 6) }

            let b = try member(w, client: 2, group: "g-\(topic)", proto, processedB)
            try b.subscribe([topic])
            var held: [[TopicPartition]] = [[TopicPartition(topic, 0), TopicPartition(topic, 1)], []]
            var bRecords: [ConsumerRecord] = []
            var errors: [KafkaError] = []
            let moved = try w.pollUntilAssigned([a, b], tracked: &held, collect: { i, e in
                if case .error(let error) = e { errors.append(error) }
                if i == 1, case .records(let rs) = e { bRecords += rs }
            }) { h in h[0].count == 1 && h[1].count == 1 }
            #expect(moved, "assignments: \(held)")
            let revoked = processedA.revocations.filter { !$0.lost }.flatMap(\.partitions)
            #expect(revoked.contains(held[1].first ?? TopicPartition(topic, -1)), "the before-revoke step did not see the moving partition: \(processedA.revocations)")
            bRecords += try w.consume(b, count: 4 - bRecords.count, timeout: .seconds(15)).records
            let checks = {
                #expect(!errors.contains { $0.message.contains("before revocation") }, "commit before revocation failed: \(errors)")
                #expect(bRecords.first?.offset == 6, "the new owner started at \(bRecords.first.map { "\($0.offset)" } ?? "nothing"), not at the committed 6")
            }
            if kind == .live {
                // librdkafka's mock cluster refuses an OffsetCommit while the group is Joining
                // (rd_kafka_mock_cgrp_check_state), where Kafka's coordinator accepts commits of the
                // current generation during PreparingRebalance. An eager revocation always lands
                // there; a cooperative one sometimes does (a second rebalance round). The simulated
                // world checks the same promise strictly.
                withKnownIssue("the embedded broker refuses commits while its group is joining; Kafka accepts them", isIntermittent: true) { checks() }
            } else {
                checks()
            }
            try w.call { done in b.close { done(.success(())) } }
            try w.call { done in a.close { done(.success(())) } }
        }

        /// Cooperative: when a second member joins, the first is revoked only the partitions that move
        /// and keeps the others throughout. Eager: everything is revoked first.
        @Test(arguments: cases)
        func onlyMovingPartitionsAreRevokedUnderCooperative(_ kind: WorldKind, _ proto: KafkaConsumerConfig.RebalanceProtocol) throws {
            let w = try kind.make()
            let topic = "coop-\(proto)"
            w.createTopic(topic, partitions: 4)
            let processed = Processed()
            let a = try member(w, client: 1, group: "g-\(topic)", proto, processed)
            try a.subscribe([topic])
            var held: [[TopicPartition]] = [[], []]
            #expect(try w.pollUntilAssigned([a], tracked: &held) { $0[0].count == 4 }, "first member holds \(held[0])")
            let b = try member(w, client: 2, group: "g-\(topic)", proto, Processed())
            try b.subscribe([topic])
            #expect(try w.pollUntilAssigned([a, b], tracked: &held) { h in h[0].count == 2 && h[1].count == 2 }, "assignments: \(held)")
            let revoked = processed.revocations.flatMap(\.partitions)
            switch proto {
            case .cooperative:
                #expect(Set(revoked) == Set(held[1]), "revoked \(revoked), moved \(held[1])")
            case .eager:
                #expect(Set(revoked) == Set((0..<4).map { TopicPartition(topic, Int32($0)) }), "eager revoked \(revoked)")
            }
            try w.call { done in b.close { done(.success(())) } }
            try w.call { done in a.close { done(.success(())) } }
        }

        /// Closing runs the before-revoke step for what is still held, so the next member of the group
        /// starts after the records the closing one finished.
        @Test(arguments: WorldKind.allCases)
        func closeCommitsThroughTheRevokeStep(_ kind: WorldKind) throws {
            let w = try kind.make()
            w.createTopic("close-commit", partitions: 1)
            let tp = TopicPartition("close-commit", 0)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            _ = try w.produceAll(producer, (0..<10).map { ProducerRecord(topic: "close-commit", partition: 0, value: bytes("\($0)")) })
            let processed = Processed()
            let a = try member(w, client: 1, group: "closer", .cooperative, processed)
            try a.subscribe(["close-commit"])
            #expect(try w.consume(a, count: 10).records.count == 10)
            processed.set(tp, 7)
            try w.call { done in a.close { done(.success(())) } }
            #expect(processed.revocations.flatMap(\.partitions) == [tp])
            let b = try member(w, client: 2, group: "closer", .cooperative, Processed())
            try b.subscribe(["close-commit"])
            let got = try w.consume(b, count: 3)
            if kind == .live && got.records.isEmpty {
                // Seen once in about ten loaded runs: the mock never assigns a member that joins
                // right after the only other member left (the same as commitRestartAndResume).
                withKnownIssue("the embedded broker sometimes never assigns a member joining after another's close", isIntermittent: true) {
                    Issue.record("no records within 30 s; events: \(got.events)")
                }
            } else {
                #expect(got.records.map(\.offset) == [7, 8, 9], "events: \(got.events)")
            }
            try w.call { done in b.close { done(.success(())) } }
        }
    }
}
