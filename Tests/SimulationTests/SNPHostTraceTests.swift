import CoCoGuest
import CostModel
import Firmware
import GuestKernel
import TDXModule
@testable import KVM
import MemoryModel
@testable import Reports
@testable import Simulation
import SNP
import TestSupport
import Testing

/// What the SEV-SNP host sees of a booted guest's memory use (issue 18 §5,
/// `boot --platform snp --host snp --host-trace`): nested page faults by
/// their flags, page-state changes with their answers, and what the host
/// can infer from them.
@Suite struct SNPHostTraceTests {
    static func boot(_ f: (inout Scenario) -> Void = { _ in }) throws -> BootResult {
        try bootResult { s in
            s.platform = .snp; s.firmware = .ovmfSNP; s.memory = 6 << 30; s.vcpus = 2
            s.lazy = true; s.kernel.lazyAccept = true
            s.snpHost = true; s.traceHost = true
            s.workload = .touch(1 << 30)
            f(&s)
        }
    }

    /// Per kind, level, answer and vCPU: the frames covered and the exits
    /// (what stepping and replay must agree on when their records are cut
    /// differently).
    func coverage(_ rs: [HostTraceRecord]) -> [String: [UInt64]] {
        var maps: [String: IntervalMap<GuestFrameNumber, Bool>] = [:], exits: [String: UInt64] = [:]
        for r in rs {
            let k = "\(r.kind) \(r.level.map { "\($0)" } ?? "-") \(r.answer ?? "-") \(r.vcpu)"
            maps[k, default: IntervalMap(initial: false)].assign(r.frames, true)
            exits[k, default: 0] += r.exits
        }
        return maps.mapValues { [$0.measure(in: .lowest ..< .highest) { $0 }] }.merging(exits.mapValues { [$0] }) { $0 + $1 }
    }

    /// Every exit the host model took is in the trace: each nested page
    /// fault KVM resolved, each RMP fault by its flags, each
    /// KVM_HC_MAP_GPA_RANGE exit of a page-state change (GHCB and MSR
    /// protocol) with the answer `ok`; every guest accept call was seen
    /// (its page-state change announces it), and all accepted memory's first
    /// touch but the launch image's.
    @Test(arguments: [HostMappingPolicy.map4K, .map2M])
    func theTraceHasEveryExitOfTheBoot(_ m: HostMappingPolicy) throws {
        let r = try Self.boot { $0.hostMapping = m }
        let vm = try #require(r.snpHost), t = try #require(vm.hostTrace)
        #expect(r.outcome == .ok)
        #expect(t.exits(.npfPrivate) == vm.stats[.npfPrivate4K] + vm.stats[.npfPrivate2M] && t.exits(.npfPrivate) > 0)
        #expect(t.exits(.npfRMP) + t.exits(.npfRMPSizeMismatch) == vm.stats[.npfRMP])
        #expect(t.exits(.pscPrivate) + t.exits(.pscMSRPrivate) == vm.stats[.mapGPARangeExits])
        #expect(t.exits(.pscMSRPrivate) == vm.stats[.pscMSRExits])
        #expect(t.exits(.pscPrivate, level: .size2M) > 0)
        #expect(t.records.allSatisfy { !$0.kind.rawValue.hasPrefix("psc") || $0.answer == "ok" })
        #expect(t.records.allSatisfy { $0.kind.rawValue.hasPrefix("psc") || $0.answer == nil })
        let inf = try #require(vm.hostInference(after: r.times.totalBoot))
        #expect(inf.guestCalls > 0 && inf.guestCallsSeen == inf.guestCalls)
        // The launch image (SNP_LAUNCH_UPDATE: validated by the firmware, no PSC, no fault) is all the host did not see.
        let launched = Q35Layout.firmwareAddedRAM.frames.length + Q35Layout.flash.frames.length
        #expect(inf.unseenBytes == launched << PageLevel.pageShift)
        #expect(inf.seenBytes + inf.unseenBytes == inf.acceptedBytes)
        #expect(inf.acceptedBytes == (vm.validatedPages - UInt64(r.scenario.vcpus)) << PageLevel.pageShift)
        // The workload's first touches come after the boot (lazy acceptance), each range counted once
        // though its page-state change and its faults both show it.
        #expect(inf.seenAfter > 0 && inf.seenAfter <= (1 << 30) + (64 << 20), "\(inf.seenAfter)")
        #expect(r.hostTraceText.contains("Host inference: first touch seen") && r.hostTraceText.contains("psc-private ("))
    }

