import CostModel
import GuestKernel
@testable import KVM
import MemoryModel
@testable import Reports
import Simulation
import TDXModule
import Testing

/// What the host learns (issue 18 §5, second bullet): the host-visible
/// trace of first touches and what it lets the host infer.
@Suite struct HostTraceTests {
    func boot(lazy: Bool, stepByStep: Bool = false, workload: Workload = .none, host: TDXHostModel = .tdxHuge) throws -> BootResult {
        var s = Scenario()
        s.memory = ByteCount.gib(6).value
        s.vcpus = 2
        s.lazy = lazy; s.kernel.lazyAccept = lazy
        s.tdxHost = host
        s.workload = workload
        s.stepByStep = stepByStep
        s.traceHost = true
        return try BootSimulation(scenario: s, calibration: try Calibration.builtIn()).run()
    }

    /// Records merged where they continue each other (same kind, level and
    /// vCPU, contiguous GPAs), without times: what stepping and bulk
    /// replay must agree on.
    func merged(_ rs: [HostTraceRecord]) -> [String] {
        var out: [HostTraceRecord] = []
        for r in rs {
            if var l = out.last, l.kind == r.kind, l.level == r.level, l.vcpu == r.vcpu, l.frames.upperBound == r.frames.lowerBound {
                l.frames = l.frames.lowerBound ..< r.frames.upperBound; l.exits += r.exits
                out[out.count - 1] = l
            } else { out.append(r) }
        }
        return out.map { "\($0.kind) \($0.level.map { "\($0)" } ?? "-") \($0.vcpu) \($0.frames.lowerBound.address)+\($0.frames.length) \($0.exits)" }
    }

    /// Per kind, level and vCPU: the frames covered and the exits.
    func coverage(_ rs: [HostTraceRecord]) -> [String: [UInt64]] {
        var maps: [String: IntervalMap<GuestFrameNumber, Bool>] = [:], exits: [String: UInt64] = [:]
        for r in rs {
            let k = "\(r.kind) \(r.level.map { "\($0)" } ?? "-") \(r.vcpu)"
            maps[k, default: IntervalMap(initial: false)].assign(r.frames, true)
            exits[k, default: 0] += r.exits
        }
        return maps.mapValues { [$0.measure(in: .lowest ..< .highest) { $0 }] }.merging(exits.mapValues { [$0] }) { $0 + $1 }
    }

    /// Lazy acceptance: each 4 MiB block the allocator accepts is one
    /// record of two 2M accept exits (`accept_memory()` of the block, the
    /// kexec_core thread's 4 MiB granularity), and the workload's first
    /// touches come after the boot.
    @Test func lazyAcceptShowsTheHostEach4MiBBlockAndWhen() throws {
        let r = try boot(lazy: true, workload: .touch(ByteCount.gib(1).value))
        let vm = try #require(r.host), t = try #require(vm.hostTrace)
        let inf = try #require(vm.hostInference(after: r.times.totalBoot))
        let blocks = t.records.filter { $0.kind == .acceptExit && $0.level == .size2M && $0.frames.length == 1024 && $0.exits == 2 }
        #expect(blocks.count > 100)
        // The touch allocates free memory, some of it accepted during the boot already.
        #expect(inf.seenAfter > ByteCount.mib(900).value)
        #expect(inf.guestCallsSeen == inf.guestCalls && inf.guestCalls > 0)
        // Everything the guest accepted after the build was seen: only the initial image was not.
        #expect(inf.unseenBytes == vm.ops[.tdxPageAdd] << PageLevel.pageShift)
        #expect(inf.seenBytes + inf.unseenBytes == inf.acceptedBytes)
    }

    /// Eager acceptance: the host sees the same kind of exits, all before
    /// the workload: their times say nothing about the guest's allocations.
    @Test func eagerAcceptShowsEverythingAtBoot() throws {
        let r = try boot(lazy: false, workload: .touch(ByteCount.gib(1).value))
        let vm = try #require(r.host)
        let inf = try #require(vm.hostInference(after: r.times.totalBoot))
        #expect(inf.seenAfter == 0)
        #expect(inf.seenBytes + inf.unseenBytes == inf.acceptedBytes)
        #expect(inf.acceptedBytes > ByteCount.gib(5).value)
        #expect(try #require(inf.span).upperBound <= r.times.totalBoot)
    }

