import ArgumentParser
import Dispatch
import Foundation
import KafkaRdKafka
import Logging

struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the embedded Kafka broker (librdkafka's mock cluster) on loopback until SIGINT or SIGTERM.",
        discussion: """
            The first line of output is the bootstrap server list, for example:
              BOOTSTRAP=$(light-mesh broker --topic orders:3 | head -1)
            The mock cluster keeps only the tail of each partition's log; it is for development \
            and tests.
            """
    )

    @Option(help: "Number of brokers.")
    var brokers: Int = 1

    @Option(name: .customLong("topic"), help: "Create a topic: NAME:PARTITIONS (repeatable).")
    var topics: [String] = []

    func validate() throws {
        guard (1...16).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 16") }
        _ = try parsedTopics()
    }

    func parsedTopics() throws -> [(String, Int32)] { try Broker.parseTopics(topics) }

    /// `NAME:PARTITIONS` specs, as `--topic` takes them (shared with `up`).
    static func parseTopics(_ specs: [String]) throws -> [(String, Int32)] {
        try specs.map { spec in
            let parts = spec.split(separator: ":")
            guard parts.count == 2, !parts[0].isEmpty, let n = Int32(parts[1]), n > 0 else {
                throw ValidationError("--topic expects NAME:PARTITIONS, got '\(spec)'")
            }
            return (String(parts[0]), n)
        }
    }

    func run() async throws {
        var logger = Logger(label: "light-mesh.broker")
        logger.logLevel = .warning
        let broker = try EmbeddedKafkaBroker(brokers: brokers, topics: try parsedTopics(), logger: logger)
        FileHandle.standardOutput.write(Data((broker.bootstrapServers + "\n").utf8))
        FileHandle.standardError.write(Data("light-mesh broker: \(brokers) broker(s) at \(broker.bootstrapServers); topics: \(topics.isEmpty ? "auto-created on first use" : topics.joined(separator: ", "))\n".utf8))
        // Awaited, not `dispatchMain()`: this runs on a cooperative-pool thread under the async
        // `@main`, and libdispatch traps when a worker thread calls `dispatchMain()` and exits.
        await waitForSignal()
        withExtendedLifetime(broker) {}
        FileHandle.standardError.write(Data("light-mesh broker: stopped\n".utf8))
    }
}
