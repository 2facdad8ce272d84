// swift-tools-version: 6.1
import PackageDescription
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

let package = Package(
    name: "Corral",
    products: [
        .library(name: "Corral", targets: ["Corral"]),
        .library(name: "CorralFormat", targets: ["CorralFormat"]),
        .executable(name: "corral", targets: ["corral"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // The agent's /metrics: swift-metrics values on a Prometheus registry.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The agent's --config file (toml++ underneath).
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // Fleet mode (`corral server`, `corral agent --server-db`): PostgreSQL.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Debian's libuv1-dev, found through pkg-config.
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // The spawn path (the child side between clone and exec) and the few
        // Linux syscalls glibc 2.36 does not wrap. Every symbol starts with cc_.
        .target(
            name: "CCorral",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "Corral",
            dependencies: ["CLibUV", "CCorral"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The job spec and result as JSON, durations and sizes as text:
        // shared by the CLI and the agent.
        .target(
            name: "CorralFormat",
            dependencies: ["Corral"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // `corral agent`: the HTTP service, its page and its SQLite journal.
        .target(
            name: "CorralAgent",
            dependencies: [
                "Corral",
                "CorralFormat",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Fleet mode: the control plane (`corral server`) and the agent's
        // side of it, on PostgreSQL (docs/fleet.md).
        .target(
            name: "CorralFleet",
            dependencies: [
                "Corral",
                "CorralFormat",
                "CorralAgent",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "corral",
            dependencies: [
                "Corral",
                "CorralFormat",
                "CorralAgent",
                "CorralFleet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CorralTests",
            dependencies: ["Corral", "CCorral", "CorralTestSupport"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The parser, the spec decoder and the text formats, on their own.
        .testTarget(
            name: "CorralFormatTests",
            dependencies: ["CorralFormat", "Corral"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Helpers the end-to-end test targets share (not a test bundle).
        .target(
            name: "CorralTestSupport",
            dependencies: ["Corral"],
            path: "Tests/CorralTestSupport",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CorralCLITests",
            dependencies: ["Corral", "CorralFormat", "CorralTestSupport", "corral"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CorralAgentTests",
            dependencies: [
                "Corral", "CorralFormat", "CorralAgent", "CorralTestSupport", "corral",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: ["Browser"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Fleet mode end to end: a real PostgreSQL (CORRAL_TEST_PG_URL,
        // started by scripts/pg-cluster), real server and agent processes.
        .testTarget(
            name: "CorralFleetTests",
            dependencies: [
                "Corral", "CorralFormat", "CorralTestSupport", "corral",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            // The fleet page's browser driver (python, over the agent tests' devtools.py).
            exclude: ["Browser"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)

// The engine alone (scripts/test's AddressSanitizer pass): no CLI, no agent,
// so the sanitized build does not compile the HTTP and SQLite stacks too.
if ProcessInfo.processInfo.environment["CORRAL_ENGINE_ONLY"] != nil {
    let engine: Set<String> = ["CLibUV", "CCorral", "Corral", "CorralTests", "CorralTestSupport"]
    package.targets.removeAll { !engine.contains($0.name) }
    package.products = [.library(name: "Corral", targets: ["Corral"])]
    package.dependencies = []
}

// The libFuzzer target over everything that reads outside input
// (scripts/fuzz): the engine and the formats only, built with
// -sanitize=fuzzer,address by that script.
if ProcessInfo.processInfo.environment["CORRAL_FUZZ"] != nil {
    let kept: Set<String> = ["CLibUV", "CCorral", "Corral", "CorralFormat"]
    package.targets.removeAll { !kept.contains($0.name) }
    package.products = []
    package.dependencies = []
    package.targets.append(.executableTarget(
        name: "corral-fuzz",
        dependencies: ["CorralFormat", "Corral"],
        path: "Fuzz/CorralFuzz",
        swiftSettings: [.swiftLanguageMode(.v6)]
    ))
}

// Benchmarks (scripts/bench) are declared only on request, so `swift test`
// stays light: Corral's harness for the side-by-side comparison, and the
// package-benchmark suite of the library's hot paths. The bench build leaves
// the agent out (`corral` is built without its `agent` subcommand there), so
// it does not compile the HTTP and SQLite stacks.
if ProcessInfo.processInfo.environment["CORRAL_BENCHMARKS"] != nil {
    let agentOnly: Set<String> = ["CorralAgent", "CorralAgentTests", "CorralFleet", "CorralFleetTests"]
    package.targets.removeAll { agentOnly.contains($0.name) }
    for target in package.targets where target.name == "corral" {
        target.dependencies.removeAll { dependency in
            ["CorralAgent", "CorralFleet", "TOMLKit", "Logging"].contains { "\(dependency)".contains($0) }
        }
    }
    package.dependencies = [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ]
    package.targets.append(.executableTarget(
        name: "corral-bench",
        dependencies: ["Corral"],
        path: "Benchmarks/CorralBench",
        swiftSettings: [.swiftLanguageMode(.v6)]
    ))
    package.targets.append(.executableTarget(
        name: "CorralHotPaths",
        dependencies: ["Corral", "CorralFormat", .product(name: "Benchmark", package: "benchmark")],
        path: "Benchmarks/CorralHotPaths",
        swiftSettings: [.swiftLanguageMode(.v6)],
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    ))
}
