import CoCoGuest
import CostModel
@testable import KVM
import MemoryModel
import SNP
@testable import Simulation
import Testing

/// A host that answers an SEV-SNP guest's page-state changes wrongly (issue
/// 18 §5): what the guest observes, which guest code notices, and what goes
/// unnoticed. Each test fails without the behaviour it names.
@Suite struct SNPAdversaryTests {
    func run(_ commands: String, backing: String = "buddy") throws -> SNPHostRun {
        let s = try HostScenario.parse("td platform=snp vcpus=1\nslot id=1 base=0 pages=2048 backing=\(backing)\n" + commands)
        let r = try SNPHostRun(s, calibration: try Calibration.builtIn(), log: true)
        try r.run()
        return r
    }

    /// `psc-skip` on a conversion to private: KVM reports success, nothing
    /// changed; the guest's PVALIDATE (C-bit set) meets shared attributes, a
    /// KVM_EXIT_MEMORY_FAULT on which the VMM converts, so the page is
    /// prepared and validated as asked. Linux notices nothing.
    @Test func aSkippedConversionToPrivateIsDoneAtTheFault() throws {
        let honest = try run("accept 0x0+16 linux\nconvert 0x0+16 shared\nconvert 0x0+16 private\n")
        let lied = try run("accept 0x0+16 linux\nconvert 0x0+16 shared\npsc-skip 0x0+16\nconvert 0x0+16 private\n")
        #expect(honest.guestFailure == nil && lied.guestFailure == nil)
        #expect(honest.vm.stats[.pscLies] == 0 && lied.vm.stats[.pscLies] == 1)
        #expect(honest.vm.stats[.memoryFaultExits] == 0 && lied.vm.stats[.memoryFaultExits] == 16)
        #expect(lied.vm.attributes.allPrivate(GuestFrameNumber(0)..<GuestFrameNumber(16)))
        #expect(lied.vm.isValidated(GuestFrameNumber(0)..<GuestFrameNumber(16)))
        #expect(lied.vm.checkInvariants().isEmpty && lied.vm.warnings.isEmpty)
    }

    /// `psc-skip` on a conversion to shared: the guest rescinded validation
    /// and believes the pages shared; the host's attributes still say
    /// private. Its next access (C-bit clear) is a KVM_EXIT_MEMORY_FAULT and
    /// the page is converted then, one page per access: unnoticed.
    @Test func aSkippedConversionToSharedIsDoneAtTheNextAccess() throws {
        let r = try run("accept 0x0+16 linux\npsc-skip 0x0+16\nconvert 0x0+16 shared\n")
        #expect(r.guestFailure == nil && r.vm.attributes.allPrivate(GuestFrameNumber(0)..<GuestFrameNumber(16)))
        #expect(r.guest.madeShared.allSatisfy(in: GuestFrameNumber(0)..<GuestFrameNumber(16)) { $0 })
        let before = r.vm.stats[.memoryFaultExits]
        try r.execute(.access(GuestFrameNumber(0)..<GuestFrameNumber(4)), line: 99)
        #expect(r.guestFailure == nil && r.vm.stats[.memoryFaultExits] == before + 4)
        #expect(!r.vm.attributes.isPrivate(GuestFrameNumber(3)) && r.vm.attributes.isPrivate(GuestFrameNumber(4)))
        #expect(!r.vm.rmpEntry(GuestFrameNumber(3)).assigned && r.vm.checkInvariants().isEmpty)
    }

    /// `psc-invert`: converting the other way and reporting success is
    /// undone the same way (the guest's PVALIDATE faults the pages back).
    @Test func anInvertedConversionIsUndoneAtTheFault() throws {
        let r = try run("psc-invert 0x0+512\naccept 0x0+512 linux\n", backing: "hugetlb-2m")
        #expect(r.guestFailure == nil && r.vm.stats[.pscLies] == 1)
        #expect(r.vm.stats[.memoryFaultExits] > 0 && r.vm.isValidated(GuestFrameNumber(0)..<GuestFrameNumber(512)))
        #expect(r.vm.checkInvariants().isEmpty)
    }

    /// `psc-backward`: the header KVM writes back has cur_entry below the
    /// guest's; Linux's `vmgexit_psc()` WARNs and `__set_pages_state()`
    /// terminates the guest (GHCB_TERM_PSC). The one lie Linux detects.
    @Test func aHeaderGoingBackwardTerminatesTheGuest() throws {
        let r = try run("psc-backward 0x100+1\naccept 0x0+1024 linux\n")
        let why = try #require(r.guestFailure)
        #expect(why.contains("PSC processing going backward") && why.contains("GHCB_TERM_PSC"))
        // psc-honest restores the VMM.
        let h = try run("psc-backward 0x100+1\npsc-honest 0x0+2048\naccept 0x0+1024 linux\n")
        #expect(h.guestFailure == nil)
    }

    /// The guest's accesses use the C-bit it chose, not the host's
    /// attributes: after the VMM converts validated pages to shared on its
    /// own (`attributes`), the guest's next private access faults them back
    /// in unvalidated and takes #VC 0x404 (SVM_EXIT_NOT_VALIDATED).
    @Test func theGuestsAccessUsesItsOwnCBit() throws {
        let r = try run("accept 0x0+16 linux\nattributes 0x0+16 shared\naccess 0x0+1\n")
        let why = try #require(r.guestFailure)
        #expect(why.contains("0x404"))
    }

    /// The lies are SNP host commands: a TDX host scenario refuses them.
    @Test func theLiesAreSNPCommands() {
        #expect(throws: (any Error).self) { try HostScenario.parse("td vcpus=1\nslot id=1 base=0 pages=512\npsc-skip 0x0+1\n") }
        #expect(throws: (any Error).self) { try HostScenario.parse("td platform=snp vcpus=1\nslot id=1 base=0 pages=512\npsc-skip 0x0+1 extra\n") }
    }
}
