import ArgumentParser
import Foundation
import KafkaRdKafka
import Logging
import MeshCore
import NIOPosix
import StatePostgres
import StreamQuery
import StreamQueryNIO

struct StreamQueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream-query",
        abstract: "Run continuous queries (a subset of ksqlDB's SQL) from a queries file, their state in Postgres.",
        discussion: """
            Headless, like ksqlDB's queries.file: --queries-file holds CREATE STREAM and CREATE TABLE \
            statements that declare sources, and CREATE STREAM|TABLE ... AS SELECT statements, each a \
            persistent query that runs until SIGTERM or SIGINT. Any other statement is refused, with its text. \
            docs/stream-query.md lists the SQL taken.

            Each query reads every partition of its input topic (which must exist) and writes its sink topic \
            (created when missing, with PARTITIONS or the input's partition count; where the broker cannot \
            create it, such as the embedded broker, a warning says so and the first write may create it). Its groups, offsets and \
            outputs not yet acknowledged by the sink are committed to Postgres in one transaction per batch, \
            so a crash neither double-counts nor loses a change: a restart resumes from the store. Outputs \
            reach the sink at least once, each with the headers lightmesh.query and lightmesh.outbox.seq (a \
            redelivery has the same sequence).

            A query's id (CTAS_<SINK>_<n>, n its place among the file's queries) names its state: a query \
            that moves in the file starts over. There is no REST API yet (no /ksql, no push or pull queries).
            """
    )

    @Option(help: "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].") var bootstrap: String
    @Option(help: "Postgres URL for the queries' state, postgres://USER:PASSWORD@HOST:PORT/DATABASE (the tables are created when missing).") var postgres: String
    @Option(help: "The statements to run.") var queriesFile: String
    @Option(help: "Prefix of the state tables in Postgres (default \(PostgresStoreSettings().tablePrefix)).") var tablePrefix: String?

    func validate() throws {
        _ = try queries()
        _ = try storeSettings()
    }

    func queries() throws -> QueriesFile {
        guard let text = try? String(contentsOfFile: queriesFile, encoding: .utf8) else { throw ValidationError("cannot read \(queriesFile)") }
        do { return try QueriesFile(text) } catch { throw ValidationError("\(queriesFile): \(error)") }
    }

    func storeSettings() throws -> PostgresStoreSettings {
        do {
            var s = try PostgresStoreSettings(url: postgres)
            if let tablePrefix { s.tablePrefix = tablePrefix }
            try s.validate()
            return s
        } catch { throw ValidationError("--postgres: \(error)") }
    }

    func run() async throws {
        let shutdown = ShutdownSignal()
        var logger = Logger(label: "light-mesh.stream-query")
        logger.logLevel = .notice
        signal(SIGPIPE, SIG_IGN)
        let file = try queries()
        var clusterSettings = RdKafkaClusterSettings(bootstrapServers: bootstrap)
        var kafkaLogger = Logger(label: "light-mesh.kafka")
        kafkaLogger.logLevel = .warning
        clusterSettings.logger = kafkaLogger
        let cluster = RdKafkaCluster(clusterSettings)
        let store = try PostgresSubscriptionStore(settings: try storeSettings(), logger: logger)
        do { try await store.prepare() } catch { throw ValidationError("--postgres: \(error)") }
        let admin = try cluster.makeAdmin()
        let topics = try await Self.topics(admin)
        var drivers: [QueryDriver] = []
        for query in file.queries {
            guard let input = topics.first(where: { $0.name == query.source.topic }) else {
                throw ValidationError("\(query.id) reads \(query.source.topic), which does not exist")
            }
            if !topics.contains(where: { $0.name == query.sink.topic }) {
                let partitions = Int32(query.sink.partitions ?? Int(input.partitions))
                if let problem = await Self.create(admin, query.sink.topic, partitions: partitions) {
                    // A broker that cannot create topics this way (the embedded one has no controller) may still
                    // create it on the first write, with its own default partition count.
                    logger.warning("the sink topic could not be created; producing to it anyway", metadata: ["topic": "\(query.sink.topic)", "error": "\(problem)"])
                }
            }
            let partitions = (0..<input.partitions).map { TopicPartition(input.name, $0) }
            let driver = try QueryDriver(query: query, partitions: partitions, cluster: cluster, store: store,
                                         loop: MultiThreadedEventLoopGroup.singleton.next(), logger: logger)
            driver.start()
            drivers.append(driver)
            FileHandle.standardError.write(Data("stream-query: \(query.id) reads \(input.name) (\(input.partitions) partitions), writes \(query.sink.topic); brokers \(bootstrap)\n".utf8))
        }
        await shutdown.wait()
        for driver in drivers { await driver.stop() }
        store.shutdown()
    }

    static func topics(_ admin: any KafkaAdmin) async throws -> [TopicDescription] {
        try await withCheckedThrowingContinuation { done in admin.listTopics { done.resume(with: $0.mapError { $0 as any Error }) } }
    }

    /// Creates `topic` (the broker's replication factor); `nil` when it exists afterwards.
    static func create(_ admin: any KafkaAdmin, _ topic: String, partitions: Int32) async -> KafkaError? {
        await withCheckedContinuation { (done: CheckedContinuation<KafkaError?, Never>) in
            admin.createTopic(topic, partitions: partitions, replicationFactor: -1) { result in
                switch result {
                case .success: done.resume(returning: nil)
                case .failure(let e) where e.code == "topic_already_exists": done.resume(returning: nil)
                case .failure(let e): done.resume(returning: e)
                }
            }
        }
    }
}
