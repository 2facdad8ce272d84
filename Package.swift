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
        .executableTarget(
            name: "corral",
            dependencies: [
                "Corral",
                "CorralFormat",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CorralTests",
            dependencies: ["Corral", "CCorral"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CorralCLITests",
            dependencies: ["Corral", "CorralFormat", "corral"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)

// Benchmarks (scripts/bench) are declared only on request, so `swift test`
// stays light.
if ProcessInfo.processInfo.environment["CORRAL_BENCHMARKS"] != nil {
    package.targets.append(.executableTarget(
        name: "corral-bench",
        dependencies: ["Corral"],
        path: "Benchmarks/CorralBench",
        swiftSettings: [.swiftLanguageMode(.v6)]
    ))
}
