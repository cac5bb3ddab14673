import MemoryModel
import TDXModule
import Testing

/// A module with 1G private mappings (issue 18 §3, forward-looking:
/// `TDXModuleFeatures.privateMappings1G`). TDX_1.5.01 has the 1G level in
/// DEMOTE, PROMOTE, REMOVE and BLOCK; AUG and ACCEPT stop at 2M.
@Suite struct Private1GModuleTests {
    static var with1G: TDXModuleFeatures { var f = TDXModuleFeatures(); f.privateMappings1G = true; return f }
    let g1 = PageLevel.size1G.pages

    /// A runnable TD with only the PML4 entry present: the 1G level is reachable.
    func td(_ f: TDXModuleFeatures = with1G) -> TrustDomain {
        let td = TrustDomain(features: f, vcpus: 1)
        #expect(td.septAdd(gfn: GFN(0), entryLevel: 4, pageHFN: HFN(1 << 30)) == .success)
        td.mrFinalize()
        td.enter(vcpu: 0)
        return td
    }

    /// `verify_page_info_input(gpa, LVL_PT, LVL_PD)` in TDX_1.5.01's AUG and
    /// ACCEPT: 1G is TDX_OPERAND_INVALID there; with the feature it maps.
    @Test func augAndAcceptAt1GNeedTheFeature() {
        let old = td(TDXModuleFeatures())
        #expect(old.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1)) == .operandInvalid)
        #expect(old.accept(gfn: GFN(0), level: .size1G) == .status(.operandInvalid))
        let t = td()
        #expect(t.accept(gfn: GFN(0), level: .size1G) == .eptViolation(acceptLevel: .size1G))
        #expect(t.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1 + 512)) == .operandInvalid)  // host range misaligned
        #expect(t.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1)) == .success)
        #expect(t.entry(gfn: GFN(0), level: .size1G) == SEPTEntry(.pending, mapping: GFN(0), to: HFN(g1)))
        #expect(t.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1)) == .eptEntryStateIncorrect)
        // The walk to 2M or 4K stops at the 1G leaf.
        #expect(t.pageAug(gfn: GFN(512), level: .size2M, hfn: HFN(g1 + 512)) == .eptWalkFailed)
        #expect(t.pageAug(gfn: GFN(5), level: .size4K, hfn: HFN(g1 + 5)) == .eptWalkFailed)
        #expect(t.septAdd(gfn: GFN(0), entryLevel: 2, pageHFN: HFN(9)) == .eptWalkFailed)
        // A PENDING leaf above a smaller request: case 1.2, an EPT violation.
        #expect(t.accept(gfn: GFN(512), level: .size2M) == .eptViolation(acceptLevel: .size2M))
        #expect(!t.isAccessible(Range(raw: 0..<1)))
        #expect(t.accept(gfn: GFN(0), level: .size1G) == .status(.success))
        #expect(t.isAccessible(Range(raw: 0..<g1)) && !t.isAccessible(Range(raw: 0..<(g1 + 1))))
        #expect(t.accept(gfn: GFN(0), level: .size1G) == .status(.pageAlreadyAccepted))
        // A MAPPED leaf above a smaller request: case 1.1 (ALREADY_ACCEPTED;
        // the spec's table says SIZE_MISMATCH).
        #expect(t.accept(gfn: GFN(512), level: .size2M) == .status(.pageAlreadyAccepted))
        #expect(t.accept(gfn: GFN(7), level: .size4K) == .status(.pageAlreadyAccepted))
        var spec = Self.with1G; spec.acceptWalkCases = .specTable82
        let s = td(spec)
        #expect(s.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1)) == .success)
        #expect(s.accept(gfn: GFN(0), level: .size1G) == .status(.success))
        #expect(s.accept(gfn: GFN(512), level: .size2M) == .status(.pageSizeMismatch))
    }

