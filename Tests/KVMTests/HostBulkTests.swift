import CoCoGuest
import CostModel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import Testing

@Suite struct HostBulkTests {
    /// Piecewise conversion in bulk equals converting page by page: same
    /// state, SEAMCALL counts, counters, pool and epoch.
    /// With both S-EPT placements (scattered: every pool page opens a range).
    @Test(arguments: [false, true], SEPTPlacement.allCases)
    func convertInPiecesBulkEqualsStepByStep(_ dpamt: Bool, _ placement: SEPTPlacement) throws {
        func make() throws -> TDXVM {
            var f = TDXModuleFeatures(); f.dynamicPAMT = dpamt
            var o = KVMOptions(); o.septPlacement = placement
            // Buddy: the 31 control pages and 6 S-EPT pages are isolated, the rest contiguous.
            if placement == .buddy { o.hostIsolatedFreePages = 37 }
            let vm = try TDXVM(options: o, features: f, vcpus: 4,
                               slots: [Memslot(id: 1, baseGFN: GFN(0), pages: 40 * 512, backing: .hugetlb2M)])
            vm.finalize()
            let acc = TDXAcceptor(host: vm, driver: .linux, costs: CostTable(try Calibration.builtIn()))
            var clock = PhaseClock(vcpus: 1)
            #expect(acc.accept(AddressRange(start: 0, size: 40 << 21), vcpu: 0, clock: &clock) == .ok)
            return vm
        }
        let bulk = try make(), step = try make()
        for (vm, s) in [(bulk, false), (step, true)] {
            #expect(vm.convertInPieces(Range(raw: 300..<(30 * 512 + 7)), toPrivate: false, stepByStep: s) == .ok)
            #expect(vm.convertInPieces(Range(raw: 300..<(20 * 512)), toPrivate: true, stepByStep: s) == .ok)
        }
        #expect(bulk.statsJSON.serialized() == step.statsJSON.serialized())
        #expect(bulk.mmu.mirror2M == step.mmu.mirror2M && bulk.mmu.mirror4K == step.mmu.mirror4K && bulk.attributes.privateAttr == step.attributes.privateAttr)
        #expect(bulk.module.pde == step.module.pde && bulk.module.pte == step.module.pte)
        #expect(bulk.tdx.pamtRefcount == step.tdx.pamtRefcount && bulk.module.pamt4K == step.module.pamt4K)
        #expect(bulk.gmem.folioOrder == step.gmem.folioOrder && bulk.septPool == step.septPool && bulk.splitCache == step.splitCache)
        #expect(bulk.module.tdEpoch == step.module.tdEpoch && bulk.ops == step.ops)
        #expect(bulk.checkInvariants().isEmpty)
        #expect(bulk.counters[.splitsConversion] == 31)  // chunks 0...30, the last one partly
    }
}
