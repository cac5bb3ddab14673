import CostModel
import Foundation
@testable import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import Testing

/// S-EPT pages given back to the host (issue 18 §1 and §3): kvm-x86 frees
/// them only at teardown (`tdx_sept_free_private_spt()`: "KVM doesn't (yet)
/// zap page table pages in mirror page table while TD is active"), with
/// TDH.PHYMEM.PAGE.RECLAIM and `tdx_free_control_page()`; and the host-file
/// command `promote` frees a PD page by merging 512 2M leaves into a 1G leaf.
@Suite struct SEPTFreeTests {
    func run(_ text: String, stepping: Bool = false) throws -> HostRun {
        let r = try HostRun(try HostScenario.parse(text), calibration: try Calibration.builtIn(), log: true)
        r.vm.stepsZaps = stepping
        try r.run()
        return r
    }

    func reclaims(_ vm: TDXVM) -> UInt64 { vm.module.calls[leaf: .phymemPageReclaim, status: .success] }
    func pamt(_ vm: TDXVM, _ leaf: SEAMCALLLeaf) -> UInt64 { vm.module.calls[leaf: leaf, status: .success] }

    static let body = """
    slot id=1 base=0 pages=0x8000 backing=hugetlb-2m
    finalize
    accept 0x0+0x1000 4k
    accept 0x2000+0x2000 linux
    convert 0x2200+0x10 shared

    """

    /// Zapping every leaf of a 4K table (a conversion to shared) leaves the
    /// table in both trees while the TD runs: no S-EPT page is freed, no
    /// RECLAIM, no TDH.MEM.SEPT.REMOVE.
    @Test func aZappedRangeKeepsItsTable() throws {
        let r = try run("td vcpus=2 host=tdx-huge\n" + Self.body + "convert 0x0+0x200 shared\n")
        let vm = r.vm
        #expect(vm.mmu.mirror2M.value(at: GFN(0).region2M) == .table)
        #expect(vm.mmu.mirror4K.measure(in: GFN(0)..<GFN(512)) { $0 } == 0)
        #expect(reclaims(vm) == 0)  // and no TDH.MEM.SEPT.REMOVE: KVM has no caller (nor the model a leaf for it)
        #expect(vm.septPool == vm.septPages && !vm.septFree.any)
    }

    /// `destroy`: every private leaf removed while the HKID is assigned, then
    /// every S-EPT page and every control page reclaimed and freed, under
    /// Dynamic PAMT with a PAMT.REMOVE per 2M range they held; host
    /// committed memory back to 0, no PAMT_4K left, the invariants
    /// holding on the empty VM. Under all three placements.
    @Test func destroyReclaimsEverySEPTAndControlPage() throws {
        for place in ["contiguous", "scattered", "buddy host-free-4k=8"] {
            let td = "td vcpus=2 host=tdx-huge host-placement=\(place)\n"
            let before = try run(td + Self.body).vm
            let sept = before.septPool, control = before.tdx.controlPages
            #expect(sept > 3 && control == 19 && reclaims(before) == 0)
            let r = try run(td + Self.body + "destroy\ncheck\n")
            let vm = r.vm
            #expect(vm.outcome == .ok && vm.brokenOutcomes.isEmpty, "\(place): \(vm.brokenOutcomes)")
            #expect(vm.septFree.destroyed && vm.septFree.septPagesReclaimed == sept && vm.septFree.controlPagesReclaimed == control)
            #expect(reclaims(vm) == sept + control, "\(place)")
            #expect(vm.septFree.allocatorPAMTRemoves == before.hostAllocatorFootprint.ranges, "\(place)")
            #expect(vm.module.pamtPages == 0 && pamt(vm, .phymemPamtRemove) > pamt(before, .phymemPamtRemove), "\(place)")
            #expect(vm.committedPages == 0 && vm.pamtPagesAllocated == 0 && vm.septPages == 0 && vm.hostMemory.totalPages == 0)
            #expect(vm.septFree.committedPagesBefore == before.committedPages)
            #expect(vm.module.lifecycle == .teardown && vm.checkInvariants().isEmpty)
            #expect(r.text.contains("Teardown: \(sept) S-EPT + \(control) control pages reclaimed"))
            // Nothing but check may follow.
            #expect(throws: CocomemError.self) { try HostScenario.parse(td + Self.body + "destroy\naccept 0x0+1 4k\n") }
        }
        // Static PAMT: the pages are reclaimed, no PAMT.REMOVE.
        let s = try run("td vcpus=2 host=tdx-huge dpamt=off\n" + Self.body + "destroy\n").vm
        #expect(s.septFree.allocatorPAMTRemoves == 0 && s.committedPages == 0 && reclaims(s) == s.septFree.septPagesReclaimed + 19)
    }

