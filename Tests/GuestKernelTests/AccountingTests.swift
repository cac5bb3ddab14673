import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

/// Issue 16 §1: the guest's accounting against the kernel's arithmetic.
/// Each expectation is computed here from the source's formulas (cited), not
/// read back from the model's own helpers.
@Suite struct AccountingTests {
    static let mib: UInt64 = 1 << 20

    // MARK: SWIOTLB (mem_encrypt_setup_arch(), swiotlb_adjust_size(), swiotlb_init_remap())

    /// A reference written from kernel/dma/swiotlb.c: 6% clamped to
    /// [64 MiB, 1 GiB], slabs of 2 KiB aligned to 128, areas = CPUs rounded
    /// to a power of two, slabs at least 128 × areas and a power of two.
    static func referenceSlabs(memory: UInt64, cpus: UInt64) -> UInt64 {
        let size = min(max(memory * 6 / 100, 64 * mib), 1024 * mib)
        var slabs = ((size + 2047) / 2048 + 127) / 128 * 128
        var areas: UInt64 = 1
        while areas < cpus { areas *= 2 }
        slabs = max(slabs, 128 * areas)
        var p: UInt64 = 1
        while p < slabs { p *= 2 }
        return p
    }

    static let gib: UInt64 = 1 << 30

    /// Pages of boot services memory `efi_free_boot_services()` gave back
    /// (in zone `kind`, or all), which the watermarks of the postcore
    /// initcall did not see on 7.0.
    static func bootServicesPages(_ k: GuestKernel, kind: ZoneKind? = nil) -> UInt64 {
        k.bootServices.freed.reduce(0) { sum, r in
            guard let kind else { return sum + r.size / 4096 }
            return sum + r.clamped(to: AddressRange(start: kind.range.lowerBound, end: kind.range.upperBound)).size / 4096
        }
    }
    static let sizingCases: [(UInt64, Int)] = [
        (4 * gib, 4), (1 * gib, 1), (2 * gib, 8), (8 * gib, 4), (16 * gib, 64), (64 * gib, 8),
        (1024 * gib, 256), (256 * mib, 1024), (3 * gib, 3),
    ]

    @Test(arguments: sizingCases)
    func swiotlbSizingFollowsTheSource(memory: UInt64, cpus: Int) {
        let s = SWIOTLBSizing(totalMemBytes: memory, possibleCPUs: cpus)
        #expect(s.slabs == Self.referenceSlabs(memory: memory, cpus: UInt64(cpus)), "\(ByteCount(memory)) \(cpus) CPUs")
    }

    /// The real TD log of the issue: "SWIOTLB bounce buffer size roundup to
    /// 256MB" on a 4 GiB TD; from 17 GiB up the 1 GiB cap. The buffer lies
    /// below 4 GiB and MemTotal loses it (and its slot array).
    @Test func fourGiBTDHasA256MiBBufferAndSixtyFourGiBOneGiB() throws {
        let small = try bootResult { $0.memory = 4 << 30 }
        let k = try #require(small.kernel)
        let buffer = try #require(k.reservation(.swiotlb))
        #expect(buffer.size == 256 * Self.mib && buffer.end <= 1 << 32)
        #expect(k.events.contains { $0.contains("SWIOTLB bounce buffer size roundup to 256MB") && $0.contains("(256MB)") })
        let big = try bootResult { $0.memory = 64 << 30 }
        let kb = try #require(big.kernel)
        #expect(kb.reservation(.swiotlb)?.size == 1024 * Self.mib)
        // The slot array: 24 bytes a 2 KiB slab, page-aligned.
        let slots = kb.reservations.filter { $0.kind == .swiotlb }.map(\.range.size)
        #expect(slots == [1024 * Self.mib, (1024 * Self.mib / 2048) * 24])
        #expect(kb.swiotlbBytes == 1024 * Self.mib)
    }

    // MARK: min_free_kbytes and watermarks