    /// ACCEPT at 1G where the host linked a PD: case 3, SIZE_MISMATCH (the
    /// guest falls back to 2M).
    @Test func acceptAt1GOverAPDIsSizeMismatch() {
        let t = td()
        #expect(t.septAdd(gfn: GFN(0), entryLevel: 3, pageHFN: HFN(9)) == .success)
        #expect(t.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1)) == .eptEntryStateIncorrect)
        #expect(t.accept(gfn: GFN(0), level: .size1G) == .status(.pageSizeMismatch))
    }

    /// DEMOTE at 1G (`verify_page_info_input(gpa, LVL_PD, LVL_PDPT)`): blocked
    /// and tracked, then 512 2M leaves in the unblocked state, over the same
    /// contiguous host range; a 2M child then demotes to 4K as usual.
    @Test func demote1GGives512TwoMegabyteLeaves() {
        let t = td()
        #expect(t.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1)) == .success)
        #expect(t.accept(gfn: GFN(0), level: .size1G) == .status(.success))
        #expect(t.demote(gfn: GFN(0), level: .size1G, pageHFN: HFN(9), pamtPagesGiven: false) == .gpaRangeNotBlocked)
        #expect(t.rangeBlock(gfn: GFN(0), level: .size1G) == .success)
        #expect(t.entry(gfn: GFN(0), level: .size1G).state == .blocked)
        #expect(!t.isAccessible(Range(raw: 0..<1)))
        #expect(t.demote(gfn: GFN(0), level: .size1G, pageHFN: HFN(9), pamtPagesGiven: false) == .tlbTrackingNotDone)
        #expect(t.track() == .success); t.kickAll()
        #expect(t.demote(gfn: GFN(0), level: .size1G, pageHFN: HFN(9), pamtPagesGiven: false) == .success)
        #expect(t.entry(gfn: GFN(0), level: .size1G).state == .nlMapped)
        #expect(t.entry(gfn: GFN(511 * 512), level: .size2M) == SEPTEntry(.mapped, mapping: GFN(511 * 512), to: HFN(g1 + 511 * 512)))
        #expect(t.isAccessible(Range(raw: 0..<g1)))
        #expect(t.accept(gfn: GFN(512), level: .size2M) == .status(.pageAlreadyAccepted))
        // 2M → 4K on a child.
        #expect(t.rangeBlock(gfn: GFN(512), level: .size2M) == .success)
        #expect(t.track() == .success); t.kickAll()
        #expect(t.demote(gfn: GFN(512), level: .size2M, pageHFN: HFN(10), pamtPagesGiven: true) == .success)
        #expect(t.entry(gfn: GFN(700), level: .size4K) == SEPTEntry(.mapped, mapping: GFN(700), to: HFN(g1 + 700)))
        // Without the feature the module of this model refuses 1G DEMOTE.
        #expect(td(TDXModuleFeatures()).demote(gfn: GFN(0), level: .size1G, pageHFN: HFN(9), pamtPagesGiven: false) == .operandInvalid)
    }

    /// REMOVE at 1G (TDX_1.5.01 already has it): blocked, tracked, then FREE.
    @Test func remove1GLeaf() {
        let t = td()
        #expect(t.pageAug(gfn: GFN(0), level: .size1G, hfn: HFN(g1)) == .success)
        #expect(t.remove(gfn: GFN(0), level: .size1G).0 == .gpaRangeNotBlocked)
        #expect(t.remove(gfn: GFN(512), level: .size1G).0 == .operandInvalid)  // misaligned
        #expect(t.rangeBlock(gfn: GFN(0), level: .size1G) == .success)
        #expect(t.track() == .success); t.kickAll()
        let (s, h) = t.remove(gfn: GFN(0), level: .size1G)
        #expect(s == .success && h == HFN(g1))
        #expect(t.entry(gfn: GFN(0), level: .size1G).state == .free)
        #expect(t.accept(gfn: GFN(0), level: .size1G) == .eptViolation(acceptLevel: .size1G))
    }
}
