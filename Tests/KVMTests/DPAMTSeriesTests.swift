import CostModel
@testable import KVM
import MemoryModel
import Simulation
import TDXModule
import Testing

/// Dynamic PAMT v4 and v6 (issue 18 §1): v6's 48-bit condition, the static
/// PAMT with and without the 4K bitmap, and the dynamic pages, for the TD
/// and for the host.
@Suite struct DPAMTSeriesTests {
    func run(_ td: String) throws -> HostRun {
        let r = try HostRun(try HostScenario.parse(td + "\nslot id=1 base=0 pages=0x100000 backing=hugetlb-2m\nfinalize\naccept 0x205+1 4k\naccept 0x400+1024 linux\n"),
                            calibration: try Calibration.builtIn(), log: false)
        try r.run()
        return r
    }

    /// "[PATCH v6 10/11] x86/virt/tdx: Enable Dynamic PAMT": only when
    /// x86_phys_bits ≤ 48. Above, the module runs with static PAMT and KVM
    /// issues no PAMT.ADD; v4 has no such condition.
    @Test func v6EnablesDynamicPAMTOnlyWithin48Bits() throws {
        let narrow = try run("td vcpus=4 host=tdx-huge dpamt=v6 host-phys-bits=48")
        #expect(narrow.vm.module.features.dynamicPAMT)
        #expect(narrow.vm.module.calls.total(.phymemPamtAdd) == 2)
        let wide = try run("td vcpus=4 host=tdx-huge dpamt=v6 host-phys-bits=52")
        #expect(!wide.vm.module.features.dynamicPAMT)
        #expect(wide.vm.module.calls.total(.phymemPamtAdd) == 0 && wide.vm.pamtPagesAllocated == 0)
        #expect(wide.vm.pamtFootprint.disabledBecause?.contains("52 > 48") == true)
        let v4 = try run("td vcpus=4 host=tdx-huge dpamt=v4 host-phys-bits=52")
        #expect(v4.vm.module.features.dynamicPAMT)
    }

    /// Static PAMT: 16 bytes per 4K page without Dynamic PAMT (~0.4% of
    /// RAM), 1 bit per 4K page with it; 16 bytes per 2M and per 1G either
    /// way. The dynamic part is the 2 pages per 2M range PAMT.ADD installs.
    @Test func staticPAMTIsTheBitmapUnderDynamicPAMTAndPAMT_4KWithout() throws {
        let host = "host-memory=1T"
        let dyn = try run("td vcpus=4 host=tdx-huge dpamt=v6 \(host)").vm.pamtFootprint
        let stat = try run("td vcpus=4 host=tdx-huge dpamt=v6 host-phys-bits=52 \(host)").vm.pamtFootprint
        let pages: UInt64 = 1 << 28  // 1 TiB
        #expect(stat.hostStatic.level4K == 16 * pages)
        #expect(dyn.hostStatic.level4K == pages / 8)
        #expect(dyn.hostStatic.upper == 16 * (pages / 512 + pages / (512 * 512)))
        // ~0.4% against ~0.004% of RAM.
        let ram = Double(pages * 4096)
        #expect(abs(Double(stat.hostTotalBytes) / ram - 0.0039) < 0.0001)
        #expect(abs(Double(dyn.hostTotalBytes) / ram - 0.00004) < 0.00001)
        #expect(dyn.dynamicBytes == 2 * 2 * 4096)  // two 2M host ranges hold 4K TD pages
        // The TD's share: its 4 GiB.
        #expect(dyn.tdPages == 0x100000 && dyn.tdStatic.level4K == 0x100000 / 8)
    }

    /// The per-vCPU fault cache: v4 tops up PT64_ROOT_MAX_LEVEL pairs, v6
    /// one pair for the guest page (S-EPT pages get theirs at allocation).
    @Test func v6sFaultCacheHoldsOnePairPerVCPU() throws {
        #expect(try run("td vcpus=4 host=tdx-huge dpamt=v4").vm.pamtFootprint.faultCacheBytes == 4 * 10 * 4096)
        #expect(try run("td vcpus=4 host=tdx-huge dpamt=v6").vm.pamtFootprint.faultCacheBytes == 4 * 2 * 4096)
    }

    @Test func badOptionsAreRefused() {
        for td in ["td dpamt=v5", "td host-phys-bits=60", "td host-memory=1K", "td host-memory=lots"] {
            #expect(throws: (any Error).self) { try HostScenario.parse(td + "\nslot id=1 base=0 pages=512\n") }
        }
    }
}
