// swift-tools-version: 6.0
import PackageDescription

// cocomem's coverage-guided fuzzers (issue 15): one libFuzzer executable per
// input kind, each a one-line LLVMFuzzerTestOneInput around a `FuzzTarget`
// of the main package's `Fuzzing` module. A package of its own so the normal
// build never compiles or links them. Build (scripts/fuzz.sh does):
//
//     swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
//
// Each executable's main hands its arguments to libFuzzer's driver
// (LLVMFuzzerRunDriver), which calls its LLVMFuzzerTestOneInput.
let package = Package(
    name: "cocomem-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "cocomem", path: "..")],
    targets: [
        .target(name: "LibFuzzer"),
        .executableTarget(name: "fuzz-size", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-size", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-dmesg", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-dmesg", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-memmap", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-memmap", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-calls", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-calls", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-host", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-host", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-host-parse", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-host-parse", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-scenario", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-scenario", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-sweep", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-sweep", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-calibration", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-calibration", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-elf", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-elf", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(name: "fuzz-dump-options", dependencies: [.product(name: "Fuzzing", package: "cocomem"), "LibFuzzer"], path: "Sources/fuzz-dump-options", swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
