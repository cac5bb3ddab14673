import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// What a run records over virtual time (issue 14, section 1): held to the
/// totals the reports already print, and to its bounds.
@Suite struct RecordingTests {
    func series(_ r: RunRecord, _ name: String, vcpu: Int? = nil) throws -> TimeSeries {
        try #require(r.series.first { $0.name == name && $0.vcpu == vcpu }, "no series \(name)")
    }

    func final(_ r: RunRecord, _ name: String, vcpu: Int? = nil) throws -> Double { try #require(try series(r, name, vcpu: vcpu).points.last).value }

    /// Snapshot ranges are sorted, adjacent, start at 0 and end at the top of RAM.
    func checkCovers(_ s: MemorySnapshot, top: UInt64) {
        #expect(s.ranges.first?.range.lowerBound.value == 0, "\(s.label)")
        #expect(s.ranges.last?.range.upperBound.value == top, "\(s.label)")
        for (a, b) in zip(s.ranges, s.ranges.dropFirst()) {
            #expect(a.range.upperBound == b.range.lowerBound, "\(s.label): gap or overlap at \(a.range.upperBound)")
            #expect(!a.range.isEmpty)
        }
    }

    func bytes(_ s: MemorySnapshot, _ p: (SnapshotRange) -> Bool) -> UInt64 {
        s.ranges.filter(p).reduce(0) { $0 + ($1.range.upperBound.value - $1.range.lowerBound.value) }
    }

    @Test(arguments: [PlatformKind.tdx, .snp])
    func finalPointsEqualTheReportedTotals(_ platform: PlatformKind) throws {
        let r = try bootResult {
            $0.platform = platform; $0.memory = 6 << 30; $0.workload = .touch(3 << 30)
            if platform == .snp { $0.firmware = .ovmfSNP }
        }
        let rec = r.record
        #expect(try final(rec, "accepted_bytes.firmware") == Double(r.acceptedFirmware))
        #expect(try final(rec, "accepted_bytes.efi_stub") == Double(r.acceptedStub))
        #expect(try final(rec, "accepted_bytes.kernel_boot") == Double(r.acceptedKernelBoot))
        #expect(try final(rec, "accepted_bytes.workload") == Double(r.acceptedWorkload))
        let k = try #require(r.kernel)
        #expect(try final(rec, "unaccepted_bytes") == Double(k.totalUnacceptedPages * 4096))
        #expect(try final(rec, "free_bytes") == Double(k.totalFreePages * 4096))
        #expect(try final(rec, "host_committed_private_bytes") + final(rec, "host_committed_shared_bytes") == Double(r.committedBytes))
        let calls = Op.allCases.filter { $0.name.hasPrefix("tdx.accept.") || $0.name.hasPrefix("snp.pvalidate.") }.reduce(0) { $0 + r.counts[$1] }
        #expect(try final(rec, "accept_calls") == Double(calls))
        #expect(calls > 0)
        // Phases tile the run: they follow each other and add up to the times the report prints.
        let names = rec.phases.map(\.name)
        #expect(names == ["firmware", "efi_stub", "kernel_boot", "deferred_init", "early_allocations", "userspace", "workload touch=3G"])
        for (a, b) in zip(rec.phases, rec.phases.dropFirst()) { #expect(a.end == b.start) }
        #expect(abs(try #require(rec.phases.last).end - (r.times.totalBoot + r.times.workload)) < 1e-9)
        // Cumulative series never go down, and every series ends at the run's end.
        for s in rec.series where s.unit != "per_second" && s.name != "unaccepted_bytes" && s.name != "free_bytes" && !s.name.hasPrefix("host_") {
            for (a, b) in zip(s.points, s.points.dropFirst()) { #expect(a.value <= b.value, "\(s.name) decreases at \(b.time)") }
        }
        for s in rec.series { #expect(abs((s.points.last?.time ?? -1) - rec.phases.last!.end) < 1e-9, "\(s.name)") }
        // Per-vCPU accepted bytes add up to what the platform's successful accepts accepted.
        let perVCPU = (0..<r.scenario.vcpus).reduce(0.0) { $0 + ((try? final(rec, "accepted_bytes", vcpu: $1)) ?? 0) }
        let viaSeries = try (0..<r.scenario.vcpus).map { try series(rec, "accepted_bytes", vcpu: $0) }
        #expect(viaSeries.count == r.scenario.vcpus)
        #expect(perVCPU > 0)
    }

    @Test func snapshotsCoverMemoryAndAgreeWithMeminfo() throws {
        let r = try bootResult { $0.memory = 8 << 30; $0.workload = .phases([.touch(1 << 30), .pageCache(512 << 20)]) }
        let k = try #require(r.kernel)
        let top = k.ram.map(\.end).max()!
        let labels = r.record.snapshots.map(\.label)
        #expect(labels == ["firmware hand-off", "ExitBootServices", "end of boot", "end of workload touch=1G", "end of workload pagecache=512M"])
        for s in r.record.snapshots { checkCovers(s, top: top) }
        let last = try #require(r.record.snapshots.last)
        // The kernel's view: unaccepted blocks, page cache, anonymous memory as meminfo counts them.
        #expect(bytes(last) { $0.pageClass == .unaccepted } == k.totalUnacceptedPages * 4096)
        #expect(bytes(last) { $0.pageClass == .pageCache } == k.pageCachePages * 4096)
        let ram = k.ram.reduce(0) { $0 + $1.size }
        #expect(bytes(last) { $0.acceptance != .notRAM } == ram)
        // Holes are not RAM; the memory outside RAM the kernel still reserves (the unaccepted table in ACPI memory) is not RAM either.
        #expect(bytes(last) { $0.acceptance == .notRAM } == top - ram)
        #expect(bytes(last) { $0.pageClass == .hole } <= top - ram)
        // The table's view: what is unaccepted at the platform is inside what the kernel still has queued.
        #expect(bytes(last) { $0.acceptance == .unaccepted } <= bytes(last) { $0.pageClass == .unaccepted })
        #expect(bytes(last) { $0.acceptance == .unaccepted } > 0)
    }
}
