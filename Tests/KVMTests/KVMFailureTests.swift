import CostModel
@testable import KVM
import MemoryModel
import Simulation
import TDXModule
import Testing

/// KVM's reactions to SEAMCALL failures, as kvm-x86's `arch/x86/kvm/vmx/tdx.c`
/// and the DPAMT / huge-page series have them (issue 18 §1). Where a test
/// needs a module state KVM would never create, it makes the SEAMCALL behind
/// KVM's back through the module's public API: the "KVM and/or TDX-Module
/// bugs" the `TDX_BUG_ON()` assertions are there for.
@Suite struct KVMFailureTests {
    func bugged(_ vm: TDXVM) -> String? {
        if case .vmBugged(let why) = vm.outcome { return why }
        return nil
    }

    /// `tdx_sept_link_private_spt()`: an error other than BUSY is TDX_BUG_ON_2.
    @Test func septAddErrorBugsTheVM() throws {
        let vm = try hugeVM()
        #expect(vm.module.septAdd(gfn: GFN(0), entryLevel: 4, pageHFN: HostFrameNumber(1 << 39)) == .success)
        _ = vm.handleEPTViolation(gfn: GFN(0), acceptLevel: .size2M)
        let why = try #require(bugged(vm), "outcome \(vm.outcome)")
        #expect(why.contains("TDH.MEM.SEPT.ADD") && why.contains("TDX_EPT_ENTRY_STATE_INCORRECT"))
    }

    /// `tdx_mem_page_aug()`: an error other than BUSY bugs the VM.
    @Test func augErrorOtherThanBusyBugsTheVM() throws {
        let vm = try hugeVM()
        _ = vm.handleEPTViolation(gfn: GFN(0), acceptLevel: .size4K)
        #expect(vm.outcome == .ok && vm.pages4K == 1)
        #expect(vm.module.pageAug(gfn: GFN(1), level: .size4K, hfn: vm.hfn(GFN(1))) == .success)
        _ = vm.handleEPTViolation(gfn: GFN(1), acceptLevel: .size4K)
        let why = try #require(bugged(vm), "outcome \(vm.outcome)")
        #expect(why.contains("TDH.MEM.PAGE.AUG") && why.contains("TDX_EPT_ENTRY_STATE_INCORRECT"))
        // tdx_pamt_put() dropped the reference the failed AUG had taken.
        #expect(vm.tdx.pamtRefcount.value(at: vm.hfn(GFN(0)).region2M) == 1)
    }

    /// TDX_OPERAND_BUSY from AUG is -EBUSY: RET_PF_RETRY, and the next
    /// fault maps the page.
    @Test func busyAugIsRetriedByTheFaultPath() throws {
        let run = try HostRun(try HostScenario.parse("""
            td host=tdx-huge
            slot id=1 base=0 pages=4096
            finalize
            inject aug-busy
            accept 0x5+1 4k
            """), calibration: try Calibration.builtIn(), log: false)
        try run.run()
        let vm = run.vm
        #expect(vm.outcome == .ok && vm.pages4K == 1)
        #expect(vm.module.calls[leaf: .memPageAug, status: .operandBusy] == 1)
        #expect(vm.module.calls[leaf: .memPageAug, status: .success] == 1)
        #expect(vm.counters[.faultRetries] == 1)
        #expect(vm.checkInvariants().isEmpty)
    }

    /// `tdx_pamt_get()` (DPAMT v4 P08): TDX_HPA_RANGE_NOT_FREE means the
    /// PAMT_4K is still installed (a concurrent `tdx_pamt_put()` took the
    /// refcount to 0 and has not removed it yet): refcount 1, success.
    @Test func pamtAddRangeNotFreeMeansAnotherThreadWon() throws {
        let vm = try hugeVM()
        let range = vm.hfn(GFN(0)).region2M
        #expect(vm.module.pamtAdd(range2M: range) == .success)
        _ = vm.handleEPTViolation(gfn: GFN(0), acceptLevel: .size4K)
        #expect(vm.outcome == .ok && vm.pages4K == 1)
        #expect(vm.module.calls[leaf: .phymemPamtAdd, status: .hpaRangeNotFree] == 1)
        #expect(vm.tdx.pamtRefcount.value(at: range) == 1)
        #expect(vm.checkInvariants().isEmpty)
    }

