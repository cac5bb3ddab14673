import CostModel
@testable import KVM
import MemoryModel
import Simulation
import TDXModule
import Testing

/// The race behind host priority and the interruptible 2M ACCEPT, driven
/// through the host command language (`contend`, `inject accept-interrupt`),
/// with the Linux guest's and TDVF's reactions (issue 18 §1).
@Suite struct HostPriorityRaceTests {
    func run(_ commands: String, td: String = "td vcpus=2 host=tdx-huge") throws -> HostRun {
        let r = try HostRun(try HostScenario.parse(td + "\nslot id=1 base=0 pages=2048 backing=hugetlb-2m\nfinalize\n" + commands),
                            calibration: try Calibration.builtIn(), log: true)
        try r.run()
        return r
    }

    /// A fault's AUG at 2M meets vCPU 1's ACCEPT: BUSY, host priority on the
    /// 2M entry, RET_PF_RETRY with nothing mapped.
    @Test func contendLeavesTheEntryWithHostPriorityAndNothingMapped() throws {
        let r = try run("contend 0x200+512\n")
        #expect(r.vm.module.hostPriority(gfn: GFN(0x200), level: .size2M))
        #expect(!r.vm.isMapped(GFN(0x200)))
        #expect(r.vm.module.calls[leaf: .memPageAug, status: .operandBusy] == 1)
        #expect(r.vm.counters[.faultRetries] == 1)
        #expect(r.vm.log.contains { $0.contains("host priority set") })
        #expect(r.vm.checkInvariants().isEmpty)
    }

    /// Linux's `try_accept_one()` takes the guest-visible TDX_OPERAND_BUSY of
    /// the 2M ACCEPT as "try smaller": the 4K ACCEPTs exit (the walk stops at
    /// the FREE 2M entry), KVM honours the 4K accept level (SEPT.ADD takes the
    /// 2M entry's lock, clearing host priority) and maps 4K. The range that
    /// would have been one 2M page ends as 512 4K pages.
    @Test func linuxFallsBackTo4KAndTheRangeLosesIts2MMapping() throws {
        let raced = try run("contend 0x200+512\naccept 0x200+512 linux\n")
        #expect(raced.lastGuestFailure == nil)
        #expect(raced.vm.module.hostPriorityRefusals == 1)
        #expect(raced.vm.module.calls[leaf: .tdgMemPageAccept, status: .operandBusy] == 1)
        #expect(!raced.vm.module.hostPriority(gfn: GFN(0x200), level: .size2M))
        #expect(raced.vm.pages4K == 512 && raced.vm.pages2M == 0)
        #expect(raced.vm.isAccessible(GFN(0x200) ..< GFN(0x400)))
        let calm = try run("accept 0x200+512 linux\n")
        #expect(calm.vm.pages2M == 1 && calm.vm.pages4K == 0)
    }

    /// At 4K there is nothing smaller: `tdx_accept_memory()` returns false
    /// and the kernel panics ("TDX: Failed to accept memory"); TDVF's three
    /// BUSY retries all meet the same bit and `TdAcceptPages()` fails.
    @Test func a4KAcceptThatMeetsHostPriorityIsFatal() throws {
        // TDVF's 4K accept of 0x205 makes KVM map the 2M range at 4K (GUEST_INHIBIT).
        let pre = "accept 0x205+1 4k\ncontend 0x206+1\n"
        let linux = try run(pre + "accept 0x206+1 linux\n")
        #expect(linux.vm.module.calls[leaf: .memPageAug, status: .operandBusy] == 1)
        #expect(linux.lastGuestFailure == "TDX: Failed to accept memory at 0x0000000000206000")
        let tdvf = try run(pre + "accept 0x206+1 4k\n")
        #expect(tdvf.lastGuestFailure == "TDVF: TdAcceptPages failed at 0x0000000000206000")
        #expect(tdvf.vm.module.hostPriorityRefusals == 4)
        // The host's retry (the fault again: here KVM_PRE_FAULT_MEMORY's) takes the lock and clears the bit.
        let retried = try run(pre + "readd 0x206+1\naccept 0x206+1 4k\n")
        #expect(retried.lastGuestFailure == nil)
        #expect(!retried.vm.module.anyHostPriority(GFN(0x200) ..< GFN(0x400)))
    }

    /// `contend` needs two vCPUs and a range of at most one 2M page.
    @Test func contendIsCheckedWhenParsed() {
        #expect(throws: (any Error).self) { try HostScenario.parse("td vcpus=1\nslot id=1 base=0 pages=512\ncontend 0x5+1\n") }
        #expect(throws: (any Error).self) { try HostScenario.parse("td vcpus=2\nslot id=1 base=0 pages=2048\ncontend 0x0+513\n") }
        #expect(throws: (any Error).self) { try HostScenario.parse("td vcpus=2\nslot id=1 base=0 pages=512\ncontend 0x5+1 vcpu=0\n") }
        #expect(throws: (any Error).self) { try HostScenario.parse("td vcpus=2 platform=snp\nslot id=1 base=0 pages=512\ncontend 0x5+1\n") }
    }

    /// Each interrupt that stops a 2M ACCEPT costs a TD exit and re-entry
    /// (`tdx.accept.interrupt_exit`) and shows in the host log; the accept
    /// still ends in one success, with the same S-EPT state.
    @Test func interruptedAcceptsCostAnExitEachAndShowInTheLog() throws {
        let r = try run("inject accept-interrupt 3\naccept 0x200+512 2m\n")
        #expect(r.vm.module.acceptInterruptions == 3)
        #expect(r.vm.module.calls[leaf: .tdgMemPageAccept, status: .success] == 1)
        #expect(r.vm.log.filter { $0.contains("interrupt pending after chunk") }.count == 3)
        #expect(r.vm.log.contains { $0.contains("after chunk 3/512") })
        #expect(r.vm.pages2M == 1)
        let calm = try run("accept 0x200+512 2m\n")
        let costs = CostTable(try Calibration.builtIn())
        #expect(r.clock.counts[.tdxAcceptInterruptExit] == 3 && calm.clock.counts[.tdxAcceptInterruptExit] == 0)
        #expect(r.clock.vcpuPicoseconds[0] - calm.clock.vcpuPicoseconds[0] == 3 * costs.vcpuPicoseconds[Op.tdxAcceptInterruptExit.index])
        // A 4K accept does not consume the injected interrupt.
        let k4 = try run("inject accept-interrupt 1\naccept 0x205+1 4k\n")
        #expect(k4.vm.module.acceptInterruptions == 0)
        #expect(k4.vm.faults.isArmed(.acceptInterrupt))
    }
}
