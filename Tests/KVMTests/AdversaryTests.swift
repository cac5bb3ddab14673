import CostModel
@testable import KVM
import MemoryModel
import Simulation
import TDXModule
import Testing

/// The adversarial host's commands (issue 18 §5): each is a sequence of
/// SEAMCALLs the module accepts, and the guest sees what the module makes
/// of it.
@Suite struct AdversaryTests {
    func run(_ commands: String) throws -> HostRun {
        let r = try HostRun(try HostScenario.parse("td host=tdx sept-ve-disable=on\nslot id=1 base=0 pages=512\nfinalize\n" + commands),
                            calibration: try Calibration.builtIn(), log: true)
        try r.run()
        return r
    }

    func state(_ vm: TDXVM, _ g: UInt64) -> SEPTState {
        var s = SEPTState.free
        vm.module.forEach4KEntry(in: GFN(g).only) { _, e in s = e.state }
        return s
    }

    @Test func removeTakesTheAcceptedPageAwayThroughBlockTrackRemove() throws {
        let r = try run("accept 0x5+1 linux\nremove 0x5+1\n")
        #expect(state(r.vm, 5) == .free)
        #expect(!r.vm.isMapped(GFN(5)))
        #expect(r.vm.module.calls[leaf: .memPageRemove, status: .success] == 1)
        #expect(r.vm.module.calls[leaf: .memRangeBlock, status: .success] == 1)
        #expect(r.vm.checkInvariants().isEmpty)
    }

    @Test func readdLeavesThePagePendingAndTheGuestsNextTouchKillsTheTD() throws {
        let r = try run("accept 0x5+1 linux\nremove 0x5+1\nreadd 0x5+1\n")
        #expect(state(r.vm, 5) == .pending)
        let dead = try run("accept 0x5+1 linux\nremove 0x5+1\nreadd 0x5+1\naccess 0x5+1\n")
        #expect(dead.vm.outcome == .vmDead("Guest access before accepting 0x0000000000005000 on vCPU 0"))
    }

    @Test func reacceptingAfterReaddSucceedsOnAFreshPage() throws {
        let r = try run("accept 0x5+1 4k\nremap 0x5+1\naccept 0x5+1 4k\n")
        #expect(state(r.vm, 5) == .mapped)
        #expect(r.vm.module.calls[leaf: .tdgMemPageAccept, status: .success] == 2)
        #expect(r.vm.module.calls[leaf: .tdgMemPageAccept, status: .pageAlreadyAccepted] == 0)
    }

    @Test func linuxFailsOnAlreadyAcceptedWhereTDVFGoesOn() throws {
        let tdvf = try run("accept 0x5+1 4k\naccept 0x5+1 4k\n")
        #expect(tdvf.lastGuestFailure == nil)
        #expect(tdvf.vm.module.calls[leaf: .tdgMemPageAccept, status: .pageAlreadyAccepted] == 1)
        let linux = try run("accept 0x5+1 linux\naccept 0x5+1 linux\n")
        #expect(linux.lastGuestFailure == "TDX: Failed to accept memory at 0x0000000000005000")
    }

    @Test func aRefusedAUGNeverMapsThePage() throws {
        let r = try run("refuse-aug 0x5+1\naccept 0x5+1 linux\n")
        #expect(!r.vm.isMapped(GFN(5)))
        #expect(r.vm.module.calls[leaf: .memPageAug, status: .success] == 0)
        #expect(r.lastGuestFailure != nil)
        // Other pages are still backed.
        let ok = try run("refuse-aug 0x5+1\naccept 0x6+1 linux\n")
        #expect(ok.vm.isMapped(GFN(6)) && ok.lastGuestFailure == nil)
    }
}