    /// `calculate_min_free_kbytes()`: int_sqrt(lowmem_kbytes × 16) clamped to [128, 262144].
    static func referenceMinFree(managedPages: UInt64) -> UInt64 {
        let x = managedPages * 4 * 16
        var r: UInt64 = 0
        while (r + 1) * (r + 1) <= x { r += max(1, (x / max(1, r + 1) - r) / 2) }
        while r * r > x { r -= 1 }
        return min(max(r, 128), 262144)
    }

    /// khugepaged's `set_recommended_min_free_kbytes()` at 4 GiB (three
    /// populated zones): (2 + 3 × 3) pageblocks × 3 zones = 16896 pages =
    /// 67584 kB, well under 5% of lowmem; `never` leaves the computed value.
    @Test func khugepagedRaisesMinFreeKbytesUnlessTHPIsNever() throws {
        for thp in [TransparentHugepage.madvise, .always] {
            let k = try #require(try bootResult { $0.memory = 4 << 30; $0.kernel.transparentHugepage = thp }.kernel)
            #expect(k.minFreeKbytesInEffect == 512 * 3 * 11 * 4, "\(thp)")
        }
        let off = try #require(try bootResult { $0.memory = 4 << 30; $0.kernel.transparentHugepage = .never }.kernel)
        // init_per_zone_wmark_min() (postcore) runs before boot services memory is freed (arch_initcall, 7.0).
        #expect(off.minFreeKbytesInEffect == Self.referenceMinFree(managedPages: off.totalManagedPages - Self.bootServicesPages(off)))
        #expect(off.minFreeKbytesInEffect < 67584)
    }

    /// The 5% cap: a 1 GiB guest has two populated zones (11264 pages
    /// recommended) and 5% of its free buffer pages (managed minus the high
    /// watermarks of the first setup) is less; under 512 MiB THP is off.
    @Test func theRecommendationIsCappedAtFivePercentAndSmallGuestsKeepTheirs() throws {
        let k = try #require(try bootResult { $0.memory = 1 << 30 }.kernel)
        // The first setup (postcore) sees the zones without the boot services
        // memory freed at arch_initcall; khugepaged (subsys) sees them with it.
        let postcore = k.zones.map { $0.managed - Self.bootServicesPages(k, kind: $0.kind) }
        let lowmem = postcore.reduce(0, +)
        let computed = Self.referenceMinFree(managedPages: lowmem)
        // Redo the first setup by hand to get the high watermarks the cap reads.
        let freeBuffer = zip(k.zones, postcore).reduce(UInt64(0)) { sum, zp in
            let (z, early) = zp
            let wmin = (computed / 4) * early / lowmem
            let high = wmin + 2 * max(wmin / 4, early * 10 / 10000)
            return sum + (z.managed > high ? z.managed - high : 0)
        }
        let expected = min(512 * 2 * 11, freeBuffer / 20) * 4
        #expect(expected < 512 * 2 * 11 * 4)
        #expect(k.minFreeKbytesInEffect == max(expected, computed))
        let tiny = try #require(try bootResult { $0.memory = 384 << 20; $0.bootAllocationBytes = 32 << 20 }.kernel)
        #expect(tiny.minFreeKbytesInEffect == Self.referenceMinFree(managedPages: tiny.totalManagedPages - Self.bootServicesPages(tiny)))
        #expect(!tiny.events.contains { $0.contains("raising min_free_kbytes") })
    }

    /// `__setup_per_zone_wmarks()` against every zone, with the default
    /// scale factor and a written one; promo is what `cond_accept_memory()`
    /// accepts to, so acceptance after boot follows it.
    @Test(arguments: [nil, UInt64(200)])
    func watermarksFollowSetupPerZoneWmarks(scale: UInt64?) throws {
        let k = try #require(try bootResult { $0.memory = 8 << 30; $0.kernel.watermarkScaleFactor = scale }.kernel)
        let pagesMin = k.minFreeKbytesInEffect / 4
        let lowmem = k.totalManagedPages
        for z in k.zones {
            let wmin = pagesMin * z.managed / lowmem
            let step = max(wmin / 4, z.managed * (scale ?? 10) / 10000)
            #expect(z.watermarkMin == wmin && z.watermarkLow == wmin + step)
            #expect(z.watermarkHigh == wmin + 2 * step && z.watermarkPromo == wmin + 3 * step)
        }
    }