    /// Teardown in bulk (one count of RECLAIMs, PAMT.REMOVE per run of 2M
    /// ranges) equals stepping page by page with each `tdx_pamt_put()`:
    /// seeded random runs under the three placements, with and without
    /// Dynamic PAMT.
    @Test func destroyInBulkEqualsStepping() throws {
        for seed in 0..<18 as Range<UInt64> {
            var rng = SplitMix64(seed: seed)
            let place = ["contiguous", "scattered", "buddy host-free-4k=\(rng.next() % 40)"][Int(seed % 3)]
            let dpamt = seed % 4 == 3 ? " dpamt=off" : ""
            var text = "td vcpus=\(1 + rng.next() % 4) host=tdx-huge host-placement=\(place)\(dpamt)\n"
            text += "slot id=1 base=0 pages=0x10000 backing=\(seed % 5 == 0 ? "buddy" : "hugetlb-2m")\nfinalize\n"
            for _ in 0..<(3 + rng.next() % 6) {
                let start = rng.next() % 0xf000, n = 1 + rng.next() % 0x800
                switch rng.next() % 4 {
                case 0: text += "accept \(start)+\(n) 4k\n"
                case 1: text += "accept \(start)+\(n) linux\n"
                case 2: text += "convert \(start)+\(n) shared\n"
                default: text += "accept \(start & ~0x1ff)+\((n + 0x1ff) & ~0x1ff) 2m\n"
                }
            }
            text += "destroy\ncheck\n"
            let bulk = try run(text), step = try run(text, stepping: true)
            #expect(BulkZapTests.snapshot(bulk.vm) == BulkZapTests.snapshot(step.vm), "seed \(seed)")
            #expect(bulk.vm.septFree == step.vm.septFree && (bulk.vm.committedPages == 0 || bulk.vm.isDead), "seed \(seed)")
            #expect(bulk.vm.septFree.destroyed || bulk.vm.isDead, "seed \(seed)")
        }
    }

    static let promoteTD = """
    td vcpus=2 host=tdx-huge module-1g=on dpamt=off
    slot id=1 base=0 pages=0x80000 backing=hugetlb-1g
    finalize

    """

