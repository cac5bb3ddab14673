import MemoryModel
import TDXModule
import Testing

/// TDH.MEM.PAGE.PROMOTE at 1G (TDX_1.5.01 `tdh_mem_page_promote()` with
/// level 2, LVL_PDPT: `verify_page_info_input(gpa, LVL_PD, LVL_PDPT)`), and
/// the teardown SEAMCALLs (issue 18 §1, §3).
@Suite struct PromoteTo1GTests {
    let g1 = PageLevel.size1G.pages

    /// A runnable TD whose first GiB is a PD of 512 2M leaves over the
    /// host range from `hostBase`, accepted if `accept`.
    func td(_ f: TDXModuleFeatures = TDXModuleFeatures(), hostBase: UInt64, accept: Bool = true) -> TrustDomain {
        let td = runnableTD(f)
        for c in 0..<512 as Range<UInt64> {
            #expect(td.pageAug(gfn: GFN(c * 512), level: .size2M, hfn: HFN(hostBase + c * 512)) == .success)
            if accept { #expect(td.accept(gfn: GFN(c * 512), level: .size2M) == .status(.success)) }
        }
        return td
    }

    func blockAndTrack(_ t: TrustDomain) {
        #expect(t.rangeBlock(gfn: GFN(0), level: .size1G) == .success)
        #expect(t.track() == .success); t.kickAll()
    }

    /// 512 accepted 2M leaves over a contiguous 1G-aligned host range merge
    /// into one MAPPED 1G leaf, after BLOCK and TRACK of the PDPT entry and
    /// with the pending interrupt checked last; the module has the 1G level
    /// without the 1G-mapping feature (TDX_1.5.01 has it). PENDING leaves
    /// merge into a PENDING 1G leaf.
    @Test func uniform2MLeavesMergeInto1G() {
        var with1G = TDXModuleFeatures(); with1G.privateMappings1G = true
        for f in [TDXModuleFeatures(), with1G] {
            let t = td(f, hostBase: 3 * g1)
            #expect(t.promote(gfn: GFN(512), level: .size1G) == .operandInvalid)  // not 1G-aligned
            #expect(t.promote(gfn: GFN(0), level: .size1G) == .gpaRangeNotBlocked)
            #expect(t.rangeBlock(gfn: GFN(0), level: .size1G) == .success)
            #expect(t.promote(gfn: GFN(0), level: .size1G) == .tlbTrackingNotDone)
            #expect(t.track() == .success); t.kickAll()
            t.raiseHostInterrupt()
            #expect(t.promote(gfn: GFN(0), level: .size1G) == .interruptedRestartable)
            #expect(t.entry(gfn: GFN(0), level: .size1G).state == .nlBlocked)
            #expect(t.promote(gfn: GFN(0), level: .size1G) == .success)
            #expect(t.entry(gfn: GFN(0), level: .size1G) == SEPTEntry(.mapped, mapping: GFN(0), to: HFN(3 * g1)))
            #expect(t.entry(gfn: GFN(512), level: .size2M) == .free)
            #expect(t.accept(gfn: GFN(512), level: .size2M) == .status(.pageAlreadyAccepted))
            #expect(t.isAccessible(Range(raw: 0..<g1)))
        }
        let pending = td(hostBase: g1, accept: false)
        blockAndTrack(pending)
        #expect(pending.promote(gfn: GFN(0), level: .size1G) == .success)
        #expect(pending.entry(gfn: GFN(0), level: .size1G).state == .pending)
    }

    /// `is_sept_page_valid_for_merge()`: children not alike (one PENDING
    /// among MAPPED), a host range not 1G-aligned, or a 4K table among the
    /// children: TDX_EPT_INVALID_PROMOTE_CONDITIONS, nothing merged.
    @Test func childrenNotAlikeDoNotMerge() {
        let mixed = td(hostBase: g1, accept: false)
        for c in 1..<512 as Range<UInt64> { _ = mixed.accept(gfn: GFN(c * 512), level: .size2M) }
        blockAndTrack(mixed)
        #expect(mixed.promote(gfn: GFN(0), level: .size1G) == .eptInvalidPromoteConditions)
        #expect(mixed.entry(gfn: GFN(0), level: .size1G).state == .nlBlocked)
        let misaligned = td(hostBase: g1 + 512)
        blockAndTrack(misaligned)
        #expect(misaligned.promote(gfn: GFN(0), level: .size1G) == .eptInvalidPromoteConditions)
        let table = runnableTD()
        #expect(table.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(9)) == .success)
        for c in 1..<512 as Range<UInt64> { #expect(table.pageAug(gfn: GFN(c * 512), level: .size2M, hfn: HFN(g1 + c * 512)) == .success) }
        blockAndTrack(table)
        #expect(table.promote(gfn: GFN(0), level: .size1G) == .eptInvalidPromoteConditions)
    }

    /// Teardown: RECLAIM fails with TDX_LIFECYCLE_STATE_INCORRECT until the
    /// HKID is released (TD_TEARDOWN); the S-EPT is dropped only when no leaf
    /// is left; PAMT.REMOVE in bulk as one by one.
    @Test func teardownReclaimsOnlyAfterTheHKIDIsReleased() {
        let t = td(hostBase: g1)
        #expect(t.reclaim(pages: 3) == .lifecycleStateIncorrect)
        #expect(t.releaseHKID() == .success && t.lifecycle == .teardown)
        #expect(t.releaseHKID() == .lifecycleStateIncorrect)
        #expect(t.reclaim(pages: 3) == .success)
        #expect(t.calls[leaf: .phymemPageReclaim, status: .success] == 3)
        #expect(!t.dropReclaimedSEPT())  // 2M leaves still there
        let empty = runnableTD()
        empty.releaseHKID()
        #expect(empty.dropReclaimedSEPT() && !empty.hasLeaves && empty.entry(gfn: GFN(0), level: .size1G) == .free)
        var f = TDXModuleFeatures(); f.dynamicPAMT = true
        let a = TrustDomain(features: f, vcpus: 1), b = TrustDomain(features: f, vcpus: 1)
        let r = HostRegion2M(10)..<HostRegion2M(20)
        for x in [a, b] { _ = x.pamtAdd(ranges: r) }
        #expect(a.pamtRemove(ranges: HostRegion2M(8)..<HostRegion2M(15)) == 2)
        for i in 8..<15 as Range<UInt64> { _ = b.pamtRemove(range2M: HostRegion2M(i)) }
        #expect(a.calls == b.calls && a.pamtPages == b.pamtPages && a.pamtPages == 2 * 5)
    }
}