    /// The scenario keys reach the kernel: a file with them boots as the flags do.
    @Test func scenarioKeysSetTheSysctls() throws {
        let f = try ScenarioFile.parse("guest: {memory: 2G}\nkernel: {transparent-hugepage: never, min-free-kbytes: 90000, watermark-scale-factor: 150}\n")
        #expect(f.scenario.kernel.transparentHugepage == .never)
        #expect(f.scenario.kernel.minFreeKbytes == 90000 && f.scenario.kernel.watermarkScaleFactor == 150)
        let yaml = ScenarioFile(scenario: f.scenario).yaml
        #expect(yaml.contains("transparent-hugepage: never") && yaml.contains("min-free-kbytes: 90000") && yaml.contains("watermark-scale-factor: 150"))
        let k = try #require(try f.run().boot?.kernel)
        #expect(k.minFreeKbytesInEffect == 90000)
        let normal = k.zones[2]
        #expect(normal.watermarkLow - normal.watermarkMin == max(normal.watermarkMin / 4, normal.managed * 150 / 10000))
    }

    /// A written vm.min_free_kbytes replaces even the khugepaged value
    /// (`min_free_kbytes_sysctl_handler()` sets `user_min_free_kbytes`).
    @Test func writtenMinFreeKbytesWins() throws {
        let k = try #require(try bootResult { $0.memory = 4 << 30; $0.kernel.minFreeKbytes = 4096 }.kernel)
        #expect(k.minFreeKbytesInEffect == 4096)
        let normal = k.zones[2]
        #expect(normal.watermarkMin == 1024 * normal.managed / k.totalManagedPages)
    }

    // MARK: lowmem_reserve, totalreserve_pages, MemAvailable

