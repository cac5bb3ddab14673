import CoCoGuest
import CostModel
import GuestKernel
import Firmware
import TDXModule
@testable import KVM
import MemoryModel
@testable import Reports
@testable import Simulation
import SNP
import TestSupport
import Testing

/// `cocomem boot --platform snp --host snp` (issue 18 §4): the SEV-SNP
/// guest's validations and page-state changes run against the KVM SEV-SNP
/// host model (`SNPVM`), and the VMSA pages of KVM_SEV_SNP_LAUNCH_FINISH.
@Suite struct SNPHostBootTests {
    static func snp(_ f: @escaping (inout Scenario) -> Void = { _ in }) throws -> BootResult {
        try bootResult { s in
            s.platform = .snp; s.firmware = .ovmfSNP; s.memory = 2 << 30; s.vcpus = 2
            // These identities count validations; the SWIOTLB's conversion (its rescinds and
            // returned entries) is tested in SharedSWIOTLBTests.
            s.kernel.swiotlbShared = false
            f(&s)
        }
    }

    /// The boot runs on the host model: every page the guest validated is
    /// an RMP entry `sev_gmem_prepare()` made at a nested page fault (4K
    /// folios: one 4K RMPUPDATE and one #NPF per page, every 2M PVALIDATE
    /// a FAIL_SIZEMISMATCH), the PSCs went through `snp_begin_psc()`, and
    /// the host's invariants hold at the end.
    @Test func aBootRunsOnTheSNPHostModel() throws {
        let r = try Self.snp { $0.snpHost = true }
        let vm = try #require(r.snpHost)
        #expect(r.outcome == .ok && r.host == nil)
        #expect(vm.checkInvariants().isEmpty, "\(vm.checkInvariants())")
        #expect(vm.stats[.pscExits] > 0 && vm.stats[.mapGPARangeExits] > 0)
        // Launch: the firmware image's pages, then the VMSAs; each later validated page was faulted in and prepared.
        let launched = Q35Layout.firmwareAddedRAM.frames.length + Q35Layout.flash.frames.length
        #expect(vm.stats[.rmpupdatePrivate4K] == launched + vm.stats[.npfPrivate4K])
        #expect(vm.stats[.pvalidate4KSuccess] == vm.stats[.npfPrivate4K] && vm.stats[.pvalidate2MSuccess] == 0)
        #expect(vm.stats[.pvalidateSizeMismatch] == vm.stats[.pscEntries2M])
        #expect(vm.validatedPages == vm.stats[.pvalidate4KSuccess] + launched + UInt64(r.scenario.vcpus))
        #expect(r.committedBytes == ByteCount.frames(vm.committedPages + vm.vmsaPages).value)
        // The HTML page's subtitle names the host model as the text report's first line does.
        #expect(r.headline.contains("host snp-4k (SNP host model)") && r.text.contains("host snp-4k (SNP host model)"), "\(r.headline)")
    }

    /// With hugetlb 2M folios (`--host-mapping 2m`) each 2M PSC entry is one
    /// 2M RMPUPDATE, a 2M NPT leaf and a 2M PVALIDATE that succeeds.
    @Test func twoMFoliosAreValidatedAt2M() throws {
        let r = try Self.snp { $0.snpHost = true; $0.hostMapping = .map2M }
        let vm = try #require(r.snpHost)
        #expect(r.outcome == .ok && vm.checkInvariants().isEmpty)
        #expect(vm.stats[.rmpupdatePrivate2M] > 0 && vm.stats[.rmpupdatePrivate2M] == vm.stats[.pvalidate2MSuccess])
        #expect(vm.stats[.pvalidate2MSuccess] == vm.stats[.pscEntries2M] && vm.stats[.pvalidateSizeMismatch] == 0)
        #expect(vm.privatePages2M == vm.stats[.npfPrivate2M] && vm.assignedPagesBySize.in2M == vm.privatePages2M * 512)
    }

    /// The guest makes the same requests on the host model as on the
    /// guest-facing platform: the same PSC exits and entries, PVALIDATEs by
    /// size and result, cache evictions and memory validated.
    @Test func theGuestMakesTheSameRequestsAsOnTheGuestFacingPlatform() throws {
        for m in [HostMappingPolicy.map4K, .map2M] {
            let a = try Self.snp { $0.hostMapping = m; $0.workload = .touch(256 << 20) }
            let b = try Self.snp { $0.hostMapping = m; $0.workload = .touch(256 << 20); $0.snpHost = true }
            for op in [Op.snpPSCExit, .snpPSCEntry4K, .snpPSCEntry2M, .snpPvalidate4KSuccess, .snpPvalidate2MSuccess,
                       .snpPvalidate2MSizeMismatch, .snpEvictCache4K, .snpMSRPSCExit] {
                #expect(a.counts[op] == b.counts[op], "\(m) \(op): \(a.counts[op]) against \(b.counts[op])")
            }
            #expect(a.acceptedKernelBoot + a.acceptedWorkload == b.acceptedKernelBoot + b.acceptedWorkload)
            #expect(a.snpHost == nil && b.snpHost != nil)
        }
    }