    /// Replaying frames, descriptors and the kernel's calls records what
    /// stepping records: the same exits per kind, level and answer, the
    /// same first-touch map and calls, the same frames covered per kind.
    @Test(arguments: [(HostMappingPolicy.map4K, true), (.map4K, false), (.map2M, true), (.map2M, false)])
    func bulkTraceEqualsStepping(_ m: HostMappingPolicy, _ lazy: Bool) throws {
        let fast = try Self.boot { $0.hostMapping = m; $0.lazy = lazy; $0.kernel.lazyAccept = lazy }
        let step = try Self.boot { $0.hostMapping = m; $0.lazy = lazy; $0.kernel.lazyAccept = lazy; $0.stepByStep = true }
        let a = try #require(fast.snpHost?.hostTrace), b = try #require(step.snpHost?.hostTrace)
        for k in HostTraceKind.allCases {
            #expect(a.exits(k) == b.exits(k), "\(m) lazy=\(lazy) \(k)")
            for l in PageLevel.allCases { #expect(a.exits(k, level: l) == b.exits(k, level: l), "\(m) lazy=\(lazy) \(k) \(l)") }
        }
        #expect(a.firstTouch == b.firstTouch, "\(m) lazy=\(lazy)")
        #expect(a.guestCalls == b.guestCalls && a.guestCallsSeen == b.guestCallsSeen, "\(m) lazy=\(lazy)")
        #expect(coverage(a.records) == coverage(b.records), "\(m) lazy=\(lazy)")
        let sa = try #require(a.firstTouchSpan), sb = try #require(b.firstTouchSpan)
        #expect(sa.lowerBound == sb.lowerBound && sa.upperBound >= sb.upperBound, "\(m) lazy=\(lazy)")
        // The kernel's call replay ran on the fast path only.
        #expect(step.snpHost!.replayedCalls == 0 && fast.snpHost!.replayedCalls > 0)
    }

    /// Tracing changes nothing the host does: the same counters, RMP and
    /// report as a boot without `--host-trace`.
    @Test func tracingChangesNothing() throws {
        let a = try Self.boot(), b = try Self.boot { $0.traceHost = false }
        let va = try #require(a.snpHost), vb = try #require(b.snpHost)
        #expect(va.stats == vb.stats && va.ops == vb.ops && a.counts == b.counts)
        #expect(va.rmp.entries.starts == vb.rmp.entries.starts && va.rmp.entries.values == vb.rmp.entries.values)
        #expect(vb.hostTrace == nil && b.hostTraceText.isEmpty && a.text == b.text)
    }

    /// `--snp-prefault` on the host model (KVM_PRE_FAULT_MEMORY after each
    /// conversion to private, `SNPVM+Prefault`): the guest's PVALIDATEs find
    /// their pages mapped and assigned, so the nested page faults are gone,
    /// but every page-state change still announces its range: the host's
    /// inference is the same, the guest makes the same requests.
    @Test(arguments: [HostMappingPolicy.map4K, .map2M])
    func prefaultingHidesTheFaultsNotTheFirstTouches(_ m: HostMappingPolicy) throws {
        let plain = try Self.boot { $0.hostMapping = m }
        let pre = try Self.boot { $0.hostMapping = m; $0.snpPrefault = true }
        let vp = try #require(plain.snpHost), vq = try #require(pre.snpHost)
        let tp = try #require(vp.hostTrace), tq = try #require(vq.hostTrace)
        #expect(pre.outcome == .ok && vq.checkInvariants().isEmpty && vq.warnings.isEmpty)
        #expect(vq.stats[.prefaultPages4K] + vq.stats[.prefaultPages2M] > 0 && vq.stats[.prefaultRefused] == 0)
        // What faults remain are the retries after an RMP fault's PSMASH (a 4K PVALIDATE of a 2M entry).
        #expect(tq.exits(.npfPrivate) < tp.exits(.npfPrivate), "\(tq.exits(.npfPrivate)) against \(tp.exits(.npfPrivate))")
        #expect(tq.exits(.npfPrivate) == vq.stats[.npfPrivate4K] + vq.stats[.npfPrivate2M])
        for k in [HostTraceKind.pscPrivate, .pscMSRPrivate] { #expect(tq.exits(k) == tp.exits(k)) }
        #expect(tq.firstTouch == tp.firstTouch)
        let ip = try #require(vp.hostInference(after: plain.times.totalBoot)), iq = try #require(vq.hostInference(after: pre.times.totalBoot))
        #expect(ip.seenBytes == iq.seenBytes && ip.acceptedBytes == iq.acceptedBytes && iq.guestCallsSeen == iq.guestCalls)
        for op in [Op.snpPSCExit, .snpPSCEntry4K, .snpPSCEntry2M, .snpMSRPSCExit] { #expect(plain.counts[op] == pre.counts[op], "\(op)") }
        #expect(vq.validatedPages == vp.validatedPages)
    }

    /// Pre-faulting by runs equals stepping every call and descriptor.
    @Test func prefaultBulkEqualsStepping() throws {
        for m in [HostMappingPolicy.map4K, .map2M] {
            let a = try Self.boot { $0.hostMapping = m; $0.snpPrefault = true; $0.lazy = false; $0.kernel.lazyAccept = false }
            let b = try Self.boot { $0.hostMapping = m; $0.snpPrefault = true; $0.lazy = false; $0.kernel.lazyAccept = false; $0.stepByStep = true }
            let va = try #require(a.snpHost), vb = try #require(b.snpHost)
            #expect(va.stats == vb.stats && va.ops == vb.ops && a.counts == b.counts, "\(m)")
            #expect(va.rmp.entries.starts == vb.rmp.entries.starts && va.rmp.entries.values == vb.rmp.entries.values, "\(m)")
            #expect(va.npt.starts == vb.npt.starts && va.npt.values == vb.npt.values, "\(m)")
        }
    }

    /// Linux's `pvalidate_pages()` (7b306dfa326f) runs a descriptor's
    /// PVALIDATEs, then `sev_evict_cache()` of its private entries, before
    /// the next descriptor's page-state change: each descriptor's exits come
    /// after the eviction of those before it, stepped and replayed (the
    /// window of whole descriptors after the first starts after the first's
    /// eviction; the last descriptor after all three), and the clock is the
    /// same either way. They were all placed before the call's eviction.
    @Test func exitsComeAfterTheEvictionOfTheDescriptorsBeforeThem() throws {
        let costs = CostTable(try Calibration.builtIn())
        let full = UInt64(SNPHostGuest.pscMaxEntries)
        func psc(evicts: Bool, step: Bool) throws -> ([HostTraceRecord], PhaseClock) {
            let vm = try SNPVM(vcpus: 1, slots: [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: 0x80000, backing: .hugetlb2M)])
            vm.traceHost(costs: costs)
            let acc = SNPHostAcceptor(guest: SNPHostGuest(host: vm), driver: .linuxGHCB, costs: costs)
            acc.evictsCache = evicts
            acc.stepByStep = step
            var clock = PhaseClock(vcpus: 1)
            // Three whole descriptors of 2M entries and one of a single entry.
            #expect(acc.accept(AddressRange(start: 0, size: (3 * full + 1) << 21), vcpu: 0, clock: &clock) == .ok)
            return (try #require(vm.hostTrace).records.filter { $0.kind == .pscPrivate }, clock)
        }
        let perDescriptor = Double(costs.vcpuPicoseconds[Op.snpEvictCache4K.index] * full * 512) / 1e12
        for (step, shifts) in [(true, [0.0, 1, 2, 3]), (false, [0.0, 1, 3])] {
            let (plain, c0) = try psc(evicts: false, step: step), (evicted, c1) = try psc(evicts: true, step: step)
            #expect(plain.count == shifts.count && evicted.count == shifts.count, "step=\(step): \(evicted.map(\.jsonLine))")
            for (i, k) in shifts.enumerated() where i < min(plain.count, evicted.count) {
                #expect(abs(evicted[i].start - plain[i].start - k * perDescriptor) < 1e-9, "step=\(step) descriptor run \(i)")
            }
            #expect(c1.vcpuPicoseconds[0] > c0.vcpuPicoseconds[0])
        }
        let stepped = try psc(evicts: true, step: true).1, replayed = try psc(evicts: true, step: false).1
        #expect(stepped == replayed)
    }

    /// The file's lines: SNP page-state changes carry their answer, every
    /// other record keeps the TDX format unchanged.
    @Test func aPageStateChangeLineCarriesItsAnswer() {
        let psc = HostTraceRecord(kind: .pscPrivate, level: .size2M, vcpu: 1, frames: GuestFrameNumber(512)..<GuestFrameNumber(1536),
                                  exits: 1, start: 0.5, end: 0.5, answer: "ok")
        #expect(psc.jsonLine == #"{"t":0.500000000,"t_end":0.500000000,"kind":"psc-private","level":"2M","vcpu":1,"gpa":"0x0000000000200000","bytes":4194304,"exits":1,"answer":"ok"}"#)
        let acc = HostTraceRecord(kind: .acceptExit, level: .size2M, vcpu: 0, frames: GuestFrameNumber(0)..<GuestFrameNumber(512), exits: 1, start: 0, end: 0)
        #expect(!acc.jsonLine.contains("answer") && acc.jsonLine.hasSuffix("\"exits\":1}"))
    }
}