    /// Bulk replay records what stepping records: the same exits per kind
    /// and level, the same first-touch map, the same records once merged.
    @Test(arguments: [(true, TDXHostModel.tdxHuge), (false, .tdxHuge), (true, .tdx)])
    func bulkTraceEqualsStepping(lazy: Bool, host: TDXHostModel) throws {
        let bulk = try #require(try boot(lazy: lazy, workload: .touch(ByteCount.mib(512).value), host: host).host?.hostTrace)
        let step = try #require(try boot(lazy: lazy, stepByStep: true, workload: .touch(ByteCount.mib(512).value), host: host).host?.hostTrace)
        for k in HostTraceKind.allCases { for l in PageLevel.allCases { #expect(bulk.exits(k, level: l) == step.exits(k, level: l)) } }
        #expect(bulk.firstTouch == step.firstTouch)
        #expect(bulk.guestCalls == step.guestCalls && bulk.guestCallsSeen == step.guestCallsSeen)
        // Where a chunk's step exits at one level, records merge to the same
        // runs; on the 4K-only host a chunk's 2M exit and its 4K fallback
        // interleave when stepped and are one record per level when
        // replayed, each spanning the chunks its exits fall in: the exits per
        // kind, level and vCPU agree.
        if host == .tdxHuge { #expect(merged(bulk.records) == merged(step.records)) }
        #expect(coverage(bulk.records).mapValues { $0[1] } == coverage(step.records).mapValues { $0[1] })
        // A replayed record ends where the replayed span ends, after its
        // last exit's TDCALL completes: never before stepping's last exit.
        let b = try #require(bulk.firstTouchSpan), st = try #require(step.firstTouchSpan)
        #expect(b.lowerBound == st.lowerBound && b.upperBound >= st.upperBound)
    }

    /// Upstream's 4K-only host: each 2M ACCEPT exits at 2M, fails
    /// SIZE_MISMATCH on the 4K mapping and falls back to 512 4K accepts that
    /// each exit: the host sees every 4K page's first touch.
    @Test func theUpstreamHostSeesEvery4KPage() throws {
        let r = try boot(lazy: true, host: .tdx)
        let t = try #require(r.host?.hostTrace)
        #expect(t.exits(.acceptExit, level: .size4K) > 511 * t.exits(.acceptExit, level: .size2M) / 2)
    }

    /// What the guest first touches after the boot does not depend on how
    /// the host maps it: on the 4K-only host each 2M ACCEPT's exit and its
    /// 4K fallback cover the same frames, and the bytes first touched after
    /// the boot count each frame once: what the 2M host reports (within the
    /// 4 MiB block the two boots' different end times may put on either
    /// side), about half the records' sum, and within what the host saw.
    @Test func firstTouchedAfterTheBootCountsEachFrameOnce() throws {
        let huge = try boot(lazy: true, workload: .touch(ByteCount.mib(512).value), host: .tdxHuge)
        let small = try boot(lazy: true, workload: .touch(ByteCount.mib(512).value), host: .tdx)
        let ih = try #require(huge.host?.hostInference(after: huge.times.totalBoot))
        let i4 = try #require(small.host?.hostInference(after: small.times.totalBoot))
        let t4 = try #require(small.host?.hostTrace)
        // The 4K host's records do overlap: a 2M exit's frames are also in its fallback's 4K records.
        let late = t4.records.filter { $0.kind.isFirstTouch && $0.start >= small.times.totalBoot }
        // The boot ends at another time on each host, so one 4 MiB block may fall on either side of it.
        #expect(ih.seenAfter > ByteCount.mib(256).value)
        #expect(max(i4.seenAfter, ih.seenAfter) - min(i4.seenAfter, ih.seenAfter) <= ByteCount.mib(4).value,
                "4K host \(i4.seenAfter), 2M host \(ih.seenAfter)")
        // Summing the 4K host's records counts most frames twice (the 2M exit and its fallback).
        #expect(late.reduce(UInt64(0)) { $0 + ($1.frames.length << 12) } > i4.seenAfter * 3 / 2)
        #expect(i4.seenAfter <= i4.seenBytes)
    }

    /// The `Host inference:` line prints every size in one unit: K when a
    /// 4K-granular figure is on it, M when every figure is whole MiB or one
    /// exact decimal of one.
    @Test func theInferenceLinePrintsOneUnit() {
        var inf = HostInference(acceptedBytes: 3_483_648 << 10, seenByLevel: [.size2M: 3_477_504 << 10, .size4K: 1920 << 10],
                                seenByAccess: 0, guestCalls: 10, guestCallsSeen: 9, span: 0.5...1.5, seenAfter: 1 << 30, recordsDropped: 0)
        let k = HostTraceReport.inferenceText(inf, afterBoot: true)
        #expect(k.contains("first touch seen for 3479424K of 3483648K accepted (99.9%; 3477504K at 2M, 1920K at 4K), unseen 4224K"), "\(k)")
        #expect(k.contains(", 1048576K first touched after the boot"), "\(k)")
        inf.seenByLevel = [.size2M: 3 << 30, .size4K: 1 << 20]; inf.acceptedBytes = 4 << 30; inf.seenByAccess = 1536 << 10
        let m = HostTraceReport.inferenceText(inf, afterBoot: true)
        #expect(m.contains("first touch seen for 3074.5M of 4096M accepted (75.1%; 3072M at 2M, 1M at 4K, 1.5M by access), unseen 1021.5M"), "\(m)")
        #expect(m.contains(", 1024M first touched after the boot"), "\(m)")
    }

    /// A host that AUGs memory the guest never asked for (`readd` of
    /// untouched GPAs, `KVM_PRE_FAULT_MEMORY`): the guest's later ACCEPT
    /// finds the page PENDING and succeeds without an exit, so the host
    /// loses the first touch it would have seen; nothing in the guest notices.
    @Test func memoryTheHostAUGedUnaskedIsAcceptedWithoutAnExit() throws {
        let s = try HostScenario.parse("td host=tdx-huge sept-ve-disable=on\nslot id=1 base=0 pages=0x800\nfinalize\n"
                                       + "readd 0x0+0x400\naccept 0x0+0x800 linux\naccess 0x10\n")
        let r = try HostRun(s, calibration: try Calibration.builtIn(), log: false)
        r.vm.hostTrace = HostTrace()
        try r.run()
        let t = try #require(r.vm.hostTrace)
        #expect(r.guestFailure == nil && r.vm.outcome == .ok)
        #expect(r.vm.module.isAccessible(GFN(0) ..< GFN(0x800)))
        // Only the half the host did not AUG exits; the pre-AUGed half is unseen.
        #expect(t.firstTouch.measure(in: GFN(0) ..< GFN(0x800)) { $0 > 0 } == 0x400)
        #expect(t.firstTouch.measure(in: GFN(0) ..< GFN(0x400)) { $0 > 0 } == 0)
        let inf = try #require(r.vm.hostInference(after: 0))
        #expect(inf.unseenBytes == 0x400 << 12 && inf.seenBytes == 0x400 << 12)
    }

    /// The trace is bounded: the first and last records are kept, the
    /// middle counted; the totals and the first-touch map stay exact.
    @Test func theTraceKeepsItsHeadAndTailAndExactTotals() {
        var t = HostTrace()
        let n = HostTrace.headLimit + HostTrace.tailLimit + 1 + 1234
        for i in 0 ..< n {
            t.beginCall(vcpu: 0, now: Double(i), calls: 1)
            // Every other page: no two records continue each other.
            t.add(.accessExit, level: nil, frames: GFN(UInt64(2 * i)).only)
        }
        t.endCall()
        #expect(t.dropped == 1234)
        // The limits, and the record still open.
        #expect(t.records.count == HostTrace.headLimit + HostTrace.tailLimit + 1)
        #expect(t.records.first?.frames.lowerBound == GFN(0) && t.records.last?.frames.lowerBound == GFN(UInt64(2 * (n - 1))))
        #expect(t.exits(.accessExit) == UInt64(n) && t.guestCallsSeen == UInt64(n))
        #expect(t.firstTouch.measure(in: .lowest ..< .highest) { $0 == 4 } == UInt64(n))
        #expect(t.jsonLines.contains("{\"dropped\":1234}"))
    }

    /// Exits that continue each other within one call are one record.
    @Test func contiguousExitsOfOneCallAreOneRecord() {
        var t = HostTrace()
        t.beginCall(vcpu: 1, now: 1, calls: 1)
        for c in 0 ..< 4 as Range<UInt64> { t.now = 1 + Double(c); t.add(.acceptExit, level: .size2M, frames: Range(start: GFN(c * 512), count: 512)) }
        t.beginCall(vcpu: 1, now: 9, calls: 1)
        t.add(.acceptExit, level: .size2M, frames: Range(start: GFN(4 * 512), count: 512))
        let rs = t.records
        #expect(rs.count == 2)
        #expect(rs[0].exits == 4 && rs[0].frames == GFN(0) ..< GFN(2048) && rs[0].start == 1 && rs[0].end == 4 && rs[0].vcpu == 1)
        #expect(rs[1].start == 9)
    }

    /// The host's view of guest memory (intel/lkvs `tdx_memory_confident`:
    /// QEMU's `dump-guest-memory` must not contain what the TD holds):
    /// shared pages read the guest's data; private ones read the VMM's own
    /// memory with VM-wide attributes (zeros, or what a host process wrote)
    /// and SIGBUS in place.
    @Test(arguments: [ConversionPolicy.zapBeforeFolioSplit, ConversionPolicy.inPlace])
    func aHostReadSeesOnlySharedPages(_ policy: ConversionPolicy) throws {
        let s = try HostScenario.parse("td host=tdx-huge policy=\(policy.rawValue)\nslot id=1 base=0 pages=0x800\nfinalize\n"
                                       + "accept 0x0+0x800 linux\nconvert 0x0+0x10 shared\n"
                                       + (policy == .inPlace ? "" : "hostmap 0x100+0x4\n") + "hostread 0x0+0x800\n")
        let r = try HostRun(s, calibration: try Calibration.builtIn(), log: false)
        try r.run()
        let h = try #require(r.hostReads.last?.read)
        #expect(h.guestData == 0x10)
        if policy == .inPlace {
            #expect(h.sigbus == 0x7f0 && h.notGuestData == 0)
        } else {
            #expect(h.notGuestData == 0x7f0 && h.hostWritten == 4 && h.sigbus == 0)
        }
        #expect(r.text.contains("Host read (line 6)") || r.text.contains("Host read (line 7)"))
    }
}

