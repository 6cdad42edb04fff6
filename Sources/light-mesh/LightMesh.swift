import ArgumentParser

/// The `light-mesh` command: the sidecars' entry point and the simulator's front end.
@main
struct LightMesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "light-mesh",
        abstract: "Light Mesh: HTTP and Kafka sidecars, and the deterministic simulator that proves them.",
        discussion: """
            Examples:
              light-mesh http-sidecar --app 127.0.0.1:8080 --rate-limit 100
              light-mesh http-sidecar --config fixtures/configs/http-sidecar.yaml
              light-mesh kafka-sidecar --bootstrap 127.0.0.1:9092 --group orders --subscribe orders
              light-mesh broker --brokers 3 --topic orders:6
              light-mesh sim swarm fixtures/scenarios/http-endpoints.yaml --seeds 200
            """,
        subcommands: [Up.self, HTTPSidecarCommand.self, KafkaSidecarCommand.self, StreamQueryCommand.self, Broker.self, Sim.self]
    )
}

struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run scenarios in the deterministic simulator: one seed, a swarm, a replay, a determinism check.",
        subcommands: [SimRun.self, SimSwarm.self, SimReplay.self, SimCheckDeterminism.self]
    )
}
