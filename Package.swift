// swift-tools-version: 6.0
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "cocomem",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cocomem", targets: ["cocomem"]),
        .library(name: "Simulation", targets: ["Simulation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .target(name: "MemoryModel", swiftSettings: strict),
        .target(name: "CostModel", dependencies: ["MemoryModel"], resources: [.copy("Resources/calibration.json")], swiftSettings: strict),
        .target(name: "TDXModule", dependencies: ["MemoryModel", "CostModel"], swiftSettings: strict),
        .target(name: "KVM", dependencies: ["MemoryModel", "CostModel", "TDXModule"], swiftSettings: strict),
        .target(name: "SNP", dependencies: ["MemoryModel", "CostModel"], swiftSettings: strict),
        .target(name: "CoCoGuest", dependencies: ["MemoryModel", "CostModel", "TDXModule", "SNP"], swiftSettings: strict),
        .target(name: "Firmware", dependencies: ["MemoryModel", "CostModel", "CoCoGuest"], swiftSettings: strict),
        .target(name: "GuestKernel", dependencies: ["MemoryModel", "Firmware", "CoCoGuest", "CostModel"], swiftSettings: strict),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CrashDump", dependencies: ["MemoryModel", "CZlib"], swiftSettings: strict),
        .target(name: "Simulation", dependencies: ["MemoryModel", "Firmware", "GuestKernel", "CoCoGuest", "TDXModule", "KVM", "SNP", "CostModel", "CrashDump", .product(name: "Yams", package: "Yams")], swiftSettings: strict),
        .target(name: "Reports", dependencies: ["MemoryModel", "CostModel", "TDXModule", "SNP", "KVM", "CoCoGuest", "Firmware", "GuestKernel", "CrashDump", "Simulation"], swiftSettings: strict),
        .target(name: "Checking", dependencies: ["MemoryModel", "CostModel", "TDXModule", "KVM", "Simulation"], swiftSettings: strict),
        .target(name: "Validation", dependencies: ["MemoryModel", "CostModel", "TDXModule", "KVM", "CoCoGuest", "Firmware", "GuestKernel", "Simulation", "Reports"], swiftSettings: strict),
        .executableTarget(name: "cocomem", dependencies: ["Simulation", "Reports", "Validation", "Checking", "CrashDump", "KVM", "TDXModule", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: strict),
        .target(name: "TestSupport", dependencies: ["MemoryModel", "CostModel", "CrashDump", "GuestKernel", "Simulation"], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "ArchitectureTests", swiftSettings: strict),
        .testTarget(name: "MemoryModelTests", dependencies: ["MemoryModel"], swiftSettings: strict),
        .testTarget(name: "FirmwareTests", dependencies: ["Firmware", "MemoryModel", "CostModel", "Simulation", "Reports"], swiftSettings: strict),
        .testTarget(name: "GuestKernelTests", dependencies: ["GuestKernel", "MemoryModel", "CostModel", "CoCoGuest", "Firmware", "TDXModule", "Simulation", "Reports", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "CrashDumpTests", dependencies: ["CrashDump", "Simulation", "Reports", "MemoryModel", "CostModel", "GuestKernel", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Reports", "KVM", "TDXModule", "MemoryModel", "CoCoGuest", "CostModel", "Firmware", "GuestKernel", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ValidationTests", dependencies: ["Validation", "CostModel"], swiftSettings: strict),
    ]
)
