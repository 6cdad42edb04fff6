import Foundation
import KafkaRdKafka
import MeshCore
import Testing

extension KafkaLiveSuites {
    /// kcat, an independent client, against the embedded broker and the Swift adapter, both directions.
    @Suite struct KcatInteropTests {
        private static let kcat = ["/usr/bin/kcat", "/usr/local/bin/kcat"].first { FileManager.default.isExecutableFile(atPath: $0) }

        private func run(_ arguments: [String], input: String? = nil) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.kcat!)
            p.arguments = arguments
            let out = Pipe(), inPipe = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            p.standardInput = inPipe
            try p.run()
            if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
            try inPipe.fileHandleForWriting.close()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw ConformanceFailure("kcat \(arguments) exited \(p.terminationStatus)") }
            return String(decoding: data, as: UTF8.self)
        }

        @Test(.enabled(if: kcat != nil, "kcat is not installed (ci/install-deps installs it)"))
        func kcatProducesAndSwiftConsumesWithHeaders() throws {
            let w = try LiveWorld()
            w.createTopic("from-kcat", partitions: 1)
            _ = try run(["-P", "-b", w.broker.bootstrapServers, "-t", "from-kcat", "-K", ":", "-H", "traceparent=00-abc-01", "-H", "tenant=acme"],
                        input: "k1:first\nk2:second\n")
            let consumer = try w.cluster(client: 0).makeConsumer(KafkaConsumerConfig(groupId: "interop"))
            try consumer.assign([TopicPartition("from-kcat", 0)])
            let got = try w.consume(consumer, count: 2).records
            #expect(got.map { String(decoding: $0.key ?? [], as: UTF8.self) } == ["k1", "k2"])
            #expect(got.map { String(decoding: $0.value ?? [], as: UTF8.self) } == ["first", "second"])
            #expect(got.allSatisfy { $0.headers == [KafkaHeader("traceparent", Array("00-abc-01".utf8)), KafkaHeader("tenant", Array("acme".utf8))] })
        }

        @Test(.enabled(if: kcat != nil, "kcat is not installed (ci/install-deps installs it)"))
        func swiftProducesAndKcatConsumesWithHeaders() throws {
            let w = try LiveWorld()
            w.createTopic("to-kcat", partitions: 1)
            let producer = try w.cluster(client: 0).makeProducer(KafkaProducerConfig())
            for i in 0..<3 {
                _ = try w.produce(producer, ProducerRecord(topic: "to-kcat", partition: 0, key: Array("key\(i)".utf8), value: Array("value\(i)".utf8),
                                                          headers: [KafkaHeader("traceparent", Array("00-t\(i)-01".utf8))]))
            }
            let out = try run(["-C", "-b", w.broker.bootstrapServers, "-t", "to-kcat", "-o", "beginning", "-c", "3", "-e", "-f", "%k|%s|%h\n"])
            #expect(out.split(separator: "\n") == ["key0|value0|traceparent=00-t0-01", "key1|value1|traceparent=00-t1-01", "key2|value2|traceparent=00-t2-01"])
        }
    }
}
