// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SwitchyardCore", targets: ["SwitchyardCore"]),
        .library(name: "SwitchyardGateway", targets: ["SwitchyardGateway"]),
        .library(name: "FakeUpstream", targets: ["FakeUpstream"]),
        .executable(name: "switchyard", targets: ["switchyard"]),
        .executable(name: "fake-upstream", targets: ["fake-upstream"]),
        .executable(name: "bench", targets: ["bench"]),
        .executable(name: "stack-floor", targets: ["stack-floor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        // Already built for Hummingbird; named here for the request-read timeout's HTTP part types.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Shared state of several replicas (design.md §8): a maintained SwiftNIO PostgreSQL client, pooled, with LISTEN/NOTIFY.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // Already built for postgres-nio; the upstream client's TLS and the shared store's TLS configuration.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // The one lock type, shared by the gateway and the fake upstream (see Locked.swift for why not Mutex).
        .target(name: "Locking", swiftSettings: swiftSettings),
        // A throwaway PostgreSQL cluster (initdb, pg_ctl) for the shared-state tests and bench's replicas scenario.
        .target(name: "LocalPostgres", dependencies: ["Locking"], swiftSettings: swiftSettings),
        // Pure decision logic: config, planner, health, classifier, retry policy. No sockets.
        .target(
            name: "SwitchyardCore",
            dependencies: [
                "Locking",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP gateway: server, dispatcher, upstream client, streaming relay.
        .target(
            name: "SwitchyardGateway",
            dependencies: [
                "Locking",
                "SwitchyardCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Scriptable OpenAI-compatible upstream; the project's test kit. SwiftNIO directly, so faults are byte-exact.
        .target(
            name: "FakeUpstream",
            dependencies: [
                "Locking",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fake-upstream",
            dependencies: [
                "FakeUpstream",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "switchyard",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardGateway",
                "FakeUpstream",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // libcurl for bench's load generator (Debian's libcurl4-openssl-dev, installed by scripts/setup).
        .target(
            name: "CCurlShim",
            path: "Benchmarks/CCurlShim",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        .executableTarget(
            name: "bench",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardGateway",
                "FakeUpstream",
                "CCurlShim",
                "LocalPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/bench",
            swiftSettings: swiftSettings
        ),
        // The bare SwiftNIO proxy hop bench measures beside the gateway: the data path's floor per request.
        .executableTarget(
            name: "stack-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/stack-floor",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SwitchyardCoreTests", dependencies: ["SwitchyardCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SwitchyardGatewayTests",
            dependencies: [
                // The crash-recovery test runs the gateway binary as its own process.
                "switchyard",
                "Locking",
                "LocalPostgres",
                "SwitchyardGateway",
                "SwitchyardCore",
                "FakeUpstream",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BenchTests",
            // stack-floor and switchyard (the replicas): built beside the tests, as bench finds them beside itself.
            dependencies: ["bench", "stack-floor", "switchyard", "FakeUpstream"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FakeUpstreamTests",
            dependencies: [
                "FakeUpstream",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
