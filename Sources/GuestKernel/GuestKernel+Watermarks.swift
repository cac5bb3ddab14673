import MemoryModel

extension GuestKernel {
    /// The watermarks from boot to user space, in the kernel's order:
    ///
    /// 1. `init_per_zone_wmark_min()` (postcore initcall):
    ///    `calculate_min_free_kbytes()` from `nr_free_buffer_pages()` (the
    ///    zones' managed pages, watermarks still zero), then
    ///    `setup_per_zone_wmarks()` and `setup_per_zone_lowmem_reserve()`.
    /// 2. `hugepage_init()` (subsys initcall): on a guest of 512 MiB or more
    ///    (`totalram_pages() < MB_TO_PAGES(512)` turns THP off) with THP
    ///    `always` or `madvise`, `start_stop_khugepaged()` calls
    ///    `set_recommended_min_free_kbytes()`: two pageblocks a populated zone
    ///    up to Normal, plus MIGRATE_PCPTYPES² more, capped at 5% of
    ///    `nr_free_buffer_pages()` (managed minus the high watermarks just
    ///    set), raising `min_free_kbytes` if that is more.
    /// 3. The `vm.min_free_kbytes` and `vm.watermark_scale_factor` the
    ///    scenario writes (a `sysctl.vm.` boot parameter, applied by
    ///    `do_sysctl_args()` after the initcalls, or systemd-sysctl before
    ///    anything else in user space): each handler recomputes the
    ///    watermarks; a written `min_free_kbytes` replaces the raised one.
    ///
    /// `cond_accept_memory()` accepts up to the promo (6.12+) or high
    /// watermark these leave, so acceptance after boot follows them.
    public func initWatermarks() {
        let defaultScale: UInt64 = 10
        var minKB = minFreeKbytes(lowmemKbytes: nrFreeBufferPages * 4)
        setupPerZoneWatermarks(minFreeKbytes: minKB, scaleFactor: defaultScale)
        setupPerZoneLowmemReserve()
        watermarksReadySet()
        events.append("init_per_zone_wmark_min(): min_free_kbytes=\(minKB)")
        // arch_initcall, between the postcore and subsys initcalls (a4b0bf6a40f3, 7.0).
        freeBootServicesLate()
        if let raised = recommendedMinFreeKbytes(current: minKB) {
            events.append("set_recommended_min_free_kbytes(): raising min_free_kbytes from \(minKB) to \(raised) to help transparent hugepage allocations")
            minKB = raised
            setupPerZoneWatermarks(minFreeKbytes: minKB, scaleFactor: defaultScale)
        }
        if let written = config.minFreeKbytes {
            minKB = written
            events.append("sysctl vm.min_free_kbytes=\(written)")
        }
        if let scale = config.watermarkScaleFactor { events.append("sysctl vm.watermark_scale_factor=\(scale)") }
        if config.minFreeKbytes != nil || config.watermarkScaleFactor != nil {
            setupPerZoneWatermarks(minFreeKbytes: minKB, scaleFactor: config.watermarkScaleFactor ?? defaultScale)
        }
        minFreeKbytesInEffect = minKB
    }

    /// `nr_free_buffer_pages()`: over the zones a GFP_USER allocation may use
    /// (all three here), managed pages above the high watermark.
    public var nrFreeBufferPages: UInt64 {
        zones.reduce(0) { $0 + ($1.managed > $1.watermarkHigh ? $1.managed - $1.watermarkHigh : 0) }
    }

    /// `set_recommended_min_free_kbytes()` when khugepaged starts at boot:
    /// the raised `min_free_kbytes`, or nil when THP is off (`never`, or a
    /// guest under 512 MiB) or the recommendation is not above `current`.
    func recommendedMinFreeKbytes(current: UInt64) -> UInt64? {
        guard config.transparentHugepage.startsKhugepaged, totalManagedPages >= (512 << 20) / 4096 else { return nil }
        // pageblock_nr_pages (order 9 with THP on x86-64), MIGRATE_PCPTYPES.
        let pageblock: UInt64 = 512, pcpTypes: UInt64 = 3
        // for_each_populated_zone(): every node's populated zones up to Movable.
        let nrZones = UInt64(zones.indices.filter { presentPages(zone: $0) > 0 }.count)
        var recommended = pageblock * nrZones * 2 + pageblock * nrZones * pcpTypes * pcpTypes
        // "don't ever allow to reserve more than 5% of the lowmem"
        recommended = min(recommended, nrFreeBufferPages / 20)
        let kb = recommended * 4
        return kb > current ? kb : nil
    }

