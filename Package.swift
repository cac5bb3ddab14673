// swift-tools-version: 6.0
import PackageDescription

/// The settings every target gets: Swift 6 mode, `any` spelled out for
/// existentials, members visible only from modules a file imports, and
/// imports internal unless a file says `public import`.
let settings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "cocomem",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cocomem", targets: ["cocomem"]),
        .library(name: "Simulation", targets: ["Simulation"]),
        // What the coverage-guided fuzzers in Fuzz/ (a package of their own) link.
        .library(name: "Fuzzing", targets: ["Fuzzing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .target(name: "MemoryModel", swiftSettings: settings),
        .target(name: "CostModel", dependencies: ["MemoryModel"], resources: [.copy("Resources/calibration.json")], swiftSettings: settings),
        .target(name: "TDXModule", dependencies: ["MemoryModel", "CostModel"], swiftSettings: settings),
        .target(name: "KVM", dependencies: ["MemoryModel", "CostModel", "TDXModule", "SNP"], swiftSettings: settings),
        .target(name: "SNP", dependencies: ["MemoryModel", "CostModel"], swiftSettings: settings),
        .target(name: "CoCoGuest", dependencies: ["MemoryModel", "CostModel", "TDXModule", "SNP"], swiftSettings: settings),
        .target(name: "Firmware", dependencies: ["MemoryModel", "CostModel", "CoCoGuest"], swiftSettings: settings),
        .target(name: "GuestKernel", dependencies: ["MemoryModel", "Firmware", "CoCoGuest", "CostModel"], swiftSettings: settings),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CrashDump", dependencies: ["MemoryModel", "CZlib"], swiftSettings: settings),
        .target(name: "Simulation", dependencies: ["MemoryModel", "Firmware", "GuestKernel", "CoCoGuest", "TDXModule", "KVM", "SNP", "CostModel", "CrashDump", .product(name: "Yams", package: "Yams")], swiftSettings: settings),
        .target(name: "Reports", dependencies: ["MemoryModel", "CostModel", "TDXModule", "KVM", "CoCoGuest", "Firmware", "GuestKernel", "CrashDump", "Simulation"], swiftSettings: settings),
        .target(name: "Sweep", dependencies: ["MemoryModel", "CostModel", "Simulation", "Reports", .product(name: "Yams", package: "Yams")], swiftSettings: settings),
        .target(name: "Results", dependencies: ["MemoryModel", "Sweep", "Reports", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: settings),
        .target(name: "Checking", dependencies: ["MemoryModel", "CostModel", "TDXModule", "KVM", "CoCoGuest", "Firmware", "GuestKernel", "Simulation", "Sweep", .product(name: "Yams", package: "Yams")], swiftSettings: settings),
        .target(name: "Validation", dependencies: ["MemoryModel", "CostModel", "TDXModule", "KVM", "CoCoGuest", "Firmware", "GuestKernel", "Simulation", "Reports"], swiftSettings: settings),
        .target(name: "Fuzzing", dependencies: ["MemoryModel", "CostModel", "Firmware", "GuestKernel", "CrashDump", "Simulation", "Sweep"], swiftSettings: settings),
        .executableTarget(name: "cocomem", dependencies: ["MemoryModel", "CostModel", "CoCoGuest", "Firmware", "GuestKernel", "CrashDump", "TDXModule", "KVM", "Simulation", "Reports", "Validation", "Checking", "Sweep", "Results", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: settings + [.unsafeFlags(["-static-stdlib"], .when(platforms: [.linux], configuration: .release))],
                          // The release binary carries the Swift runtime and Foundation (the toolchain's
                          // usr/lib/swift_static; compiled with the flag too, so the static Foundation's
                          // own libraries are linked): the dynamic loader's relocations over 15 Swift
                          // shared objects were a third of the process start (docs/PERFORMANCE.md, session 14).
                          linkerSettings: [.unsafeFlags(["-static-stdlib"], .when(platforms: [.linux], configuration: .release))]),
        .target(name: "TestSupport", dependencies: ["MemoryModel", "CostModel", "CrashDump", "Firmware", "GuestKernel", "Simulation"], path: "Tests/TestSupport", swiftSettings: settings),
        .testTarget(name: "ArchitectureTests", swiftSettings: settings),
        .testTarget(name: "MemoryModelTests", dependencies: ["MemoryModel"], swiftSettings: settings),
        .testTarget(name: "FirmwareTests", dependencies: ["Firmware", "MemoryModel", "CostModel", "Simulation", "Reports"], swiftSettings: settings),
        .testTarget(name: "GuestKernelTests", dependencies: ["GuestKernel", "MemoryModel", "CostModel", "CoCoGuest", "Firmware", "TDXModule", "SNP", "Simulation", "Reports", "TestSupport"], swiftSettings: settings),
        .testTarget(name: "CrashDumpTests", dependencies: ["CrashDump", "Simulation", "Reports", "MemoryModel", "CostModel", "GuestKernel", "Firmware", "TestSupport"], swiftSettings: settings),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Reports", "KVM", "TDXModule", "MemoryModel", "CoCoGuest", "CostModel", "Firmware", "GuestKernel", "SNP", "TestSupport"], swiftSettings: settings),
        .testTarget(name: "TDXModuleTests", dependencies: ["TDXModule", "MemoryModel"], swiftSettings: settings),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "SNP", "TDXModule", "MemoryModel", "CostModel", "CoCoGuest", "Simulation", "Reports"], swiftSettings: settings),
        .testTarget(name: "CheckingTests", dependencies: ["Checking", "KVM", "MemoryModel", "Simulation", "CostModel", "Sweep", "Results", "GuestKernel"], swiftSettings: settings),
        .testTarget(name: "CostModelTests", dependencies: ["CostModel", "MemoryModel"], swiftSettings: settings),
        .testTarget(name: "SweepTests", dependencies: ["Sweep", "Simulation", "MemoryModel"], swiftSettings: settings),
        .testTarget(name: "ResultsTests", dependencies: ["Results", "Sweep", "MemoryModel", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: settings),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Simulation", "MemoryModel", "CrashDump", "GuestKernel", "TestSupport"], swiftSettings: settings),
        .testTarget(name: "FuzzingTests", dependencies: ["Fuzzing", "MemoryModel"], swiftSettings: settings),
        .testTarget(name: "ValidationTests", dependencies: ["Validation", "CostModel"], swiftSettings: settings),
        .testTarget(name: "SNPTests", dependencies: ["SNP", "CoCoGuest", "CostModel", "MemoryModel"], swiftSettings: settings),
    ]
)
