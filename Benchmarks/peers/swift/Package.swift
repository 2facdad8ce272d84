// swift-tools-version: 6.1
// The Swift peers of scripts/bench, each through its ordinary API:
// Foundation's Process and swift-subprocess. A package of its own, so the
// root package never depends on them.
import PackageDescription

let package = Package(
    name: "CorralSwiftPeers",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    ],
    targets: [
        .target(name: "PeerReport"),
        .executableTarget(name: "foundation-process", dependencies: ["PeerReport"]),
        .executableTarget(
            name: "swift-subprocess",
            dependencies: ["PeerReport", .product(name: "Subprocess", package: "swift-subprocess")]
        ),
    ]
)
