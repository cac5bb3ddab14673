import CoCoGuest
import CostModel
import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

/// Issue 16 §1: the x86 reservations of low memory and the EFI boot
/// services memory, against arch/x86/kernel/setup.c (`trim_bios_range()`),
/// arch/x86/realmode/init.c (`reserve_real_mode()`) and
/// arch/x86/platform/efi/quirks.c (`efi_reserve_boot_services()`,
/// `efi_free_boot_services()` before and after a4b0bf6a40f3). Expectations
/// are computed from the built-in q35 map by hand.
@Suite struct LowMemoryTests {
    static let mib: UInt64 = 1 << 20

    /// Page 0 and 640K-1M are not memblock memory; the first 1M is reserved;
    /// the two KERN_DEBUG lines follow the EFI map in dmesg.
    @Test func trimBIOSRangeAndTheFirstMegabyte() throws {
        let r = try bootResult { $0.memory = 4 << 30 }
        let k = try #require(r.kernel)
        #expect(k.ram.first?.start == 0x1000)
        #expect(!k.ram.contains { $0.overlaps(AddressRange(start: 0xA_0000, end: 0x10_0000)) })
        #expect(k.reservation(.firstMegabyte) == AddressRange(start: 0, end: 1 << 20))
        // Idempotent: a kexec'd kernel handed the trimmed RAM keeps it.
        #expect(GuestKernel.trimBIOSRange(k.ram) == k.ram)
        let lines = r.dmesg().map(\.text)
        let update = try #require(lines.firstIndex(of: "e820: update [mem 0x00000000-0x00000fff] usable ==> reserved"))
        #expect(lines[update + 1] == "e820: remove [mem 0x000a0000-0x000fffff] usable")
        #expect(lines[update - 1].hasPrefix("efi: mem"))
        // DMA: 0x1000-0x9ffff (159 pages) and 1M-16M less the two ACPI NVS holes (8 + 240 pages).
        #expect(k.presentPages(.dma) == 159 + 3840 - 248 && k.zones[0].managed == 3840 - 248)
    }

