import CostModel
import GuestKernel
import MemoryModel
@testable import Simulation
import TestSupport
import Testing

/// `swiotlb=<slabs>[,<areas>][,force|noforce]` (issue 16 §1): read as
/// `setup_io_tlb_npages()` reads it, the user's slab count kept by
/// `swiotlb_adjust_size()` (it returns early unless the count is
/// IO_TLB_DEFAULT_SIZE's 32768), the areas rounded to a power of two, and
/// `noforce` leaving the guest without a bounce buffer.
@Suite struct SWIOTLBParameterTests {
    @Test func parsesWhatTheKernelReads() throws {
        #expect(try SWIOTLBParameter.parse("65536") == SWIOTLBParameter(slabs: 65536))
        #expect(try SWIOTLBParameter.parse("0x10000,4,force") == SWIOTLBParameter(slabs: 65536, areas: 4, force: .force))
        #expect(try SWIOTLBParameter.parse("1000,noforce") == SWIOTLBParameter(slabs: 1000, force: .noforce))
        #expect(try SWIOTLBParameter.parse("noforce") == SWIOTLBParameter(force: .noforce))
        #expect(try SWIOTLBParameter.parse("65536,4,force").text == "65536,4,force")
        for bad in ["", "0", "abc", "65536,0", "65536,4,forced", "65536,4,force,x", "2097153", "65536,5000", ",4"] {
            #expect(throws: CocomemError.self, "swiotlb=\(bad)") { try SWIOTLBParameter.parse(bad) }
        }
    }

    /// Sizings worked by hand from the kernel's functions, 4 GiB and 4 CPUs.
    @Test func userSizeIsKept() throws {
        let mem: UInt64 = 4 << 30
        let def = SWIOTLBSizing(totalMemBytes: mem, possibleCPUs: 4)
        #expect(def.bytes == 256 << 20 && def.adjustedBytes != nil)
        // 65536 slabs: not the default count, so no adjustment; a power of two, no round-up.
        let u = SWIOTLBSizing(totalMemBytes: mem, possibleCPUs: 4, parameter: SWIOTLBParameter(slabs: 65536))
        #expect(u.adjustedBytes == nil && u.bytes == 128 << 20 && !u.roundedUp && u.areas == 4 && u.messages == ["area num 4."])
        // 32768 is IO_TLB_DEFAULT_SIZE's count: swiotlb_adjust_size() cannot tell it from no parameter.
        let same = SWIOTLBSizing(totalMemBytes: mem, possibleCPUs: 4, parameter: SWIOTLBParameter(slabs: 32768))
        #expect(same == def)
        // 300 slabs, 3 areas: ALIGN to 384; areas 4 need 512 slabs: raised to 512 (1 MiB), printed at parse time.
        let small = SWIOTLBSizing(totalMemBytes: mem, possibleCPUs: 4, parameter: SWIOTLBParameter(slabs: 300, areas: 3))
        #expect(small.slabs == 512 && small.areas == 4 && small.roundedUp)
        #expect(small.messages == ["area num 4.", "SWIOTLB bounce buffer size roundup to 1MB"])
        // Areas given, slabs not: the 6% size is then rounded at once by the areas.
        let areasOnly = SWIOTLBSizing(totalMemBytes: mem, possibleCPUs: 4, parameter: try SWIOTLBParameter.parse("32768,16"))
        #expect(areasOnly.areas == 16 && areasOnly.messages.first == "area num 16." && areasOnly.bytes == 256 << 20)
        #expect(SWIOTLBSizing(totalMemBytes: mem, possibleCPUs: 4, parameter: SWIOTLBParameter(force: .noforce)).disabled)
    }

    /// Whole boots: the pool the kernel maps follows the parameter, and
    /// `noforce` leaves its memory to the page allocator.
    @Test func bootsFollowTheParameter() throws {
        let def = try bootResult { _ in }
        let u = try bootResult { $0.kernel.swiotlbParameter = SWIOTLBParameter(slabs: 65536) }
        let none = try bootResult { $0.kernel.swiotlbParameter = SWIOTLBParameter(force: .noforce) }
        #expect(def.kernel?.swiotlbBytes == 256 << 20 && u.kernel?.swiotlbBytes == 128 << 20 && none.kernel?.swiotlbBytes == 0)
        #expect(u.events.contains { $0.contains("(128MB)") } && !u.events.contains { $0.contains("adjusted to") })
        #expect(none.kernel?.reservation(.swiotlb) == nil && none.events.contains { $0.contains("swiotlb=noforce") })
        let total = { (r: BootResult) in r.kernel?.meminfo.first { $0.0 == "MemTotal" }?.1 ?? 0 }
        #expect(total(none) > total(u) && total(u) > total(def))
    }

    @Test func scenarioKeyAndRefusal() throws {
        let f = try ScenarioFile.parse("kernel:\n  swiotlb: 65536,4\n", name: "t.yaml")
        #expect(f.scenario.kernel.swiotlbParameter == SWIOTLBParameter(slabs: 65536, areas: 4))
        #expect(try ScenarioFile.parse(ScenarioFile(scenario: f.scenario).yaml).scenario.kernel.swiotlbParameter == f.scenario.kernel.swiotlbParameter)
        #expect(throws: CocomemError.self) { try ScenarioFile.parse("kernel:\n  swiotlb: lots\n") }
    }
}

/// `efi=debug` (EFI_DBG): `efi_free_boot_services()` (before 7.0) and
/// `efi_unmap_boot_services()` (7.0) return at once, "Keep all regions for
/// /sys/kernel/debug/efi": the boot services memory is never freed.
@Suite struct EFIDebugTests {
    @Test(arguments: ["7.0", "6.12"])
    func bootServicesMemoryIsKept(_ v: String) throws {
        let version = try KernelVersion(parsing: v)
        let def = try bootResult { $0.kernel.version = version }
        let dbg = try bootResult { $0.kernel.version = version; $0.kernel.efiDebug = true }
        let freed = try #require(def.kernel).bootServices.freedBytes
        #expect(freed > 0 && dbg.kernel?.bootServices.freedBytes == 0)
        let total = { (r: BootResult) in r.kernel?.meminfo.first { $0.0 == "MemTotal" }?.1 ?? 0 }
        #expect(total(def) - total(dbg) == freed >> 10)
        #expect(dbg.events.contains { $0.hasPrefix("efi=debug") } && !def.events.contains { $0.hasPrefix("efi=debug") })
        #expect(!dbg.events.contains { $0.contains("Freeing EFI boot services memory") })
        #expect(try ScenarioFile.parse("kernel:\n  efi-debug: true\n").scenario.kernel.efiDebug)
    }
}
