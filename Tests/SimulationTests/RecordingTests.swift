import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import KVM
import TDXModule
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
        // kernel_init_freeable()'s order: smp_init() (early allocations) before page_alloc_init_late() (deferred init).
        #expect(names == ["firmware", "efi_stub", "kernel_boot", "early_allocations", "deferred_init", "userspace", "workload touch=3G"])
        for (a, b) in zip(rec.phases, rec.phases.dropFirst()) { #expect(a.end == b.start) }
        #expect(abs(try #require(rec.phases.last).end - (r.times.totalBoot + r.times.workload)) < 1e-9)
        // Cumulative series never go down, and every series ends at the run's end.
        for s in rec.series where s.unit != "per_second" && s.name != "unaccepted_bytes" && s.name != "free_bytes" && !s.name.hasPrefix("host_") {
            for (a, b) in zip(s.points, s.points.dropFirst()) { #expect(a.value <= b.value, "\(s.name) decreases at \(b.time)") }
        }
        for s in rec.series { #expect(abs((s.points.last?.time ?? -1) - rec.phases.last!.end) < 1e-9, "\(s.name)") }
        // The per-vCPU counters add up to the whole guest's.
        func sum(_ name: String) throws -> Double { try (0..<r.scenario.vcpus).reduce(0.0) { $0 + (try final(rec, name, vcpu: $1)) } }
        #expect(try sum("accept_calls") == final(rec, "accept_calls"))
        #expect(try sum("exits") == final(rec, "exits"))
        // Bytes by vCPU are what the successful accepts accepted: at least what the actors accepted through the table.
        let successes = Op.allCases.filter { $0.name.hasSuffix(".success") && ($0.name.hasPrefix("tdx.accept.") || $0.name.hasPrefix("snp.pvalidate.")) }
        let bySize = successes.reduce(0.0) { total, op in
            let size: Double = op.name.contains(".1g.") ? 1_073_741_824 : op.name.contains(".2m.") ? 2_097_152 : 4096
            return total + size * Double(r.counts[op])
        }
        #expect(try sum("accepted_bytes") == bySize)
        #expect(bySize >= Double(r.acceptedFirmware + r.acceptedStub + r.acceptedKernelBoot + r.acceptedWorkload) * 0.99)
    }

    @Test func snapshotsCoverMemoryAndAgreeWithMeminfo() throws {
        let r = try bootResult { $0.memory = 8 << 30; $0.workload = .phases([.touch(1 << 30), .pageCache(512 << 20)]) }
        let k = try #require(r.kernel)
        let top = k.ram.map(\.end).max()!
        let labels = r.record.snapshots.map(\.label)
        #expect(labels == ["firmware hand-off", "ExitBootServices", "end of boot", "end of workload touch=1G", "end of workload pagecache=512M"])
        for s in r.record.snapshots { checkCovers(s, top: top) }
        // At each snapshot after the kernel started, the series' unaccepted bytes (meminfo's Unaccepted) equal its unaccepted class.
        let unaccepted = try series(r.record, "unaccepted_bytes")
        for snap in r.record.snapshots.dropFirst(2) {
            let p = try #require(unaccepted.points.last { $0.time <= snap.time })
            #expect(p.value == Double(bytes(snap) { $0.pageClass == .unaccepted }), "\(snap.label)")
        }
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

    /// Eager acceptance leaves nothing for allocations to accept; lazy
    /// acceptance makes the allocation that finds the zone short pay, and
    /// only that one: the distribution comes from the allocator's own stalls.
    @Test func allocationLatencyIsZeroEagerAndPaidLazily() throws {
        let lazy = try bootResult { $0.memory = 8 << 30; $0.workload = .touch(4 << 30) }
        let eager = try bootResult { $0.memory = 8 << 30; $0.lazy = false; $0.workload = .touch(4 << 30) }
        let l = try #require(lazy.record.latencies.first), e = try #require(eager.record.latencies.first)
        #expect(l.phase == "touch=4G" && l.mode == "lazy" && e.mode == "eager")
        #expect(e.allocations == (4 << 30) / 4096 && l.allocations == e.allocations)
        #expect(e.max == 0 && e.p99 == 0 && e.p50 == 0 && e.buckets[0] == e.allocations)
        #expect(l.max > 0)
        #expect(l.p50 == 0, "most allocations find accepted pages")
        #expect(l.buckets.reduce(0, +) == l.allocations)
        #expect(l.buckets.dropFirst().reduce(0, +) > 0)
        #expect(l.bucketBounds.count == l.buckets.count + 1)
        // The stalls add up to no more than the workload's whole CPU time.
        #expect(l.max <= lazy.times.workload)
    }

    @Test func latencyPercentilesAreExactNearestRank() throws {
        let d0 = LatencyDistribution(phase: "x", mode: "lazy", stalls: AllocationStalls(allocations: 100, stalls: []))
        #expect(d0.p50 == 0 && d0.p99 == 0 && d0.max == 0 && d0.buckets[0] == 100)
        // Two of 100 allocations paid 1 ms and 3 ms: p99 is the 99th smallest, 1 ms.
        let d = LatencyDistribution(phase: "x", mode: "lazy", stalls: AllocationStalls(allocations: 100, stalls: [3_000_000_000, 1_000_000_000]))
        #expect(d.p50 == 0 && d.p99 == 1e-3 && d.max == 3e-3 && d.allocations == 100)
        let ms1 = try #require(d.bucketBounds.firstIndex(of: 1e-3)), ms2 = try #require(d.bucketBounds.firstIndex(of: 2e-3))
        #expect(d.buckets[0] == 98 && d.buckets[ms1] == 1 && d.buckets[ms2] == 1)
    }

    @Test func downsamplingKeepsFirstLastAndBoundaries() {
        var rng = SplitMix64(seed: 14)
        for _ in 0..<50 {
            let n = Int(rng.next() % 5000) + 1
            var t = 0.0
            let pts = (0..<n).map { i -> TimeSeries.Point in t += Double(rng.next() % 1000 + 1) / 1000; return .init(time: t, value: Double(i)) }
            let boundaries = Set((0..<5).map { _ in pts[Int(rng.next() % UInt64(n))].time })
            let d = TimeSeries.downsample(pts, keeping: boundaries)
            #expect(d.count <= TimeSeries.maxPoints)
            #expect(d.first == pts.first && d.last == pts.last)
            if n > TimeSeries.maxPoints { for b in boundaries { #expect(d.contains { $0.time == b }) } } else { #expect(d == pts) }
            for (a, b) in zip(d, d.dropFirst()) { #expect(a.time < b.time) }
        }
    }

    /// A 4 TiB boot with a workload records as little as a small one.
    @Test func aLargeRunStaysSmall() throws {
        // Tens of thousands of accept batches (a 4 MiB block each below the watermark) and 300 rate slices.
        let r = try bootResult { $0.memory = 4 << 40; $0.vcpus = 16; $0.workload = .phases([.touch(64 << 30), .rate(bytesPerSecond: 512 << 20, seconds: 300)]) }
        let rec = r.record
        let n = try series(rec, "accepted_bytes.workload").points.count
        #expect(n > TimeSeries.maxPoints / 2 && n <= TimeSeries.maxPoints, "thinned and downsampled, not short: \(n)")
        #expect(try series(rec, "accepted_bytes", vcpu: 15).points.count <= TimeSeries.maxPoints)
        for s in rec.series { #expect(s.points.count <= TimeSeries.maxPoints, "\(s.name)") }
        for l in rec.lanes { #expect(l.spans.count <= TimeSeries.maxPoints) }
        for s in rec.snapshots { #expect(s.ranges.count < 200, "\(s.label): \(s.ranges.count) ranges") }
        #expect(try final(rec, "accepted_bytes.workload") == Double(r.acceptedWorkload))
        #expect(rec.latencies.count == 2)
    }

    @Test func twoRunsRecordTheSame() throws {
        func run() throws -> RunRecord {
            try bootResult { $0.memory = 6 << 30; $0.vcpus = 3; $0.workload = .phases([.rate(bytesPerSecond: 512 << 20, seconds: 5), .hugetlb(256 << 20)]) }.record
        }
        let a = try run(), b = try run()
        #expect(a.phases == b.phases && a.series == b.series && a.snapshots == b.snapshots && a.lanes == b.lanes && a.latencies == b.latencies)
    }

    /// Random sizes, platforms and workloads: every snapshot covers memory
    /// exactly, its classes add up to the kernel's counts, and the final
    /// points equal the totals.
    @Test func randomRunsSnapshotsCoverMemory() throws {
        var rng = SplitMix64(seed: 1414)
        for _ in 0..<6 {
            let platform: PlatformKind = rng.next() % 2 == 0 ? .tdx : .snp
            let halves: UInt64 = rng.next() % 14, odd: UInt64 = rng.next() % 2
            let memory: UInt64 = (2 << 30) + halves * (512 << 20) + odd * (2 << 20)
            let vcpus = Int(rng.next() % 6) + 1
            let workloads: [Workload] = [.touch(memory / 4), .pageCache(memory / 8), .hugetlb(64 << 20), .rate(bytesPerSecond: 256 << 20, seconds: 3), .none]
            let w = workloads[Int(rng.next() % UInt64(workloads.count))]
            let lazy = rng.next() % 3 != 0
            let r = try bootResult {
                $0.platform = platform; $0.memory = memory; $0.vcpus = vcpus; $0.workload = w; $0.lazy = lazy
                if platform == .snp { $0.firmware = .ovmfSNP }
            }
            let k = try #require(r.kernel)
            let top: UInt64 = k.ram.map { $0.end }.max() ?? 0
            let ram: UInt64 = k.ram.reduce(0) { $0 + $1.size }
            for s in r.record.snapshots where s.label != "firmware hand-off" && s.label != "ExitBootServices" {
                checkCovers(s, top: top)
                #expect(bytes(s) { $0.acceptance == .notRAM } == top - ram, "\(s.label)")
            }
            let last = try #require(r.record.snapshots.last)
            #expect(bytes(last) { $0.pageClass == .unaccepted } == k.totalUnacceptedPages * 4096)
            #expect(bytes(last) { $0.pageClass == .hugetlb } == k.hugetlbPages * 4096)
            #expect(bytes(last) { $0.pageClass == .pageCache } == k.pageCachePages * 4096)
            #expect(try final(r.record, "unaccepted_bytes") == Double(k.totalUnacceptedPages * 4096))
            #expect(try final(r.record, "host_committed_private_bytes") + final(r.record, "host_committed_shared_bytes") == Double(r.committedBytes))
            if !lazy { for l in r.record.latencies { #expect(l.max == 0) } }
        }
    }

    @Test func kexecRecordsTheNextKernel() throws {
        var s = Scenario()
        s.memory = 8 << 30
        let k = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).runKexec(KexecPlan())
        let rec = k.record
        let names = rec.phases.map(\.name)
        #expect(names.contains("kexec_load") && names.contains("kexec_reboot") && names.contains("next_kernel.kernel_boot"))
        #expect(rec.snapshots.map(\.label).suffix(2) == ["before kexec", "end of boot (next kernel)"])
        let second = try #require(k.second)
        #expect(try final(rec, "accepted_bytes.next_kernel") == Double(second.acceptedKernelBoot))
        // The destinations accepted at load, plus what the load's own allocations accepted from the zones' lists.
        if case .success(let image)? = k.load { #expect(try final(rec, "accepted_bytes.kexec_load") >= Double(image.acceptedAtLoad)) }
        #expect(try final(rec, "accepted_bytes.kernel_boot") == Double(k.first.acceptedKernelBoot))
        let nk = try #require(second.kernel)
        #expect(try final(rec, "unaccepted_bytes") == Double(nk.totalUnacceptedPages * 4096))
        for (a, b) in zip(rec.phases, rec.phases.dropFirst()) { #expect(a.end == b.start) }
    }

    @Test func dumpRecordsTheCrash() throws {
        let r = try bootResult { $0.memory = 4 << 30; $0.workload = .touch(1 << 30) }
        let rec = r.recordAtTheCrash
        #expect(rec.snapshots.last?.label == "at the crash")
        #expect(rec.snapshots.count == r.record.snapshots.count + 1)
    }

    @Test func hostRunRecordsCommittedMemoryPerCommand() throws {
        let run = try HostRun(try HostScenario.parse("""
            td host=tdx-huge
            slot id=1 base=0 pages=4096
            finalize
            accept 0x0+1024 2m
            convert 0x400+16 shared
            access 0x400+16
            """), calibration: try Calibration.builtIn(), log: false)
        try run.run()
        let rec = run.record
        #expect(rec.phases.map(\.name) == ["line 3: finalize", "line 4: accept", "line 5: convert", "line 6: access"])
        #expect(try final(rec, "host_committed_private_bytes") + final(rec, "host_committed_shared_bytes") == Double(run.vm.committedPages * 4096))
        let snap = try #require(rec.snapshots.first)
        checkCovers(snap, top: 4096 * 4096)
        #expect(bytes(snap) { $0.shared } == 16 * 4096)
        #expect(bytes(snap) { $0.hostMapping == .map2M } > 0)
        #expect(bytes(snap) { $0.acceptance == .accepted && !$0.shared } == run.vm.module.acceptedFrameCount(in: GuestFrameNumber(0)..<GuestFrameNumber(4096)) * 4096)
    }
}
