import CoCoGuest
import CostModel
@testable import KVM
import MemoryModel
import Reports
import SNP
@testable import Simulation
import Testing

/// An SNP host that changes the RMP without the guest asking (issue 18 §5:
/// `assign`, `rmp-shared`), `finalize` as KVM_SEV_SNP_LAUNCH_FINISH, and
/// KVM_PRE_FAULT_MEMORY on the host model. Each test fails without the
/// behaviour it names.
@Suite struct SNPHostRMPTests {
    func run(_ commands: String, backing: String = "buddy", vcpus: Int = 1) throws -> SNPHostRun {
        let s = try HostScenario.parse("td platform=snp vcpus=\(vcpus)\nslot id=1 base=0 pages=2048 backing=\(backing)\n" + commands)
        let r = try SNPHostRun(s, calibration: try Calibration.builtIn(), log: true)
        try r.run()
        return r
    }

    func frames(_ a: UInt64, _ n: UInt64) -> Range<GuestFrameNumber> { GuestFrameNumber(a)..<GuestFrameNumber(a + n) }

    /// `assign` over pages the guest validated: RMPUPDATE clears Validated
    /// under the mapping the guest uses; its next access is #VC 0x404
    /// (SVM_EXIT_NOT_VALIDATED), which Linux's #VC handler does not handle:
    /// the guest terminates itself. Fail-stop, noticed by the CPU's RMP check.
    @Test func anAssignedValidatedPageIsNotValidatedAtTheNextAccess() throws {
        let honest = try run("accept 0x0+16 linux\naccess 0x0+1\n")
        #expect(honest.guestFailure == nil)
        let r = try run("accept 0x0+16 linux\nassign 0x0+16\naccess 0x0+1\n")
        #expect(r.guestFailure?.contains("0x404") == true, "\(r.outcomeString)")
        #expect(r.vm.stats[.hostAssigned4K] == 16 && !r.vm.rmpEntry(GuestFrameNumber(0)).validated)
        #expect(r.vm.rmpEntry(GuestFrameNumber(0)).assigned && r.vm.npt.value(at: GuestFrameNumber(0)) == .private4K)
        #expect(r.vm.checkInvariants().isEmpty && r.vm.warnings.isEmpty)
    }