    /// `setup_per_zone_lowmem_reserve()` with ratios 256/256/32 and
    /// `calculate_totalreserve_pages()`, then `si_mem_available()`: at
    /// 64 GiB the reserve DMA32 keeps from user allocations is Normal/256
    /// (~248 MiB), which MemAvailable now leaves out.
    @Test func memAvailableLeavesOutTotalreservePages() throws {
        let r = try bootResult { $0.memory = 64 << 30 }
        let k = try #require(r.kernel)
        let (dma, dma32, normal) = (k.zones[0], k.zones[1], k.zones[2])
        // setup_per_zone_lowmem_reserve() ran at postcore, before boot services memory (all in DMA32 here) was freed.
        let dma32Early = dma32.managed - Self.bootServicesPages(k, kind: .dma32)
        #expect(Self.bootServicesPages(k, kind: .dma32) == Self.bootServicesPages(k))
        #expect(dma.lowmemReserve == [0, dma32Early / 256, (dma32Early + normal.managed) / 256,
                                      (dma32Early + normal.managed) / 256, (dma32Early + normal.managed) / 256])
        #expect(dma32.lowmemReserve == [0, 0, normal.managed / 256, normal.managed / 256, normal.managed / 256])
        #expect(normal.lowmemReserve == [0, 0, 0, 0, 0])
        let reserve = min(dma.lowmemReserve.max()! + dma.watermarkHigh, dma.managed)
            + min(dma32.lowmemReserve.max()! + dma32.watermarkHigh, dma32.managed) + min(normal.watermarkHigh, normal.managed)
        #expect(k.totalReservePages == reserve)
        #expect(normal.managed / 256 * 4096 > 240 * Self.mib)
        let lowSum = k.zones.reduce(UInt64(0)) { $0 + $1.watermarkLow } + 32  // the empty Movable zone's low watermark
        let cache = k.pageCachePages
        let expected = k.totalFreePages - reserve + cache - min(cache / 2, lowSum)
        #expect(k.memAvailablePages == expected)
        let memAvailable = k.meminfo.first { $0.0 == "MemAvailable" }?.1
        #expect(memAvailable == expected * 4)
    }

    /// `__zone_watermark_ok()` adds `lowmem_reserve[highest_zoneidx]`: a
    /// workload that eats all memory stops with DMA32 and DMA still holding
    /// their reserve for Movable allocations, not at their min watermark.
    @Test func fallbackIntoLowZonesHonoursLowmemReserve() throws {
        let r = try bootResult { $0.memory = 8 << 30; $0.workload = .touch(8 << 30) }
        let k = try #require(r.kernel)
        let (dma, dma32) = (k.zones[0], k.zones[1])
        #expect(dma32.lowmemReserve[ZoneKind.movableIndex] > 0)
        #expect(dma32.acceptedFree >= dma32.watermarkMin + dma32.lowmemReserve[ZoneKind.movableIndex])
        // DMA's reserve is larger than DMA itself: a user allocation never gets a page of it.
        #expect(dma.watermarkMin + dma.lowmemReserve[ZoneKind.movableIndex] > dma.managed)
        #expect(dma.acceptedFree == dma.managed)
        #expect(r.outcomeString.contains("clamped"))
    }

    // MARK: /proc/meminfo and /proc/zoneinfo

    /// `meminfo_proc_show()`: Unaccepted, then Balloon (6.15+), then the hugetlb block.
    @Test func meminfoLinesComeInTheKernelsOrder() throws {
        let new = try #require(try bootResult { $0.kernel.version = .v7_0 }.kernel)
        #expect(new.meminfo.map(\.0) == ["MemTotal", "MemFree", "MemAvailable", "Cached", "AnonPages", "Unaccepted", "Balloon", "Hugetlb"])
        let old = try #require(try bootResult { $0.kernel.version = .v6_12 }.kernel)
        #expect(old.meminfo.map(\.0) == ["MemTotal", "MemFree", "MemAvailable", "Cached", "AnonPages", "Unaccepted", "Hugetlb"])
    }

    /// `zoneinfo_show_print()`'s format, all five zones; an unpopulated zone
    /// stops after `protection:`; the spans are the RAM the zone holds.
    @Test func zoneinfoIsPrintedInTheKernelsFormat() throws {
        let r = try bootResult { $0.memory = 4 << 30 }
        let k = try #require(r.kernel)
        let text = k.procZoneinfo
        for name in ["     DMA", "   DMA32", "  Normal", " Movable", "  Device"] {
            #expect(text.contains("Node 0, zone \(name)\n  pages free     "), "\(name)")
        }
        let normal = k.zoneinfo[2]
        #expect(text.contains("        promo    \(normal.promo)\n        spanned  524288\n        present  524288\n        managed  \(normal.managed)\n"))
        #expect(text.contains("      nr_unaccepted \(normal.unacceptedPages)\n"))
        #expect(text.contains("Node 0, zone  Movable\n  pages free     0\n        boost    0\n        min      32\n"))
        #expect(text.hasSuffix("        protection: (0, 0, 0, 0, 0)\n"))
        // DMA: RAM below 16 MiB in the q35 map (0-640K, 1M-8M, the ACPI NVS holes left out), page 0 made
        // E820 reserved by trim_bios_range(): spanned from 0x1000, present 159 + 3840 - 8 - 240 pages;
        // reserve_real_mode()'s memblock_reserve(0, SZ_1M) keeps the 159 below 640K from the allocator.
        #expect(k.zoneinfo[0].spanned == 4095 && k.zoneinfo[0].present == 159 + 3840 - 8 - 240)
        #expect(k.zoneinfo[0].managed == 3840 - 8 - 240)
        #expect(r.json.serialized().contains("\"zoneinfo\": {\n    \"DMA\": {\n      \"free_pages\": 3592,"))
        #expect(r.text.contains("/proc/zoneinfo"))
    }
}