    /// `tdx_sept_remove_private_spte()`: TDX_BUG_ON_2 on any non-zero BLOCK
    /// status, the GPA_RANGE_ALREADY_BLOCKED warning included.
    @Test func zapBlockWarningBugsTheVM() throws {
        let vm = try hugeVM()
        _ = vm.handleEPTViolation(gfn: GFN(0), acceptLevel: .size2M)
        #expect(vm.outcome == .ok && vm.pages2M == 1)
        #expect(vm.module.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        _ = vm.punchHole(GFN(0)..<GFN(512))
        let why = try #require(bugged(vm), "outcome \(vm.outcome)")
        #expect(why.contains("TDH.MEM.RANGE.BLOCK") && why.contains("TDX_GPA_RANGE_ALREADY_BLOCKED"))
        #expect(vm.module.calls[leaf: .memPageRemove, status: .success] == 0)
    }

    /// `tdh_mem_page_demote()`: the guest range's refcount is set with
    /// `WARN_ON_ONCE(atomic_cmpxchg_release(refcount, 0, PTRS_PER_PMD))`: a
    /// refcount that is not 0 is warned about and kept.
    @Test func demoteSetsTheRefcountOnlyFromZero() throws {
        let vm = try hugeVM()
        vm.logEnabled = true
        _ = vm.handleEPTViolation(gfn: GFN(0), acceptLevel: .size2M)
        let range = vm.hfn(GFN(0)).region2M
        vm.tdx.setRefcount(range.only, 3)
        _ = vm.handleEPTViolation(gfn: GFN(5), acceptLevel: .size4K)
        #expect(vm.outcome == .ok && vm.module.calls[leaf: .memPageDemote, status: .success] == 1)
        #expect(vm.tdx.pamtRefcount.value(at: range) == 3)
        #expect(vm.log.contains { $0.contains("WARN: tdh_mem_page_demote") })
        // From 0 it becomes 512.
        let fresh = try hugeVM()
        _ = fresh.handleEPTViolation(gfn: GFN(0), acceptLevel: .size2M)
        _ = fresh.handleEPTViolation(gfn: GFN(5), acceptLevel: .size4K)
        #expect(fresh.tdx.pamtRefcount.value(at: fresh.hfn(GFN(0)).region2M) == 512)
    }

