import ArgumentParser
import Foundation
import KafkaRdKafka
import Logging

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start everything on embedded defaults: the embedded Kafka broker and the HTTP sidecar.",
        discussion: """
            The broker's bootstrap servers are printed first. The HTTP sidecar starts with its own \
            defaults (ingress 0.0.0.0:9080 to the app at 127.0.0.1:8080, admin 127.0.0.1:9901); \
            options after `--` go to it, e.g. `light-mesh up -- --rate-limit 100` or \
            `light-mesh up -- --config sidecar.yaml`. The Kafka sidecar joins `up` when it exists. \
            SIGINT or SIGTERM stops everything, draining in-flight requests.
            """
    )

    @Option(help: "Embedded brokers.") var brokers = 1
    @Option(name: .customLong("topic"), help: "Create a topic on the embedded broker: NAME:PARTITIONS (repeatable).") var topics: [String] = []
    @Argument(parsing: .postTerminator, help: "Options for the HTTP sidecar (see light-mesh http-sidecar --help).") var sidecarOptions: [String] = []

    func validate() throws {
        guard (1...16).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 16") }
        _ = try Broker.parseTopics(topics)
        _ = try HTTPSidecarCommand.parse(sidecarOptions)
    }

    func run() async throws {
        var logger = Logger(label: "light-mesh.broker")
        logger.logLevel = .warning
        let parsedTopics = try Broker.parseTopics(topics)
        let broker = try EmbeddedKafkaBroker(brokers: brokers, topics: parsedTopics, logger: logger)
        FileHandle.standardOutput.write(Data("kafka bootstrap: \(broker.bootstrapServers)\n".utf8))
        let options = try HTTPSidecarCommand.parse(sidecarOptions)
        let sidecar = try await SidecarProcess.start(try options.settings(), configFile: options.config)
        FileHandle.standardError.write(Data("light-mesh up: running; Ctrl-C to stop\n".utf8))
        await waitForSignal()
        try await sidecar.stop()
        withExtendedLifetime(broker) {}
    }
}
