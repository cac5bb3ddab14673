import CostModel
public import CrashDump
import Firmware
import Foundation
public import GuestKernel
import MemoryModel
public import Simulation

// Helpers shared by the test targets: building small guests, temporary
// directories and running the real tools.

/// Boots the default scenario after `f` changes it.
public func bootResult(_ f: (inout Scenario) -> Void) throws -> BootResult {
    var s = Scenario()
    f(&s)
    s.kernel.lazyAccept = s.lazy
    return try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
}

/// A small fresh TD with unaccepted memory below 4 GiB: 2022 TDVF accepts
/// only a partial 256 MiB, so a 1 GiB guest keeps most of its RAM unaccepted
/// (6.12 keeps it; the 6.16 early accept storm accepts most of it).
public func smallGuestImage(memory: UInt64 = 1 << 30, kernel: KernelVersion = .v6_12, workload: Workload = .pageCache(32 << 20),
                     structures: Bool = true, thp: Bool = false) throws -> GuestMemoryImage {
    var s = Scenario()
    s.memory = memory; s.vcpus = 2; s.firmware = .tdvf2022; s.kernel.version = kernel
    s.kernel.crashKernelBytes = 64 << 20; s.workload = workload; s.bootAllocationBytes = 32 << 20
    let r = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
    return try CaptureView.image(from: r, structures: structures, seed: 7, transparentHugepages: thp)
}

public func tempDir() throws -> String {
    let d = NSTemporaryDirectory() + "cocomem-test-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// Runs a program, returning its exit status and output.
@discardableResult
public func run(_ exe: String, _ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out; p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
