// swift-tools-version:6.0
import PackageDescription

/// Light Mesh: Swift sidecars (HTTP and Kafka) plus the deterministic simulator that proves them.
///
/// Dependency direction: `MeshCore` <- decisions (`HTTPSidecar`, `KafkaSidecar`, `SidecarAuth`) <-
/// engines (`HTTPSidecarEngines`) <- drivers (`HTTPClientNIO`, `HTTPSidecarNIO`, `KafkaSidecarNIO`, `KafkaRdKafka`) <-
/// `light-mesh` (the composition root). `Simulation/` targets depend on decisions and engines, never on
/// a driver, NIOPosix or NIOSSL (`ci/check-imports` enforces it); no product library depends on them.
/// The module map with what each owns is at the top of docs/architecture.md.
/// The simulator is single-threaded by construction (it traps on escape), so in release builds it
/// skips dynamic exclusivity checks on class properties: about a fifth of kernel time otherwise.
/// Debug builds, and therefore `swift test`, keep the checks.
///
/// Debug builds still optimize the decision code and the simulator (`-O`, per file, so incremental
/// builds stay incremental): the swarms and mutants of `ci/test` run the debug binary, and unoptimized
/// they were 3-4x slower (most of CI's time). Preconditions, overflow and exclusivity checks stay on;
/// the project has no `assert` that `-O` would drop. Most drivers and the executable stay unoptimized.
let optimizedDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]
let simulatorSpeed: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))] + optimizedDebug
/// The NIO data path: every handler is confined to its event loop, so release builds skip the
/// dynamic exclusivity checks there too (debug builds and tests keep them).
let eventLoopConfinedSpeed = simulatorSpeed