    /// Stepping every PSC descriptor and every `accept_memory()` call
    /// leaves the same host state, counters and report as offering the host
    /// replay windows and replaying the kernel's calls over uniform chunks
    /// (`SNPHostAcceptor`'s `ArchAcceptorReplay`): 4K and 2M folios, lazy
    /// and eager, sizes drawn from a seed (some not a multiple of the 4 MiB
    /// block, so stepped calls sit beside replayed ones).
    @Test func bulkEqualsStepping() throws {
        var rng = SplitMix64(seed: 18)
        for m in [HostMappingPolicy.map4K, .map2M] {
            for lazy in [false, true] {
                let mem: UInt64 = (5 << 30) + (rng.next() % 512) * (2 << 20)
                let fast = try Self.snp { $0.snpHost = true; $0.hostMapping = m; $0.lazy = lazy; $0.memory = mem }
                let step = try Self.snp { $0.snpHost = true; $0.hostMapping = m; $0.lazy = lazy; $0.memory = mem; $0.stepByStep = true }
                let a = try #require(fast.snpHost), b = try #require(step.snpHost)
                let what = "\(m) lazy=\(lazy) memory=\(mem)"
                #expect(a.stats == b.stats && a.ops == b.ops, "\(what)")
                #expect(a.rmp.entries.starts == b.rmp.entries.starts && a.rmp.entries.values == b.rmp.entries.values, "\(what)")
                #expect(a.npt.starts == b.npt.starts && a.npt.values == b.npt.values, "\(what)")
                #expect(a.gmem.folioOrder.starts == b.gmem.folioOrder.starts && a.gmem.folioOrder.values == b.gmem.folioOrder.values, "\(what)")
                #expect(fast.counts == step.counts && fast.committedBytes == step.committedBytes, "\(what)")
                #expect(a.checkInvariants().isEmpty, "\(what)")
                // The kernel's span replay ran on the fast path only (eager
                // accepts every block above what the firmware accepted; lazy only what
                // the boot touches).
                #expect(b.replayedCalls == 0, "\(what)")
                if !lazy { #expect(a.replayedCalls > 0, "\(what)") }
            }
        }
    }

    /// The MSR protocol's bulk path (`msrValidate4K`) equals a GHCB MSR
    /// page-state change and a 4K PVALIDATE per frame, from random states.
    @Test func msrValidationByRunsEqualsStepping() throws {
        for seed in 0..<20 as Range<UInt64> {
            var rng = SplitMix64(seed: seed)
            let backing: GmemBacking = seed % 2 == 0 ? .hugetlb2M : .buddy
            let a = try SNPVM(vcpus: 1, slots: [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: 2048, backing: backing)])
            let b = try SNPVM(vcpus: 1, slots: [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: 2048, backing: backing)])
            for _ in 0..<5 {
                let start = GuestFrameNumber(rng.next() % 2000), n = 1 + rng.next() % 700
                let r = start..<min(start + n, GuestFrameNumber(2048))
                if rng.next() % 3 == 0 {
                    _ = SNPHostGuest(host: a).makeShared(r); _ = SNPHostGuest(host: b).makeShared(r)
                    continue
                }
                let fa = a.msrValidate4K(r)
                var fb: GuestFrameNumber? = nil
                for g in r {
                    guard b.msrPageStateChange(gfn: g, toPrivate: true) == .ok,
                          b.pvalidate(gfn: g, level: .size4K, validate: true) == .success else { fb = g; break }
                }
                #expect(fa?.gfn == fb, "seed \(seed)")
                #expect(a.stats == b.stats && a.ops == b.ops, "seed \(seed)")
                #expect(a.rmp.entries.starts == b.rmp.entries.starts && a.rmp.entries.values == b.rmp.entries.values, "seed \(seed)")
                #expect(a.checkInvariants().isEmpty, "seed \(seed): \(a.checkInvariants())")
            }
        }
    }

    /// `snp_launch_update_vmsa()`: one VMSA page per vCPU, assigned,
    /// validated and marked VMSA at INITIAL_VMSA_GPA, each a 4K RMPUPDATE
    /// and a page of host memory; a second LAUNCH_FINISH changes nothing.
    @Test func oneVMSAPagePerVCPU() throws {
        let r = try Self.snp { $0.snpHost = true; $0.vcpus = 3 }
        let vm = try #require(r.snpHost)
        #expect(vm.vmsaPages == 3 && vm.vmsaEntries == 3 && vm.stats[.launchUpdateVMSA] == 3)
        #expect(vm.hostCommittedPages == vm.committedPages + 3)
        for i in 0..<3 { #expect(!vm.vmsaHostFrame(vcpu: i).isAligned(to: .size2M)) }
        let before = vm.stats
        vm.launchFinish()
        #expect(vm.stats == before && vm.vmsaPages == 3)
        #expect(r.text.contains("RMP: 0 2M entries") && r.text.contains("(3 of them VMSAs)") && r.text.contains("vmsa.pages: 3"))
    }

    /// Options the host model does not have are refused, not ignored; a TDX
    /// guest cannot run on it.
    @Test func whatTheHostModelLacksIsRefused() throws {
        var s = Scenario(); s.platform = .snp; s.firmware = .ovmfSNP; s.snpHost = true
        var v = s; v.snpVMPL = 1
        #expect(throws: CocomemError.self) { try v.validate() }
        // --snp-prefault runs on the host model since session 16 (SNPVM+Prefault).
        var p = s; p.snpPrefault = true
        try p.validate()
        var t = Scenario(); t.snpHost = true
        #expect(throws: CocomemError.self) { try t.validate() }
        try s.validate()
    }
}
