import MemoryModel
import TDXModule
import Testing

/// The order and conditions of the module's checks, as intel/tdx-module
/// (TDX_1.5.01, `src/vmm_dispatcher/api_calls/`) has them (issue 18 §1).
@Suite struct ModuleCheckOrderTests {
    /// A TD still being built (OP_STATE_INITIALIZED), its upper tables present.
    func buildingTD(_ f: TDXModuleFeatures = TDXModuleFeatures()) -> TrustDomain {
        let td = TrustDomain(features: f, vcpus: 1)
        #expect(td.septAdd(gfn: GFN(0), entryLevel: 4, pageHFN: HFN(1 << 30)) == .success)
        #expect(td.septAdd(gfn: GFN(0), entryLevel: 3, pageHFN: HFN(1 << 30 | 1)) == .success)
        return td
    }

    /// `tdh_mem_range_unblock()` checks TLB tracking only when
    /// `sept_state_is_tlb_tracking_required(entry) &&
    /// op_state_is_tlb_tracking_required(op_state)`; `state_flags_lookup`
    /// has tlb_tracking_required = 0 for OP_STATE_INITIALIZED (the build
    /// phase), so there a blocked entry is unblocked without a TRACK.
    @Test func unblockChecksTrackingOnlyWhenTheTDRuns() {
        let td = buildingTD()
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.rangeUnblock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.entry(gfn: GFN(0), level: .size2M).state == .pending)
        // Runnable (OP_STATE_RUNNABLE: tlb_tracking_required = 1): TRACK first.
        let run = runnableTD()
        #expect(run.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(run.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(run.rangeUnblock(gfn: GFN(0), level: .size2M) == .tlbTrackingNotDone)
    }

    /// `tdh_mem_page_demote()`: the walk and the host-side entry lock, then
    /// the state (`sept_state_is_seamcall_leaf_allowed`), then blocked and
    /// tracked, and only then (step 4, before `pamt_demote()`) the pending
    /// interrupt. An interrupt does not hide a wrong state, and the
    /// interrupt stays pending for the next call.
    @Test func demoteChecksStateBlockedAndTrackedBeforeThePendingInterrupt() {
        let td = runnableTD(.legacy)
        td.raiseHostInterrupt()
        // FREE entry: not a leaf.
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .eptEntryStateIncorrect)
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .gpaRangeNotBlocked)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .tlbTrackingNotDone)
        #expect(td.track() == .success); td.kickAll()
        // All checks passed: now the interrupt is seen.
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .interruptedRestartable)
        #expect(td.entry(gfn: GFN(0), level: .size2M).state == .pendingBlocked)
        #expect(td.demote(gfn: GFN(0), level: .size2M, pageHFN: HFN(9), pamtPagesGiven: false) == .success)
    }

    /// `tdh_mem_page_promote()` step 3: after the state, blocked, tracked
    /// and merge checks (`is_sept_page_valid_for_merge()`), a pending host
    /// interrupt gives TDX_INTERRUPTED_RESTARTABLE with nothing merged. The
    /// check is unconditional in the module source; TDX_FEATURES0 bit 51 is
    /// documented for DEMOTE only, so it applies to every module version here.
    @Test func promoteChecksThePendingInterruptLast() {
        for f in [TDXModuleFeatures(), .legacy] {
            let td = runnableTD(f)
            #expect(td.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(9)) == .success)
            for g in 0..<512 as Range<UInt64> { #expect(td.pageAug(gfn: GFN(g), level: .size4K, hfn: HFN(512 + g)) == .success) }
            td.raiseHostInterrupt()
            #expect(td.promote(gfn: GFN(0), level: .size2M) == .gpaRangeNotBlocked)
            #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
            #expect(td.track() == .success); td.kickAll()
            #expect(td.promote(gfn: GFN(0), level: .size2M) == .interruptedRestartable)
            #expect(td.entry(gfn: GFN(0), level: .size2M).state == .nlBlocked)
            #expect(td.promote(gfn: GFN(0), level: .size2M) == .success)
            #expect(td.entry(gfn: GFN(0), level: .size2M) == SEPTEntry(.pending, mapping: GFN(0), to: HFN(512)))
            // Children that cannot merge are reported before the interrupt.
            let bad = runnableTD(f)
            #expect(bad.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(9)) == .success)
            #expect(bad.pageAug(gfn: GFN(0), level: .size4K, hfn: HFN(512)) == .success)
            #expect(bad.rangeBlock(gfn: GFN(0), level: .size2M) == .success)
            #expect(bad.track() == .success); bad.kickAll()
            bad.raiseHostInterrupt()
            #expect(bad.promote(gfn: GFN(0), level: .size2M) == .eptInvalidPromoteConditions)
        }
    }
}