    /// PROMOTE to 1G: a GiB accepted at 2M (GUEST_INHIBIT at 1G keeps KVM
    /// at 2M: a PD of 512 2M leaves) merges into one 1G leaf with BLOCK,
    /// TRACK, PROMOTE at 1G and WBINVD of the freed PD page; the PD page is
    /// back with the host (one S-EPT page fewer, host committed one page
    /// lower). The guest's later 2M ACCEPT there is ALREADY_ACCEPTED (case 1.1).
    @Test func promoteMergesAGiBAcceptedAt2M() throws {
        let pre = try run(Self.promoteTD + "accept 0x0+0x40000 2m\n").vm
        #expect(pre.pages2M == 512 && pre.pages1G == 0 && pre.mmu.mirrorPD.value(at: GFN(0).region1G))
        let r = try run(Self.promoteTD + "accept 0x0+0x40000 2m\npromote 0x0+0x40000\ncheck\n")
        let vm = r.vm
        #expect(vm.outcome == .ok && vm.brokenOutcomes.isEmpty, "\(vm.brokenOutcomes)")
        #expect(vm.pages1G == 1 && vm.pages2M == 0 && !vm.mmu.mirrorPD.value(at: GFN(0).region1G))
        #expect(vm.module.entry(gfn: GFN(0), level: .size1G).state == .mapped)
        #expect(vm.septFree.promoted1G == 1 && vm.septFree.septPagesFreedRunning == 1)
        #expect(vm.septPool == pre.septPool - 1 && vm.committedPages == pre.committedPages - 1)
        #expect(vm.module.calls[leaf: .memPagePromote, status: .success] == 1)
        #expect(vm.module.calls[leaf: .phymemPageWbinvd, status: .success] == pre.module.calls[leaf: .phymemPageWbinvd, status: .success] + 1)
        #expect(r.text.contains("PROMOTE to 1G (host command): 1 merged"))
        // Already accepted: a later 2M ACCEPT sees the MAPPED 1G leaf.
        #expect(vm.module.accept(gfn: GFN(512), level: .size2M) == .status(.pageAlreadyAccepted))
        // A 4K conversion afterwards splits 1G → 2M → 4K again (in place: the 1G folio stays).
        let inPlace = Self.promoteTD.replacingOccurrences(of: "dpamt=off", with: "dpamt=off policy=in-place")
        let again = try run(inPlace + "accept 0x0+0x40000 2m\npromote 0x0+0x40000\nconvert 0x5+1 shared\ncheck\n").vm
        #expect(again.outcome == .ok && again.brokenOutcomes.isEmpty && again.pages1G == 0 && again.private1G.splits == 1)
    }

    /// PROMOTE refused: 511 accepted 2M leaves and one PENDING (the
    /// module needs them alike: TDX_EPT_INVALID_PROMOTE_CONDITIONS, -EAGAIN,
    /// UNBLOCK): nothing merged, the TD goes on. Without a PD of 512 2M
    /// leaves KVM issues nothing. The command needs module-1g=on and
    /// dpamt=off.
    @Test func promoteRefusedLeavesTheTable() throws {
        // The host removes the last 2M page and adds it back PENDING (`remove`, `readd`).
        let r = try run(Self.promoteTD + "accept 0x0+0x40000 2m\nremove 0x3fe00+0x200\nreadd 0x3fe00+0x200\npromote 0x0+0x40000\ncheck\n")
        let vm = r.vm
        #expect(vm.outcome == .ok && vm.brokenOutcomes.isEmpty, "\(vm.brokenOutcomes)")
        #expect(vm.septFree.promoteRefused == 1 && vm.septFree.promoted1G == 0 && vm.pages2M == 512)
        #expect(vm.module.calls[leaf: .memPagePromote, status: .eptInvalidPromoteConditions] == 1)
        #expect(vm.module.entry(gfn: GFN(0), level: .size1G).state == .nlMapped)
        let none = try run(Self.promoteTD + "accept 0x0+0x200 2m\npromote 0x0+0x40000\n").vm
        #expect(none.module.calls[leaf: .memPagePromote, status: .eptInvalidPromoteConditions] == 0 && !none.septFree.any)
        #expect(throws: CocomemError.self) { try run("td vcpus=2 host=tdx-huge module-1g=on\nslot id=1 base=0 pages=0x40000 backing=hugetlb-1g\npromote 0x0+0x40000\n") }
        #expect(throws: CocomemError.self) { try run("td vcpus=2 host=tdx-huge dpamt=off\nslot id=1 base=0 pages=0x40000 backing=hugetlb-1g\npromote 0x0+0x40000\n") }
        #expect(throws: CocomemError.self) { try HostScenario.parse(Self.promoteTD + "promote 0x200+0x40000\n") }
    }
}
