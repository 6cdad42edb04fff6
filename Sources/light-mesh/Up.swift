import ArgumentParser
import Foundation
import KafkaRdKafka
import KafkaSidecarNIO
import Logging

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start everything on embedded defaults: the embedded Kafka broker, the HTTP sidecar and the Kafka sidecar.",
        discussion: """
            The broker's bootstrap servers are printed first. The HTTP sidecar starts with its own \
            defaults (ingress 0.0.0.0:9080 to the app at 127.0.0.1:8080, admin 127.0.0.1:9901); \
            options after `--` go to it, e.g. `light-mesh up -- --rate-limit 100` or \
            `light-mesh up -- --config sidecar.yaml`. The Kafka sidecar serves REST produce on \
            127.0.0.1:9082 (admin 127.0.0.1:9902) against the embedded broker; with --kafka-subscribe it \
            also pushes those topics' records to --kafka-app. SIGINT or SIGTERM stops everything, \
            draining in-flight requests and committing what the app finished.
            """
    )

    @Option(help: "Embedded brokers.") var brokers = 1
    @Option(name: .customLong("topic"), help: "Create a topic on the embedded broker: NAME:PARTITIONS (repeatable).") var topics: [String] = []
    @Option(name: .customLong("kafka-subscribe"), help: "Topic the Kafka sidecar pushes to the app (repeatable).") var kafkaTopics: [String] = []
    @Option(help: "Consumer group of the Kafka sidecar's subscription.") var kafkaGroup = "light-mesh"
    @Option(help: "The app's push endpoint for the Kafka sidecar.") var kafkaApp = ReactiveSubscription.defaultApp
    @Option(help: "Kafka sidecar REST listen address.") var kafkaListen = "127.0.0.1:9082"
    @Option(help: "Kafka sidecar admin listen address.") var kafkaAdminListen = "127.0.0.1:9902"
    @Argument(parsing: .postTerminator, help: "Options for the HTTP sidecar (see light-mesh http-sidecar --help).") var sidecarOptions: [String] = []

    func validate() throws {
        guard (1...16).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 16") }
        _ = try Broker.parseTopics(topics)
        _ = try HTTPSidecarCommand.parse(sidecarOptions)
        _ = try kafkaCommand(bootstrap: "127.0.0.1:1").settings()
    }

    /// The Kafka sidecar's command line, on `bootstrap`.
    func kafkaCommand(bootstrap: String) throws -> KafkaSidecarCommand {
        var args = ["--bootstrap", bootstrap, "--listen", kafkaListen, "--admin-listen", kafkaAdminListen]
        if !kafkaTopics.isEmpty {
            args += ["--group", kafkaGroup, "--app", kafkaApp]
            for t in kafkaTopics { args += ["--subscribe", t] }
        }
        return try KafkaSidecarCommand.parse(args)
    }

    func run() async throws {
        var logger = Logger(label: "light-mesh.broker")
        logger.logLevel = .warning
        let parsedTopics = try Broker.parseTopics(topics)
        let broker = try EmbeddedKafkaBroker(brokers: brokers, topics: parsedTopics, logger: logger)
        FileHandle.standardOutput.write(Data("kafka bootstrap: \(broker.bootstrapServers)\n".utf8))
        let options = try HTTPSidecarCommand.parse(sidecarOptions)
        let sidecar = try await SidecarProcess.start(try options.settings(), configFile: options.config)
        let (bootstrap, kafkaSettings, kafkaJWT) = try kafkaCommand(bootstrap: broker.bootstrapServers).settings()
        let kafkaSidecar = try await KafkaSidecarCommand.start(bootstrap: bootstrap, settings: kafkaSettings, jwt: kafkaJWT)
        FileHandle.standardError.write(Data("light-mesh up: running; Ctrl-C to stop\n".utf8))
        await waitForSignal()
        try await kafkaSidecar.stop()
        try await sidecar.stop()
        withExtendedLifetime(broker) {}
    }
}