let package = Package(
    name: "light-mesh",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "light-mesh", targets: ["light-mesh"]),
        .library(name: "MeshCore", targets: ["MeshCore"]),
        .library(name: "MeshSimulator", targets: ["MeshSimulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Vocabulary and seams shared by production adapters and the simulator.
        .target(
            name: "MeshCore",
            dependencies: [
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ],
            path: "Sources/MeshCore",
            swiftSettings: optimizedDebug
        ),
        // The HTTP sidecar's product logic: egress resilience and ingress middleware decisions, sans-IO.
        .target(
            name: "HTTPSidecar",
            dependencies: ["MeshCore"],
            path: "Sources/HTTPSidecar",
            swiftSettings: optimizedDebug
        ),
        // The Kafka sidecar's product logic, sans-IO: the reactive consumer engine, the push wire format
        // and the REST produce front, run by the librdkafka driver and by the simulator alike.
        .target(
            name: "KafkaSidecar",
            dependencies: ["MeshCore"],
            path: "Sources/KafkaSidecar",
            swiftSettings: optimizedDebug
        ),
        // StreamQuery: ksqlDB-style continuous queries (the SQL subset, planner, operators, state through
        // the store seam, the runner), sans-IO, so the simulator runs it as production does. Not built
        // with -O in debug: the stream-query swarm runs 300 seeds in about 20 s without it, and the flag
        // costs build time.
        .target(
            name: "StreamQuery",
            dependencies: ["MeshCore"],
            path: "Sources/StreamQuery"
        ),
        // The subscription-state store on Postgres (postgres-nio): the durable ``SubscriptionStore`` the
        // continuous queries commit to, one transaction per batch.
        .target(
            name: "StatePostgres",
            dependencies: ["MeshCore", .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log")],
            path: "Sources/StatePostgres"
        ),
        // JWT verification against a JWKS (jwt-kit), for the HTTP sidecar's ingress and the Kafka REST port.
        .target(
            name: "SidecarAuth",
            dependencies: ["MeshCore", .product(name: "JWTKit", package: "jwt-kit")],
            path: "Sources/SidecarAuth"
        ),
        // The HTTP sidecar's connection engines, sans-IO over NIO's byte types: the ingress and egress
        // connection engines, the upstream link (deadlines, reuse, requestSent), codecs, the shared head
        // check, admission, header relaying, and the settings values. No sockets,
        // clocks or TLS: the simulator runs these, and may import nothing below HTTPSidecarNIO.
        .target(
            name: "HTTPSidecarEngines",
            dependencies: [
                "MeshCore", "HTTPSidecar", "SidecarAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/HTTPSidecarEngines",
            // The engines run confined to one connection's event loop (or the simulator's one thread),
            // as they did inside HTTPSidecarNIO: the same release setting as the drivers.
            swiftSettings: eventLoopConfinedSpeed
        ),
        // The HTTP client both sidecars' drivers use: upstream connections and their pools (NIO drivers of
        // the engines' `UpstreamLink`), TLS contexts, and the
        // fetcher for the sidecars' own calls (pushes to the app, token endpoints, JWKS).
        .target(
            name: "HTTPClientNIO",
            dependencies: [
                "MeshCore", "HTTPSidecar", "HTTPSidecarEngines",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            path: "Sources/HTTPClientNIO",
            swiftSettings: eventLoopConfinedSpeed
        ),
        // The HTTP sidecar's drivers on SwiftNIO: channel handlers, servers, TLS, discovery, upstream
        // pools, fetchers, token sources, metrics and admin. They move bytes and timers for the engines.
        .target(
            name: "HTTPSidecarNIO",
            dependencies: [
                "MeshCore", "HTTPSidecar", "HTTPSidecarEngines", "HTTPClientNIO", "SidecarAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/HTTPSidecarNIO",
            swiftSettings: eventLoopConfinedSpeed
        ),
        // The Kafka sidecar's data path: REST produce and admin listeners on NIO, and the reactive
        // consumer driver (engine + Kafka seam + HTTP pushes to the app).
        .target(
            name: "KafkaSidecarNIO",
            dependencies: [
                "MeshCore", "KafkaSidecar", "HTTPSidecarEngines", "HTTPClientNIO", "SidecarAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/KafkaSidecarNIO"
        ),
        // librdkafka from Debian's librdkafka-dev, found by pkg-config.
        .systemLibrary(
            name: "CRdKafka",
            path: "Sources/CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // Production Kafka adapter: the MeshCore Kafka seams on librdkafka, and its mock cluster as the embedded broker.
        .target(
            name: "KafkaRdKafka",
            dependencies: [
                "MeshCore", "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Sources/KafkaRdKafka"
        ),
        // Configuration files: YAML with every key validated and named in errors, and the section readers
        // the sidecars' files and the scenario files share (retry, breaker, outlier).
        .target(
            name: "MeshConfig",
            dependencies: ["MeshCore", "HTTPSidecar", .product(name: "Yams", package: "Yams")],
            path: "Sources/MeshConfig"
        ),
        // Deterministic simulation kernel: virtual time, seeded randomness, network, hosts, faults, checkers.
        .target(
            name: "MeshSimulator",
            dependencies: ["MeshCore"],
            path: "Simulation/MeshSimulator",
            swiftSettings: simulatorSpeed
        ),
        // The simulated Kafka cluster: the Kafka seams over the simulation kernel.
        .target(
            name: "SimKafka",
            dependencies: ["MeshCore", "MeshSimulator"],
            path: "Simulation/SimKafka",
            swiftSettings: simulatorSpeed
        ),
        // Scenario files, workloads, the runner, swarm and replay.
        .target(
            name: "MeshScenarios",
            dependencies: [
                "MeshCore", "MeshConfig", "MeshSimulator", "SimKafka", "HTTPSidecar", "HTTPSidecarEngines", "SidecarAuth", "KafkaSidecar",
                "StreamQuery",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Simulation/MeshScenarios",
            swiftSettings: simulatorSpeed
        ),
        // Runs persistent queries in production: the QueryRunner's actions on a Kafka consumer and
        // producer (through the seams) and the subscription store, confined to a NIO event loop.
        .target(
            name: "StreamQueryNIO",
            dependencies: [
                "MeshCore", "StreamQuery",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/StreamQueryNIO"
        ),
        // The composition root: the only target that links both product code and the simulator.
        .executableTarget(
            name: "light-mesh",
            dependencies: [
                "MeshCore", "MeshConfig", "MeshScenarios", "KafkaRdKafka", "HTTPSidecar", "HTTPSidecarEngines", "HTTPClientNIO", "HTTPSidecarNIO", "SidecarAuth", "KafkaSidecar", "KafkaSidecarNIO",
                "StreamQuery", "StreamQueryNIO", "StatePostgres",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/light-mesh"
        ),
        // ci/bench-kafka-client's Swift side (times the adapter against kcat).
        .executableTarget(
            name: "kafka-client-bench",
            dependencies: ["KafkaRdKafka", "MeshCore", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/kafka-client"
        ),
        // ci/bench-kafka-sidecar's trivial app: answers every pushed record SUCCESS.
        .executableTarget(
            name: "kafka-sidecar-bench-app",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/kafka-sidecar-app"
        ),
        .testTarget(name: "MeshCoreTests", dependencies: ["MeshCore", .product(name: "W3CTraceContext", package: "swift-w3c-trace-context")], path: "Tests/MeshCoreTests"),
        .testTarget(
            name: "KafkaSidecarTests",
            dependencies: [
                "KafkaSidecar", "KafkaSidecarNIO", "MeshCore", "SidecarAuth",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tests/KafkaSidecarTests"
        ),
        .testTarget(
            name: "HTTPSidecarNIOTests",
            dependencies: [
                "HTTPSidecarNIO", "HTTPSidecarEngines", "HTTPClientNIO", "HTTPSidecar", "MeshCore", "SidecarAuth",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Tests/HTTPSidecarNIOTests"
        ),
        .testTarget(name: "StreamQueryTests", dependencies: ["StreamQuery", "MeshCore"], path: "Tests/StreamQueryTests"),
        // The store contract against the in-memory store and a live Postgres (ci/test starts one and sets
        // LIGHT_MESH_TEST_POSTGRES; without it the Postgres half is skipped and says so).
        .testTarget(name: "StatePostgresTests", dependencies: ["StatePostgres", "MeshCore"], path: "Tests/StatePostgresTests"),
        .testTarget(name: "HTTPSidecarTests", dependencies: ["HTTPSidecar", "MeshCore", .product(name: "W3CTraceContext", package: "swift-w3c-trace-context")], path: "Tests/HTTPSidecarTests"),
        // One Kafka conformance suite, run against the simulated cluster and against librdkafka + the embedded broker.
        .testTarget(
            name: "KafkaConformanceTests",
            dependencies: ["MeshCore", "MeshSimulator", "SimKafka", "KafkaRdKafka"],
            path: "Tests/KafkaConformanceTests"
        ),
        .testTarget(
            name: "SimulationTests",
            dependencies: ["MeshCore", "MeshConfig", "MeshSimulator", "MeshScenarios", "HTTPSidecar"],
            path: "Tests/SimulationTests",
            resources: []
        ),
    ],
    swiftLanguageModes: [.v6]
)