    /// `__setup_per_zone_wmarks()` over the three lowmem zones (the empty
    /// Movable and Device zones take no share of `lowmem_pages`).
    func setupPerZoneWatermarks(minFreeKbytes: UInt64, scaleFactor: UInt64) {
        let lowmem = totalManagedPages
        for i in zones.indices { zones[i].setWatermarks(pagesMin: minFreeKbytes >> 2, lowmemPages: lowmem, scaleFactor: scaleFactor) }
    }

    /// `setup_per_zone_lowmem_reserve()`: for each node (`for_each_online_pgdat`),
    /// a zone keeps from an allocation allowed up to zone j the managed
    /// pages of the node's zones above it up to j, divided by its
    /// `sysctl_lowmem_reserve_ratio`.
    func setupPerZoneLowmemReserve() {
        let kinds = ZoneKind.allCases.count
        for n in 0..<numa.nodeCount {
            var managed = zones[(n * kinds)..<((n + 1) * kinds)].map(\.managed)
            managed += Array(repeating: 0, count: ZoneKind.maxNrZones - managed.count)
            for i in 0..<kinds {
                let ratio = ZoneKind.lowmemReserveRatio[i]
                let clear = ratio == 0 || managed[i] == 0
                var above: UInt64 = 0
                for j in 0..<ZoneKind.maxNrZones {
                    if j <= i { zones[n * kinds + i].lowmemReserve[j] = 0; continue }
                    above += managed[j]
                    zones[n * kinds + i].lowmemReserve[j] = clear ? 0 : above / ratio
                }
            }
        }
    }

    /// `totalreserve_pages` (`calculate_totalreserve_pages()`): each zone's
    /// high watermark plus its largest `lowmem_reserve[]`, capped at its
    /// managed pages. The empty zones add nothing (capped at zero).
    public var totalReservePages: UInt64 {
        zones.indices.reduce(0) { $0 + zones[$1].reservePages(index: $1 % ZoneKind.allCases.count) }
    }

    // MARK: Zone spans

    /// `zone->present_pages`: memblock memory in the zone (E820 RAM and the
    /// unaccepted table `reserve_unaccepted()` added with `memblock_add()`),
    /// over every node.
    public func presentPages(_ kind: ZoneKind) -> UInt64 {
        memblockMemory.reduce(0) { $0 + $1.clamped(to: AddressRange(start: kind.range.lowerBound, end: kind.range.upperBound)).bytes.frames() }
    }

    /// `zone->present_pages` of zone `zi` (one node's zone of one kind).
    public func presentPages(zone zi: Int) -> UInt64 {
        memblockMemory.flatMap(zoneParts).filter { $0.zone == zi }.reduce(0) { $0 + $1.range.bytes.frames() }
    }

    /// `zone->spanned_pages`: from the zone's first to its last memblock
    /// page (the node's span clamped to the zone's range).
    public func spannedPages(_ kind: ZoneKind) -> UInt64 {
        let zoneRange = AddressRange(start: kind.range.lowerBound, end: kind.range.upperBound)
        let parts = memblockMemory.map { $0.clamped(to: zoneRange) }.filter { !$0.isEmpty }
        guard let first = parts.map(\.start).min(), let last = parts.map(\.end).max() else { return 0 }
        return ByteCount(last - first).frames()
    }

    /// `zone->spanned_pages` of zone `zi`: its node's memblock memory of its kind, first to last page.
    public func spannedPages(zone zi: Int) -> UInt64 {
        let parts = memblockMemory.flatMap(zoneParts).filter { $0.zone == zi }.map(\.range)
        guard let first = parts.map(\.start).min(), let last = parts.map(\.end).max() else { return 0 }
        return ByteCount(last - first).frames()
    }

    /// memblock.memory: E820 RAM plus the table `reserve_unaccepted()`
    /// added (it lies in ACPI reclaim memory, outside RAM).
    var memblockMemory: [AddressRange] {
        guard let t = reservation(.unacceptedTable) else { return ram }
        return ram + [t].subtracting(ram)
    }
}