    /// The built-in map's boot services descriptors: 0x900000-0x131c000
    /// runs into the kernel image at 16M (already reserved: not owned, its
    /// free part goes to the allocator in memblock_free_all()); the other
    /// three (8M + 4M + 4M at the top of low RAM) are reserved and freed late.
    @Test func bootServicesAreReservedThenFreedAtArchInitcallOnSevenZero() throws {
        let r = try bootResult { $0.memory = 4 << 30 }
        let k = try #require(r.kernel)
        let low = 0x8000_0000 as UInt64
        #expect(k.bootServices.notOwned == [AddressRange(start: 0x90_0000, end: 0x131_C000)])
        #expect(k.bootServices.owned == [AddressRange(start: low - 24 * Self.mib, end: low - 16 * Self.mib),
                                         AddressRange(start: low - 16 * Self.mib, end: low - 12 * Self.mib),
                                         AddressRange(start: low - 6 * Self.mib, end: low - 2 * Self.mib)])
        #expect(k.bootServices.freedBytes == 16 * Self.mib && k.bootServices.freedAtArchInitcall && k.bootServices.leaked.isEmpty)
        #expect(k.reservation(.bootServices) == nil)
        // Freed between init_per_zone_wmark_min() and khugepaged.
        let i = try #require(k.events.firstIndex { $0.hasPrefix("init_per_zone_wmark_min()") })
        #expect(k.events[i + 1] == "efi: Freeing EFI boot services memory: 16384K")
        let lines = r.dmesg().map(\.text)
        #expect(lines.contains("efi: Freeing EFI boot services memory: 16384K"))
        // mem_init_print_info() runs while they are still reserved: the Memory: line's
        // reserved figure holds them, MemFree at the end does not.
        let memory = try #require(lines.first { $0.hasPrefix("Memory: ") })
        let avail = UInt64(memory.dropFirst("Memory: ".count).prefix { $0 != "K" })!
        let unreserved = k.ram.subtracting(k.reserved).subtracting(k.bootServices.freed)
        // Normal's first section was freed by memblock_free_all(); the rest waits for deferred init.
        #expect(k.deferredAtFreeAll == [AddressRange(start: (1 << 32) + 128 * Self.mib, end: (1 << 32) + 2048 * Self.mib)])
        #expect(avail == unreserved.subtracting(k.deferredAtFreeAll).reduce(0) { $0 + $1.size } / 1024)
    }

    /// `defer_init()` defers the zone that ends where the node ends: on a
    /// 1 GiB guest (all RAM below 4 GiB) that is DMA32, from the first
    /// section boundary after 128 MiB of it (16M + 128M, up to 256M), to
    /// the last RAM page (the top 2M of low RAM is ACPI NVS). The three
    /// boot services ranges at the top of low RAM lie past it, so before
    /// a4b0bf6a40f3 `memblock_free_late()` skips them: the leak Aaron
    /// Thompson measured on a 1 GB EC2 guest (115d9d77bb0f, reverted by
    /// 647037adcad0 in 6.2). 7.0 frees them after deferred init.
    @Test(arguments: [(KernelVersion.v6_16, true), (KernelVersion.v7_0, false)])
    func aGuestBelowFourGiBDefersDMA32(version: KernelVersion, leaks: Bool) throws {
        let r = try bootResult { $0.memory = 1 << 30; $0.kernel.version = version }
        let k = try #require(r.kernel)
        let low: UInt64 = 1 << 30
        #expect(k.deferredZone == [.dma32])
        #expect(k.deferredAtFreeAll == [AddressRange(start: 256 * Self.mib, end: low - 2 * Self.mib)])
        let top = [AddressRange(start: low - 24 * Self.mib, end: low - 16 * Self.mib),
                   AddressRange(start: low - 16 * Self.mib, end: low - 12 * Self.mib),
                   AddressRange(start: low - 6 * Self.mib, end: low - 2 * Self.mib)]
        #expect(k.bootServices.owned == top)
        #expect(k.bootServices.leaked == (leaks ? top : []))
        #expect(k.bootServices.freedBytes == (leaks ? 0 : 16 * Self.mib))
        // Deferred init ran and took time; every deferred page reached the allocator.
        #expect(r.times.deferredInit > 0)
        #expect(k.deferredPagesLeft == 0)
        #expect(k.totalManagedPages == k.ram.subtracting(k.reserved).reduce(0) { $0 + $1.size / 4096 })
        // A guest with memory above 4 GiB still defers Normal only.
        let big = try #require(try bootResult { $0.memory = 4 << 30; $0.kernel.version = version }.kernel)
        #expect(big.deferredZone == [.normal])
    }

    /// Before a4b0bf6a40f3 the memory is freed in efi_enter_virtual_mode(),
    /// before the watermarks: min_free_kbytes sees it, and there is no line.
    @Test func oldKernelsFreeInEnterVirtualMode() throws {
        let new = try #require(try bootResult { $0.memory = 4 << 30; $0.kernel.transparentHugepage = .never }.kernel)
        let old = try #require(try bootResult { $0.memory = 4 << 30; $0.kernel.version = .v6_16; $0.kernel.transparentHugepage = .never }.kernel)
        #expect(!old.bootServices.freedAtArchInitcall && old.bootServices.freedBytes == 16 * Self.mib)
        #expect(!old.events.contains { $0.contains("Freeing EFI boot services memory") })
        #expect(old.totalManagedPages == new.totalManagedPages)
        let freedPages = 16 * Self.mib / 4096
        #expect(old.minFreeKbytesInEffect == AccountingTests.referenceMinFree(managedPages: old.totalManagedPages))
        #expect(new.minFreeKbytesInEffect == AccountingTests.referenceMinFree(managedPages: new.totalManagedPages - freedPages))
    }

    /// A boot services range past the node's first deferred pfn: before
    /// a4b0bf6a40f3 `memblock_free_late()` skips it (the EC2 leak of the
    /// commit message); with it, it is freed after deferred init.
    @Test(arguments: [(KernelVersion.v6_16, true), (KernelVersion.v7_0, false)])
    func deferredPagesLeakOnlyBeforeTheFix(version: KernelVersion, leaks: Bool) throws {
        var c = KernelConfig()
        c.version = version
        let ram = [AddressRange(start: 0x1000, end: 0x8000_0000), AddressRange(start: 1 << 32, size: 1 << 30)]
        let k = GuestKernel(config: c, vcpus: 2, costs: CostTable(try Calibration.builtIn()), platform: OpenPlatform(), ram: ram, unaccepted: nil)
        // Normal starts at 4G; the first section (128M) is initialised early, the rest deferred.
        let low = AddressRange(start: 0x7000_0000, size: 4 * Self.mib), deferred = AddressRange(start: (1 << 32) + 512 * Self.mib, size: 8 * Self.mib)
        var clock = PhaseClock(vcpus: 2)
        #expect(k.memblockAllocations(kernelImage: AddressRange(start: 16 * Self.mib, size: 64 * Self.mib), bootServices: [low, deferred], clock: &clock) == .ok)
        #expect(k.freeAll(early: &clock) == .ok)
        k.efiEnterVirtualMode()
        var d = PhaseClock(vcpus: 2)
        #expect(k.deferredInit(clock: &d) == .ok)
        k.initWatermarks()
        #expect(k.bootServices.leaked == (leaks ? [deferred] : []))
        #expect(k.bootServices.freed.contains(low))
        #expect(k.bootServices.freed.contains(deferred) == !leaks)
        // What stays reserved is what the allocator never got.
        #expect(k.totalManagedPages == k.ram.subtracting(k.reserved).reduce(0) { $0 + $1.size / 4096 })
    }
}