    /// `assign` over pages the guest has not asked for: they are prepared
    /// as `sev_gmem_prepare()` would at their fault, not validated, not
    /// mapped. The guest's later page-state change and PVALIDATE succeed as
    /// on any page (KVM finds them assigned and does not RMPUPDATE again):
    /// nothing in the guest notices.
    @Test func pagesAssignedUnaskedAreValidatedWithoutNotice() throws {
        for backing in ["buddy", "hugetlb-2m"] {
            let plain = try run("accept 0x0+1024 linux\n", backing: backing)
            let r = try run("assign 0x0+1024\naccept 0x0+1024 linux\n", backing: backing)
            #expect(r.guestFailure == nil && r.vm.isValidated(frames(0, 1024)), "\(backing)")
            #expect(r.vm.stats[.hostAssigned4K] + 512 * r.vm.stats[.hostAssigned2M] == 1024, "\(backing)")
            // The faults still come (assign maps nothing); the RMPUPDATEs moved from the fault to the host's command.
            #expect(r.vm.stats[.npfPrivate4K] == plain.vm.stats[.npfPrivate4K] && r.vm.stats[.npfPrivate2M] == plain.vm.stats[.npfPrivate2M], "\(backing)")
            #expect(r.vm.stats[.rmpupdatePrivate4K] == plain.vm.stats[.rmpupdatePrivate4K]
                    && r.vm.stats[.rmpupdatePrivate2M] == plain.vm.stats[.rmpupdatePrivate2M], "\(backing)")
            #expect(r.vm.rmp.entries.values == plain.vm.rmp.entries.values && r.vm.checkInvariants().isEmpty && r.vm.warnings.isEmpty, "\(backing)")
        }
    }

    /// Validating twice is fatal to Linux and edk2 (PVALIDATE's CF=1, no
    /// update: GHCB_TERM_PVALIDATE), which is what stops a guest from
    /// accepting a page twice. After the host's RMPUPDATE the second
    /// validation succeeds: the check is defeated, and only a guest that
    /// never validates a page it holds (Linux's unaccepted bitmap) is safe.
    @Test func aSecondValidationSucceedsAfterTheHostsRMPUpdate() throws {
        let twice = try run("accept 0x0+16 4k\naccept 0x0+16 4k\n")
        #expect(twice.guestFailure?.contains("PVALIDATE") == true, "\(twice.outcomeString)")
        let r = try run("accept 0x0+16 4k\nassign 0x0+16\naccept 0x0+16 4k\naccess 0x0+16\n")
        #expect(r.guestFailure == nil && r.vm.isValidated(frames(0, 16)))
    }

    /// `rmp-shared`: the host takes validated pages back (hypervisor-owned,
    /// NPT zapped, attributes still private). The guest's next access faults
    /// the page in again, `sev_gmem_prepare()` assigns it afresh, not
    /// validated: #VC 0x404. A 2M entry covered in part is PSMASHed: the
    /// rest of it stays validated and is mapped again at 4K.
    @Test func pagesTakenBackAreNotValidatedWhenTheGuestComesBack() throws {
        let r = try run("accept 0x0+512 linux\nrmp-shared 0x0+16\n", backing: "hugetlb-2m")
        #expect(r.guestFailure == nil)
        #expect(r.vm.stats[.hostMadeShared4K] == 16 && r.vm.stats[.hostPsmash] == 1)
        #expect(!r.vm.rmpEntry(GuestFrameNumber(3)).assigned && r.vm.attributes.isPrivate(GuestFrameNumber(3)))
        #expect(r.vm.checkInvariants().isEmpty && r.vm.warnings.isEmpty)
        try r.execute(.access(frames(0x20, 4)), line: 90)
        #expect(r.guestFailure == nil && r.vm.npt.value(at: GuestFrameNumber(0x20)) == .private4K)
        try r.execute(.access(frames(3, 1)), line: 91)
        #expect(r.guestFailure?.contains("0x404") == true, "\(r.outcomeString)")
        #expect(r.vm.rmpEntry(GuestFrameNumber(3)).assigned && r.vm.checkInvariants().isEmpty && r.vm.warnings.isEmpty)
    }

    /// `assign` over part of a 2M entry PSHMASHes it and zaps its 2M leaf
    /// first (no 2M leaf over 4K entries); the pages outside the range stay
    /// validated. Over a whole 2M entry: one 2M RMPUPDATE.
    @Test func assignSplitsA2MEntryItCoversInPart() throws {
        let r = try run("accept 0x0+1024 linux\nassign 0x0+16\nassign 0x200+512\n", backing: "hugetlb-2m")
        #expect(r.vm.stats[.hostPsmash] == 1 && r.vm.stats[.hostAssigned4K] == 16 && r.vm.stats[.hostAssigned2M] == 1)
        #expect(!r.vm.rmpEntry(GuestFrameNumber(15)).validated && r.vm.rmpEntry(GuestFrameNumber(16)).validated)
        #expect(r.vm.rmpEntry(GuestFrameNumber(0x200)).pageSize2M && !r.vm.rmpEntry(GuestFrameNumber(0x3ff)).validated)
        #expect(r.vm.checkInvariants().isEmpty && r.vm.warnings.isEmpty)
    }

    /// `finalize` on the SNP host is KVM_SEV_SNP_LAUNCH_FINISH: each vCPU's
    /// VMSA page guest-owned, pre-faulting allowed, and no SNP_LAUNCH_UPDATE
    /// or second LAUNCH_FINISH after it; the report says so.
    @Test func finalizeIsLaunchFinish() throws {
        let none = try run("build 0x0+4\n", vcpus: 3)
        #expect(none.vm.vmsaPages == 0 && !none.vm.launchFinished && !none.text(checked: false).contains("Launch finished"))
        let r = try run("build 0x0+4\nfinalize\n", vcpus: 3)
        #expect(r.vm.vmsaPages == 3 && r.vm.vmsaEntries == 3 && r.vm.launchFinished)
        #expect(r.text(checked: false).contains("Launch finished (KVM_SEV_SNP_LAUNCH_FINISH): 3 VMSA pages"))
        #expect(throws: CocomemError.self) { _ = try self.run("finalize\nbuild 0x0+4\n") }
        #expect(throws: CocomemError.self) { _ = try self.run("finalize\nfinalize\n") }
    }

    /// KVM_PRE_FAULT_MEMORY on conversion to private: refused before
    /// LAUNCH_FINISH (`pre_fault_allowed`), after it the pages are mapped and
    /// prepared with no nested page fault, and the guest's PVALIDATEs take none.
    @Test func prefaultNeedsLaunchFinishAndRemovesTheFaults() throws {
        for finalize in [false, true] {
            let s = try HostScenario.parse("td platform=snp vcpus=1\nslot id=1 base=0 pages=2048 backing=buddy\n"
                                           + (finalize ? "finalize\n" : "") + "accept 0x0+1024 linux\n")
            let r = try SNPHostRun(s, calibration: try Calibration.builtIn(), log: false)
            r.vm.prefaultOnPSC = true
            try r.run()
            #expect(r.guestFailure == nil && r.vm.isValidated(frames(0, 1024)) && r.vm.checkInvariants().isEmpty)
            if finalize {
                #expect(r.vm.stats[.prefaultPages4K] == 1024 && r.vm.stats[.npfPrivate4K] == 0 && r.vm.stats[.prefaultRefused] == 0)
            } else {
                #expect(r.vm.stats[.prefaultRefused] > 0 && r.vm.stats[.npfPrivate4K] == 1024)
            }
        }
    }

    /// The host trace on host runs: a skipped conversion is answered `ok`
    /// and shows as KVM_EXIT_MEMORY_FAULT exits at the guest's PVALIDATEs; a
    /// header going backward is answered `backward`.
    @Test func theTraceRecordsThePageStateChangesAnswers() throws {
        let s = try HostScenario.parse("td platform=snp vcpus=1\nslot id=1 base=0 pages=2048 backing=buddy\n"
                                       + "accept 0x0+16 linux\nconvert 0x0+16 shared\npsc-skip 0x0+16\nconvert 0x0+16 private\n"
                                       + "psc-backward 0x200+512\naccept 0x200+512 linux\n")
        let r = try SNPHostRun(s, calibration: try Calibration.builtIn(), log: false)
        r.vm.traceHost(costs: CostTable(try Calibration.builtIn()))
        try r.run()
        let t = try #require(r.vm.hostTrace)
        #expect(t.exits(.memoryFault) == 16 && t.exits(.pscShared) == 1)
        #expect(t.records.contains { $0.kind == .pscPrivate && $0.answer == "backward" && $0.frames == frames(0x200, 512) })
        #expect(t.records.filter { $0.kind == .pscPrivate && $0.frames == frames(0, 16) }.map(\.answer) == ["ok", "ok"])
        #expect(r.guestFailure?.contains("going backward") == true)
    }
}
