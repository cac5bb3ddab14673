import CoCoGuest
import CostModel
@testable import KVM
import MemoryModel
import SNP
@testable import Simulation
import Testing

/// guest_memfd in-place conversion on the SEV-SNP host (issue 18 §2 on the
/// §4 host, `policy=in-place` on a `platform=snp` td line).
@Suite struct SNPInPlaceTests {
    func run(_ commands: String, inPlace: Bool, backing: String = "hugetlb-2m", pages: String = "2048") throws -> SNPHostRun {
        let s = try HostScenario.parse("td platform=snp vcpus=1\(inPlace ? " policy=in-place" : "")\nslot id=1 base=0 pages=\(pages) backing=\(backing)\n" + commands)
        let r = try SNPHostRun(s, calibration: try Calibration.builtIn(), log: true)
        try r.run()
        return r
    }

    /// To shared in place: no folio split, no discard; the page stays in
    /// guest_memfd with its RMP entry hypervisor-owned, the guest's shared
    /// access uses that same page, and the VMM holds no memory of its own.
    /// VM-wide: the folio is split, the page discarded, and the shared
    /// access is backed by the VMM.
    @Test func sharedPagesStayInGuestMemfd() throws {
        let cmds = "accept 0x0+512 linux\nconvert 0x7+1 shared\naccess 0x7+1\n"
        let ip = try run(cmds, inPlace: true), vw = try run(cmds, inPlace: false)
        #expect(ip.guestFailure == nil && vw.guestFailure == nil)
        #expect(ip.vm.stats[.folioSplits] == 0 && vw.vm.stats[.folioSplits] == 1)
        #expect(ip.vm.gmem.folioAllocated.value(at: GuestFrameNumber(7)) && !vw.vm.gmem.folioAllocated.value(at: GuestFrameNumber(7)))
        #expect(!ip.vm.rmpEntry(GuestFrameNumber(7)).assigned && ip.vm.rmpEntry(GuestFrameNumber(8)).validated)
        #expect(ip.vm.vmmSharedPages == 0 && vw.vm.vmmSharedPages == 1)
        #expect(ip.vm.inPlaceSharedPages == 1 && ip.vm.checkInvariants().isEmpty && vw.vm.checkInvariants().isEmpty)
        // Back to private: the page is prepared again at the fault and validated.
        try ip.execute(.convert(GuestFrameNumber(7)..<GuestFrameNumber(8), toPrivate: true), line: 9)
        #expect(ip.guestFailure == nil && ip.vm.isValidated(GuestFrameNumber(0)..<GuestFrameNumber(512)) && ip.vm.checkInvariants().isEmpty)
    }

    /// The VMM touching private memory: in place, guest_memfd's fault
    /// handler gives it SIGBUS and nothing is allocated; VM-wide, its own
    /// memory is populated behind the private GPAs: backed twice.
    @Test func theVMMTouchingPrivateMemory() throws {
        let cmds = "accept 0x0+1024 linux\nhostmap 0x0+768\n"
        let ip = try run(cmds, inPlace: true), vw = try run(cmds, inPlace: false)
        #expect(ip.vm.stats[.inPlaceSIGBUS] == 1 && ip.vm.vmmSharedPages == 0 && ip.vm.doubleBackedPages == 0)
        #expect(vw.vm.stats[.inPlaceSIGBUS] == 0 && vw.vm.vmmSharedPages == 768 && vw.vm.doubleBackedPages == 768)
        #expect(vw.vm.hostCommittedPages == ip.vm.hostCommittedPages + 768)
    }

    /// A pinned shared page refuses conversion to private (-EAGAIN): the PSC
    /// fails and the guest terminates itself; after `unpin` it converts. A
    /// pin of a private page is refused.
    @Test func aPinnedSharedPageRefusesConversion() throws {
        let pinned = try run("accept 0x0+16 linux\nconvert 0x3+1 shared\npin 0x3+1\nconvert 0x3+1 private\n", inPlace: true)
        #expect(pinned.vm.stats[.inPlaceRefusedForReferences] == 1)
        #expect(pinned.guestFailure?.contains("GHCB_TERM_PSC") == true && !pinned.vm.attributes.isPrivate(GuestFrameNumber(3)))
        let unpinned = try run("accept 0x0+16 linux\nconvert 0x3+1 shared\npin 0x3+1\nunpin 0x3+1\nconvert 0x3+1 private\n", inPlace: true)
        #expect(unpinned.guestFailure == nil && unpinned.vm.isValidated(GuestFrameNumber(0)..<GuestFrameNumber(16)))
        let privatePin = try run("accept 0x0+16 linux\npin 0x3+1\n", inPlace: true)
        #expect(privatePin.vm.stats[.inPlacePinsRefused] == 1 && !privatePin.vm.gmem.hasHostRefs(GuestFrameNumber(3)..<GuestFrameNumber(4)))
        #expect(throws: (any Error).self) { try HostScenario.parse("td platform=snp vcpus=1 policy=zap-first\nslot id=1 base=0 pages=512\n") }
        #expect(throws: (any Error).self) { try HostScenario.parse("td platform=snp vcpus=1\nslot id=1 base=0 pages=512\npin 0x0+1\n") }
    }

    /// The host memory in-place saves, AMDESE/AMDSEV issue 250's shape: a
    /// 4 GiB guest, all validated, whose VMM (a vhost-user backend walking
    /// guest memory) touches 3 GiB of GPAs: 7 GiB with VM-wide attributes,
    /// 4 GiB in place (docs/HOST.md).
    @Test func issue250InPlace() throws {
        let cmds = "accept 0x0+0x100000 linux\nhostmap 0x0+0xc0000\n"
        let ip = try run(cmds, inPlace: true, pages: "0x100000"), vw = try run(cmds, inPlace: false, pages: "0x100000")
        #expect(ip.vm.hostCommittedPages == 0x100000 && vw.vm.hostCommittedPages == 0x1c0000)
    }
}
