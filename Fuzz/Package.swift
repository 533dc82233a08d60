// swift-tools-version: 6.1
// libFuzzer targets over Switchyard's parsers. Built apart from the main package because each target's main
// hands over to libFuzzer and only links with -sanitize=fuzzer: see scripts/fuzz.
import PackageDescription

let fuzzSettings: [SwiftSetting] = []

let package = Package(
    name: "switchyard-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "switchyard", path: "..")],
    targets: [
        // The main every target shares: hands over to libFuzzer.
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "fuzz-request", dependencies: ["FuzzDriver", .product(name: "SwitchyardCore", package: "switchyard")], swiftSettings: fuzzSettings),
        .executableTarget(
            name: "fuzz-sse", dependencies: ["FuzzDriver", .product(name: "SwitchyardCore", package: "switchyard")], swiftSettings: fuzzSettings),
        .executableTarget(
            name: "fuzz-config", dependencies: ["FuzzDriver", .product(name: "SwitchyardCore", package: "switchyard")], swiftSettings: fuzzSettings),
    ]
)
