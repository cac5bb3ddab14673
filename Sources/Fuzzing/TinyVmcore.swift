import CostModel
import CrashDump
import Firmware
import Foundation
import GuestKernel
import MemoryModel
import Simulation

extension FuzzTarget {
    /// The smallest valid ELF vmcore cocomem makes that a `-d 31` dump
    /// still walks: a 128 MiB TD (one memory section) on kernel 6.16 with
    /// 8 MiB of page cache, crashed into kdump, whose PT_LOADs keep only
    /// the pages a dump tool reads — the page tables, `mem_section`, the
    /// other generated structures, the first pages of the first PT_LOAD, the
    /// first page of the first runs of each page class — and the memmap
    /// pages holding those pages' struct pages (which are then pages of
    /// their own PT_LOADs, so theirs too). The seed of the `elf` fuzzer
    /// (`Fuzz/corpus/elf/`) and the input of `dump-options`; a few dozen
    /// pages instead of the 2 MiB memmap a whole section needs.
    /// - Throws: when the guest does not boot or has more than one section.
    public static func tinyVmcore() throws -> [UInt8] {
        var s = Scenario()
        s.memory = 128 << 20; s.vcpus = 2; s.firmware = .tdvf2022; s.kernel.version = .v6_16
        s.kernel.crashKernelBytes = 64 << 20; s.workload = .pageCache(8 << 20); s.bootAllocationBytes = 32 << 20
        let r = try BootSimulation(scenario: s, calibration: builtIn).run()
        var img = try CaptureView.image(from: r, seed: 7)
        guard let k = img.kernel else { throw CocomemError(.invalidScenario, "tiny vmcore: no kernel structures") }
        let loads = img.loadFrames.map { $0.lowerBound.value..<$0.upperBound.value }
        var keep = Set<UInt64>()
        var memmap: Range<UInt64>? = nil
        for l in loads {
            for g in k.generatedRanges(in: l) {
                if g.count > 1 {
                    // The memmap: one section's 512 pages of struct pages (64 per page).
                    guard memmap == nil, g.count == 512 else { throw CocomemError(.invalidScenario, "tiny vmcore: the memmap is not one section's 512 pages") }
                    memmap = g
                } else {
                    keep.insert(g.lowerBound)
                }
            }
        }
        guard let memmap, let first = loads.first else { throw CocomemError(.invalidScenario, "tiny vmcore: no memmap") }
        for p in first.lowerBound..<min(first.upperBound, first.lowerBound + 16) { keep.insert(p) }
        var runsPerClass: [PageClass: Int] = [:]
        img.forEachRun { range, cls in
            guard runsPerClass[cls, default: 0] < 2, !memmap.contains(range.lowerBound.value) else { return }
            runsPerClass[cls, default: 0] += 1
            keep.insert(range.lowerBound.value)
        }
        // Struct pages of every kept page, until the memmap pages kept are covered too.
        while true {
            let more = Set(keep.map { memmap.lowerBound + $0 / 64 }).subtracting(keep)
            if more.isEmpty { break }
            keep.formUnion(more)
        }
        var merged: [Range<UInt64>] = []
        for p in keep.sorted() {
            if let last = merged.last, last.upperBound == p { merged[merged.count - 1] = last.lowerBound..<(p + 1) } else { merged.append(p..<(p + 1)) }
        }
        img.loads = merged.map { AddressRange(frames: GuestFrameNumber($0.lowerBound)..<GuestFrameNumber($0.upperBound)) }
        let path = ScratchFile.shared.directory + "/tiny-\(UUID().uuidString).vmcore"
        defer { unlink(path) }
        try ELFVmcore.write(img, to: path)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
