import MemoryModel
import TDXModule
import Testing

/// `lock_sept_check_and_walk_internal()` with SEPT_WALK_TO_LEVEL: `secure_ept_walk()`
/// stops at a leaf or at a non-present (RWX=0) entry, and a walk that stops
/// above the requested level is TDX_EPT_WALK_FAILED (issue 18 §1).
@Suite struct SEPTWalkTests {
    /// A 4K operation under a 2M leaf stops at the leaf.
    @Test func fourKOperationsUnderA2MLeafFailTheWalk() {
        let td = runnableTD()
        #expect(td.pageAug(gfn: GFN(0), level: .size2M, hfn: HFN(512)) == .success)
        #expect(td.pageAug(gfn: GFN(1), level: .size4K, hfn: HFN(4096)) == .eptWalkFailed)
        #expect(td.rangeBlock(gfn: GFN(1), level: .size4K) == .eptWalkFailed)
        #expect(td.remove(gfn: GFN(1), level: .size4K).0 == .eptWalkFailed)
        #expect(td.rangeUnblock(gfn: GFN(1), level: .size4K) == .eptWalkFailed)
    }

    /// Under an NL_BLOCKED entry (RWX=0) the walk stops too.
    @Test func fourKOperationsUnderNLBlockedFailTheWalk() {
        let td = runnableTD()
        #expect(td.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(1 << 30 | 2)) == .success)
        #expect(td.pageAug(gfn: GFN(1), level: .size4K, hfn: HFN(4097)) == .success)
        #expect(td.rangeBlock(gfn: GFN(0), level: .size2M) == .success)  // NL_MAPPED → NL_BLOCKED
        #expect(td.pageAug(gfn: GFN(2), level: .size4K, hfn: HFN(4098)) == .eptWalkFailed)
        #expect(td.rangeBlock(gfn: GFN(1), level: .size4K) == .eptWalkFailed)
        #expect(td.remove(gfn: GFN(1), level: .size4K).0 == .eptWalkFailed)
        // ACCEPT at 2M reaches the NL_BLOCKED entry: case 3, SIZE_MISMATCH;
        // at 4K the walk stops above: an EPT violation.
        #expect(td.accept(gfn: GFN(0), level: .size2M) == .status(.pageSizeMismatch))
        #expect(td.accept(gfn: GFN(1), level: .size4K) == .eptViolation(acceptLevel: .size4K))
        // Where the table is present, the 4K entry decides.
        let open = runnableTD()
        #expect(open.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(1 << 30 | 2)) == .success)
        #expect(open.pageAug(gfn: GFN(1), level: .size4K, hfn: HFN(4097)) == .success)
        #expect(open.pageAug(gfn: GFN(1), level: .size4K, hfn: HFN(4097)) == .eptEntryStateIncorrect)
        #expect(open.rangeBlock(gfn: GFN(1), level: .size4K) == .success)
    }
}
