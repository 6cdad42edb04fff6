import ArgumentParser

/// The `light-mesh` command: the sidecars' entry point and the simulator's front end.
@main
struct LightMesh: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "light-mesh",
        abstract: "Light Mesh: HTTP and Kafka sidecars, and the deterministic simulator that proves them.",
        discussion: """
            The sidecar commands arrive with their issues; today the simulator is complete:
              light-mesh sim run fixtures/scenarios/echo-datagram.yaml --seed 42
              light-mesh sim swarm fixtures/scenarios/echo-datagram.yaml --seeds 200
            """,
        subcommands: [Sim.self, Broker.self]
    )
}

struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run scenarios in the deterministic simulator: one seed, a swarm, a replay, a determinism check.",
        subcommands: [SimRun.self, SimSwarm.self, SimReplay.self, SimCheckDeterminism.self]
    )
}