    /// DPAMT: `tdh_mem_page_demote()` takes a PAMT pair from the split cache
    /// on every call and frees it when the SEAMCALL fails. When the split's
    /// new S-EPT page opens a 2M host range, its own pair came from the same
    /// 4-page cache, so the retry after BUSY finds the cache empty:
    /// TDX_SW_ERROR, TDX_BUG_ON. With contiguous pages that is the split
    /// whose S-EPT page is the allocator's 513th: after the 2 vCPUs' 19
    /// control pages, the PDPT, the PD and 491 4K tables.
    @Test func demoteRetriedUnderDPAMTFindsTheCacheEmpty() throws {
        var o = KVMOptions(); o.septPlacement = .contiguous
        let vm = try TDXVM(options: o, features: TDXModuleFeatures(), vcpus: 2,
                           slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 512 * 512, backing: .hugetlb2M)])
        vm.finalize()
        // The PDPT and PD, then 491 4K tables: with the control pages the
        // allocator is at 512 pages, one full 2M range.
        for c in 0..<491 as Range<UInt64> { _ = vm.handleEPTViolation(gfn: GFN(c * 512), acceptLevel: .size4K) }
        #expect(vm.outcome == .ok && vm.septPool == 493 && vm.tdx.allocatorTaken == 512)
        _ = vm.handleEPTViolation(gfn: GFN(491 * 512), acceptLevel: .size2M)
        vm.faults.inject(.demoteBusy)
        _ = vm.handleEPTViolation(gfn: GFN(491 * 512 + 5), acceptLevel: .size4K)
        let why = try #require(bugged(vm), "outcome \(vm.outcome)")
        #expect(why.contains("TDH.MEM.PAGE.DEMOTE") && why.contains("TDX_SW_ERROR"))
        #expect(vm.module.calls[leaf: .memPageDemote, status: .operandBusy] == 1)
        #expect(vm.module.calls[leaf: .memPageDemote, status: .success] == 0)
        #expect(vm.splitCache == 0)
        // One split earlier (the S-EPT page opens no range) the retry succeeds.
        let ok = try hugeVM()
        _ = ok.handleEPTViolation(gfn: GFN(0), acceptLevel: .size2M)
        ok.faults.inject(.demoteBusy)
        _ = ok.handleEPTViolation(gfn: GFN(5), acceptLevel: .size4K)
        #expect(ok.outcome == .ok && ok.module.calls[leaf: .memPageDemote, status: .success] == 1)
    }

    /// v3 07/24 "KVM: x86/tdp_mmu: Introduce split_external_spte() under
    /// write mmu_lock": `tdp_mmu_set_spte()` writes the mirror SPTE (the new
    /// 4K table, its 512 children present) and calls `handle_changed_spte()`
    /// before `split_external_spte()`, whose return value it ignores. So
    /// after a failed split the mirror already holds the 4K table while the
    /// S-EPT keeps the blocked 2M leaf; the VM is bugged.
    @Test func afterAFailedSplitTheMirrorAlreadyHoldsThe4KTable() throws {
        let vm = try hugeVM { $0.septPlacement = .scattered }
        _ = vm.handleEPTViolation(gfn: GFN(0), acceptLevel: .size2M)
        vm.faults.inject(.demoteBusy)
        _ = vm.handleEPTViolation(gfn: GFN(5), acceptLevel: .size4K)
        let why = try #require(bugged(vm), "outcome \(vm.outcome)")
        #expect(why.contains("TDX_SW_ERROR"))
        #expect(vm.mmu.mirror2M.value(at: GFN(0).region2M) == .table)
        #expect(vm.mmu.mirror4K.allSatisfy(in: GFN(0).region2M.frames) { $0 })
        #expect(vm.module.entry(gfn: GFN(0), level: .size2M).state == .pendingBlocked)
        // A split that fails before the hook (ENOMEM topping up the cache)
        // leaves the mirror's 2M leaf.
        let nomem = try hugeVM()
        _ = nomem.handleEPTViolation(gfn: GFN(0), acceptLevel: .size2M)
        nomem.faults.inject(.splitCacheTopupNoMem)
        _ = nomem.handleEPTViolation(gfn: GFN(5), acceptLevel: .size4K)
        #expect(bugged(nomem) == nil && nomem.mmu.mirror2M.value(at: GFN(0).region2M) == .leaf)
    }

    /// Placement: scattered S-EPT pages need a PAMT.ADD (and 2 PAMT pages) each.
    @Test func scatteredSEPTPagesEachNeedTheirPAMT() throws {
        func run(_ p: SEPTPlacement) throws -> TDXVM {
            var o = KVMOptions(); o.septPlacement = p
            let vm = try TDXVM(options: o, features: TDXModuleFeatures(), vcpus: 1,
                               slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 8 * 512, backing: .hugetlb2M)])
            vm.finalize()
            for c in 0..<8 as Range<UInt64> { _ = vm.handleEPTViolation(gfn: GFN(c * 512), acceptLevel: .size4K) }
            return vm
        }
        let contiguous = try run(.contiguous), scattered = try run(.scattered)
        // PDPT, PD and 8 4K tables; 8 guest ranges with 4K pages; before
        // them the 13 control pages (TDR, 6 TDCS, TDVPR and 5 TDCX).
        #expect(contiguous.septPool == 10 && scattered.septPool == 10)
        #expect(contiguous.tdx.controlPages == 13 && scattered.tdx.controlPages == 13)
        #expect(contiguous.module.calls[leaf: .phymemPamtAdd, status: .success] == 1 + 8)
        #expect(scattered.module.calls[leaf: .phymemPamtAdd, status: .success] == 13 + 10 + 8)
        #expect(scattered.pamtPagesAllocated - contiguous.pamtPagesAllocated == 2 * 22)
        #expect(scattered.checkInvariants().isEmpty && contiguous.checkInvariants().isEmpty)
    }
}
