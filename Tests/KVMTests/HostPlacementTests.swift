import CostModel
@testable import KVM
import MemoryModel
import Simulation
import TDXModule
import Testing

/// The host allocator model behind S-EPT and TDX control pages (issue 18 §1):
/// where the pages land decides `tdx_pamt_get()`'s PAMT.ADDs per 2M range,
/// the PAMT pages and host committed memory. Counts checked by hand.
@Suite struct HostPlacementTests {
    func vm(_ placement: SEPTPlacement, isolated: UInt64 = 0, vcpus: Int = 2, dpamt: Bool = true, slotPages: UInt64 = 8 * 512) throws -> TDXVM {
        var o = KVMOptions(); o.septPlacement = placement; o.hostIsolatedFreePages = isolated
        var f = TDXModuleFeatures(); f.dynamicPAMT = dpamt
        let vm = try TDXVM(options: o, features: f, vcpus: vcpus,
                           slots: [Memslot(id: 1, baseGFN: GFN(0), pages: slotPages, backing: .hugetlb2M)])
        vm.finalize()
        return vm
    }

    func pamtAdds(_ vm: TDXVM) -> UInt64 { vm.module.calls[leaf: .phymemPamtAdd, status: .success] }

    /// TDX_1.5.01 reports `tdcs_base_size` = 6 pages and `tdvps_base_size` =
    /// 6 pages: a 2-vCPU TD has TDR + 6 TDCS + 2 × (TDVPR + 5 TDCX) = 19
    /// control pages, each from `tdx_alloc_control_page()`.
    @Test func controlPagesAndTheirPAMT() throws {
        #expect(TrustDomain.controlPages(vcpus: 2) == 19)
        let contiguous = try vm(.contiguous), scattered = try vm(.scattered)
        let buddy = try vm(.buddy, isolated: 5), fresh = try vm(.buddy, isolated: 0)
        let static4K = try vm(.scattered, dpamt: false)
        #expect(contiguous.tdx.controlPages == 19 && contiguous.septPool == 0)
        // Contiguous: all 19 in one 2M range, one PAMT.ADD and 2 PAMT pages.
        #expect(pamtAdds(contiguous) == 1 && contiguous.pamtPagesAllocated == 2 && contiguous.committedPages == 19 + 2)
        // Scattered: a range each.
        #expect(pamtAdds(scattered) == 19 && scattered.pamtPagesAllocated == 38 && scattered.committedPages == 19 + 38)
        // Buddy over 5 isolated free pages: 5 ranges, then the other 14 in one.
        #expect(pamtAdds(buddy) == 6 && buddy.committedPages == 19 + 12)
        // Buddy on a host with no isolated free page is contiguous.
        #expect(pamtAdds(fresh) == 1 && fresh.committedPages == contiguous.committedPages)
        // Static PAMT: no PAMT.ADD, the pages still committed.
        #expect(pamtAdds(static4K) == 0 && static4K.committedPages == 19)
        for v in [contiguous, scattered, buddy, fresh, static4K] { #expect(v.checkInvariants().isEmpty) }
    }

    /// S-EPT pages continue where the control pages stopped: 8 2M ranges
    /// mapped at 4K take a PDPT, a PD and 8 4K tables (10 S-EPT pages) and
    /// 8 guest PAMT.ADDs.
    @Test func septPagesFollowTheControlPages() throws {
        func fault(_ v: TDXVM) -> TDXVM {
            for c in 0..<8 as Range<UInt64> { _ = v.handleEPTViolation(gfn: GFN(c * 512), acceptLevel: .size4K) }
            return v
        }
        // Buddy, 20 isolated: 19 control pages and the PDPT page isolated (20
        // ranges), the other 9 S-EPT pages contiguous (1 range), 8 guest ranges.
        let buddy = fault(try vm(.buddy, isolated: 20))
        #expect(buddy.septPool == 10 && pamtAdds(buddy) == 20 + 1 + 8)
        #expect(buddy.committedPages == buddy.gmem.allocatedPages + 19 + 10 + 2 * (20 + 1 + 8))
        let scattered = fault(try vm(.scattered)), contiguous = fault(try vm(.contiguous))
        #expect(pamtAdds(scattered) == 19 + 10 + 8 && pamtAdds(contiguous) == 1 + 8)
        // Host committed memory differs by exactly the PAMT pages.
        #expect(scattered.committedPages - contiguous.committedPages == 2 * (29 - 1))
        for v in [buddy, scattered, contiguous] { #expect(v.checkInvariants().isEmpty) }
    }

    /// Contiguous pages open a second range at the 513th page: 19 control
    /// pages and 493 S-EPT pages fill the first; the 494th S-EPT page opens
    /// the next range.
    @Test func contiguousPagesOpenARangePer512() throws {
        let v = try vm(.contiguous, slotPages: 600 * 512)
        // A PDPT, a PD and one 4K table per 2M range mapped at 4K.
        for c in 0..<491 as Range<UInt64> { _ = v.handleEPTViolation(gfn: GFN(c * 512), acceptLevel: .size4K) }
        #expect(v.septPool == 493 && pamtAdds(v) == 1 + 491)
        _ = v.handleEPTViolation(gfn: GFN(491 * 512), acceptLevel: .size4K)
        #expect(v.septPool == 494 && pamtAdds(v) == 2 + 492)
        #expect(v.checkInvariants().isEmpty)
    }

    /// The runs of 2M ranges the allocator's pages occupy (what the PAMT_4K
    /// invariant checks): the isolated pages' and the contiguous ones'.
    @Test func allocatorRangesAreTheRangesThePagesOccupy() throws {
        let v = try vm(.buddy, isolated: 3)
        let ranges = v.tdx.allocatorRanges
        #expect(ranges.count == 2)
        #expect(ranges.map { $0.upperBound - $0.lowerBound } == [3, 1])
    }

    /// The report's `Host allocator` line: as placed, and at the two bounds.
    @Test func theFootprintShowsBothBounds() throws {
        let b = try vm(.buddy, isolated: 5).hostAllocatorFootprint
        #expect(b.controlPages == 19 && b.septPages == 0 && b.ranges == 6)
        #expect(b.rangesIfContiguous == 1 && b.rangesIfScattered == 19 && b.pamtPagesPerRange == 2)
        let s = try vm(.scattered, dpamt: false).hostAllocatorFootprint
        #expect(s.ranges == 19 && s.pamtPagesPerRange == 0)
    }
}
