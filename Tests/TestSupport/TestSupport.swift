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
                     structures: Bool = true, thp: Bool = false, slabOrder: UInt64 = 0) throws -> GuestMemoryImage {
    var s = Scenario()
    s.memory = memory; s.vcpus = 2; s.firmware = .tdvf2022; s.kernel.version = kernel
    s.kernel.crashKernelBytes = 64 << 20; s.workload = workload; s.bootAllocationBytes = 32 << 20
    let r = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
    return try CaptureView.image(from: r, structures: structures, seed: 7, transparentHugepages: thp, slabOrder: slabOrder)
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

/// A small, valid ELF vmcore for mutation tests: a 128 MiB 6.16 guest
/// whose PT_LOADs keep only the pages a dump tool walks (page tables,
/// `mem_section`, `init_uts_ns`, the memmap) and a little data, so a
/// `-d 31` conversion reads struct pages through the file in well under a
/// second. Returns the file's path inside `dir`.
public func smallVmcoreFile(in dir: String, name: String = "small.vmcore") throws -> String {
    var img = try smallGuestImage(memory: 128 << 20, kernel: .v6_16, workload: .pageCache(8 << 20))
    let k = try require2(img.kernel)
    var keep: [Range<UInt64>] = []
    let loads = img.loadFrames.map { $0.lowerBound.value..<$0.upperBound.value }
    for l in loads { keep += k.generatedRanges(in: l) }
    if let first = loads.first { keep.append(first.lowerBound..<min(first.upperBound, first.lowerBound + 16)) }
    keep.sort { $0.lowerBound < $1.lowerBound }
    var merged: [Range<UInt64>] = []
    for r in keep {
        if let last = merged.last, last.upperBound >= r.lowerBound { merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound) }
        else { merged.append(r) }
    }
    img.loads = merged.map { AddressRange(frames: GuestFrameNumber($0.lowerBound)..<GuestFrameNumber($0.upperBound)) }
    let path = dir + "/" + name
    try ELFVmcore.write(img, to: path)
    return path
}

struct MissingValue: Error {}
func require2<T>(_ v: T?) throws -> T { guard let v else { throw MissingValue() }; return v }
