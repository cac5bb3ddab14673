public import CoCoGuest
public import CostModel
public import Firmware
public import MemoryModel

/// How memory hot-added to a confidential guest reaches the page allocator
/// (issue 16 §4). Mainline is the only behaviour any released kernel has;
/// the others are the series proposed in 2025-26, none merged.
public enum HotplugAcceptance: String, Sendable, CaseIterable {
    /// Mainline (mm/memory_hotplug.c): `online_pages()` →
    /// `generic_online_page()` → `__free_pages_core(MEMINIT_HOTPLUG)`. The
    /// unaccepted bitmap covers only boot memory, so
    /// `page_contains_unaccepted()` is false and the pages go to the buddy
    /// allocator as if accepted; the first touch of one is fatal (TDX: an
    /// access to a PENDING page, "SEPT entry in PENDING state"; SNP: #VC
    /// 0x404 on a page not validated).
    case mainline = "none"
    /// AMD's RFC "mm: Add support for unaccepted memory hotplug" (Pratik
    /// Sampat, Nov 2025, patches 2 and 4 of 4): `add_memory_resource()`
    /// calls `accept_hotplug_memory()`, whose `extend_unaccepted_bitmap()`
    /// grows the bitmap to cover the range and sets its bits; with
    /// `accept_memory=eager` it accepts the range at once, else the blocks go
    /// to the zone's unaccepted list when onlined. `try_remove_memory()`
    /// calls `unaccept_hotplug_memory()`: `arch_unaccept_memory()` on every
    /// accepted unit (SNP: page-state change to shared; any other platform:
    /// `panic("Cannot accept memory: unknown platform")`).
    case amdRFC = "amd-rfc"
    /// The TDX RFC v2 "Support memory hotplug/unplug for TDX CoCo guests"
    /// (Zhenzhong Duan, June 2026, six patches): the EFI stub sizes the
    /// table over the SRAT's hot-pluggable ranges and marks them unaccepted
    /// (`StubHotplugAwareness.sratHotpluggable`); a second "plugged" bitmap
    /// (version 2 table) says which units the VMM populated, set by
    /// `coco_set_plugged_bitmap()` on hot-add (DIMM) or plug (virtio-mem);
    /// `accept_memory()` accepts only plugged units. On removal
    /// `unaccept_memory()` releases plugged, accepted units
    /// (`arch_unaccept_memory()`: TDX `TDG.MEM.PAGE.RELEASE` when the
    /// module offers it, else nothing; any other platform: panic) and sets
    /// their bits again; then the plugged bits are cleared.
    case tdxRFCv2 = "tdx-rfc-v2"
    /// A kernel that reads edk2's proposed `EFI_MEMORY_UHP` (the prototype
    /// the edk2 RFC links, pratiksampat/linux `unaccepted_memory_hotplug-attr`,
    /// as the RFC describes it): the stub sizes the table over UHP ranges
    /// without making them RAM (`StubHotplugAwareness.uhpAware`); hot-add
    /// sets the range's bits and accepts now (eager) or on use (lazy).
    /// Needs a firmware that marks the window (`--uhp`). Its hot-remove path
    /// is not described in the RFC and is not modelled.
    case uhp

    /// The EFI stub's part of the series.
    public func stubAwareness(hotplugWindow: AddressRange?) -> StubHotplugAwareness {
        switch self {
        case .mainline, .amdRFC: .none
        case .tdxRFCv2: .sratHotpluggable(hotplugWindow.map { [$0] } ?? [])
        case .uhp: .uhpAware
        }
    }
}

/// The two ways memory is hot-plugged into a guest.
public enum MemoryDeviceKind: String, Sendable, CaseIterable {
    /// An ACPI memory device (QEMU `pc-dimm`): `acpi_memory_device_add()` →
    /// `add_memory()`, onlined whole (auto-online), removed whole by an
    /// ACPI eject (`offline_and_remove_memory()`), after which QEMU deletes
    /// the memslot and its memory backend.
    case dimm
    /// virtio-mem (drivers/virtio/virtio_mem.c): one device region, plugged
    /// and unplugged in device blocks as the host changes its requested
    /// size; onlined through `virtio_mem_online_page_cb()`, which hands the
    /// plugged parts to `generic_online_page()`. Unplugging offlines the
    /// blocks and sends VIRTIO_MEM_REQ_UNPLUG; QEMU discards only the shared
    /// memory behind them (`ram_block_discard_range()`), not the
    /// guest_memfd, so private pages stay mapped (the March 2026 thread).
    case virtioMem = "virtio-mem"
}

/// A hot-added range still present in the guest.
public struct HotplugBlock: Sendable, Equatable {
    public var range: AddressRange
    public var device: MemoryDeviceKind
    public init(range: AddressRange, device: MemoryDeviceKind) { self.range = range; self.device = device }
}

/// What a hot-add or hot-remove did to the guest.
public struct HotplugResult: Sendable, Equatable {
    /// The guest's fate (a panic in the remove path kills it).
    public var outcome: AcceptOutcome = .ok
    /// Set when the kernel refused the operation (`-EIO`, `-EINVAL`,
    /// `-EBUSY`): the memory was not added or not removed.
    public var refused: String? = nil
    /// Bytes accepted by the operation itself.
    public var acceptedBytes: UInt64 = 0
    public init() {}
}

extension GuestKernel {
    /// The zone hot-added memory above 4 GiB goes to (auto-online's
    /// `default_kernel_zone_for_pfn()`: ZONE_NORMAL).
    static let hotplugZone = 2

    /// Pages of zone Normal's free lists that are hot-added and never accepted.
    public var unacceptedInBuddyPages: UInt64 { unacceptedInBuddy.reduce(0) { $0 + $1.size / 4096 } }

    /// `add_memory_resource()` and `online_pages()` for a range the VMM has
    /// just plugged, with the series `config.hotplugAcceptance` names.
    /// Runs on vCPU 0 (the ACPI hotplug work item or virtio-mem's workqueue).
    /// - Complexity: O(runs of the bitmap) and one accept per 2 MiB unit for an eager accept.
    public func hotAdd(_ r: AddressRange, device: MemoryDeviceKind, clock: inout PhaseClock) -> HotplugResult {
        var result = HotplugResult()
        let accepted0 = unaccepted?.acceptedBytes ?? 0
        defer { result.acceptedBytes = (unaccepted?.acceptedBytes ?? 0) - accepted0 }
        let what = "\(device.rawValue) \(r) (\(ByteCount(r.size)))"
        switch config.hotplugAcceptance {
        case .mainline:
            onlineUntracked(r, device: device, what: what)
            return result
        case .amdRFC:
            // extend_unaccepted_bitmap(): no table, or one without a unit size, is -EIO.
            guard let u = unaccepted else {
                result.refused = "accept_hotplug_memory(): extend_unaccepted_bitmap() returned -EIO (no unaccepted table): \(what) not added"
                events.append(result.refused!)
                return result
            }
            let grew = u.table.coveredEnd < alignUp(r.end, u.table.unitSize)
            u.table = u.table.extended(toCover: r.end)
            // bitmap_set(start / unit_size, (end - start) / unit_size) with end rounded up.
            u.table.bitmap.set(u.table.unit(containing: r.start)..<u.table.unit(roundingUp: r.end))
            events.append("accept_hotplug_memory(): \(what) marked unaccepted" + (grew ? "; the bitmap grew to \(u.table.size) bytes (kzalloc'd copy of the firmware's)" : ""))
            if !config.lazyAccept {
                let o = u.acceptMemory(start: r.start, size: r.size, vcpu: 0, clock: &clock)
                if o != .ok { result.outcome = o; return result }
            }
        case .tdxRFCv2:
            guard let u = unaccepted, u.table.plugged != nil else {
                // coco_set_plugged_bitmap() without a table returns 0: nothing tracks the range.
                events.append("coco_set_plugged_bitmap(): no unaccepted table, nothing to mark")
                onlineUntracked(r, device: device, what: what)
                return result
            }
            let unit = u.table.unitSize
            // coco_hotplug_range_check(): unit-aligned and inside the table, else -EINVAL.
            guard r.start % unit == 0, r.size % unit == 0, r.start >= u.table.physBase.value, r.end <= u.table.coveredEnd else {
                result.refused = "coco_set_plugged_bitmap() returned -EINVAL: \(what) is not inside the unaccepted table (\(u.table.physBase)-\(GuestPhysicalAddress(u.table.coveredEnd))): not added"
                events.append(result.refused!)
                return result
            }
            u.table.plugged!.set(u.table.unit(containing: r.start)..<u.table.unit(containing: r.end))
            events.append("coco_set_plugged_bitmap(): \(what) plugged")
        case .uhp:
            guard let u = unaccepted, r.start >= u.table.physBase.value, r.end <= u.table.coveredEnd else {
                events.append("\(what) lies outside the unaccepted table (no EFI_MEMORY_UHP range covered it)")
                onlineUntracked(r, device: device, what: what)
                return result
            }
            u.table.bitmap.set(u.table.unit(containing: r.start)..<u.table.unit(roundingUp: r.end))
            events.append("UHP hot-add: \(what) marked unaccepted")
            if !config.lazyAccept {
                let o = u.acceptMemory(start: r.start, size: r.size, vcpu: 0, clock: &clock)
                if o != .ok { result.outcome = o; return result }
            }
        }
        result.outcome = onlineTracked(r, device: device, what: what, clock: &clock)
        return result
    }

    /// Mainline `online_pages()`: the range is managed and free, in the
    /// buddy allocator at the tail of its free lists (`FPI_TO_TAIL`), never
    /// accepted. `init_per_zone_wmark_min()` then recomputes the watermarks.
    func onlineUntracked(_ r: AddressRange, device: MemoryDeviceKind, what: String) {
        let pages = r.size / 4096
        zones[Self.hotplugZone].managed += pages
        zones[Self.hotplugZone].freePages += pages
        unacceptedInBuddy.append(r)
        hotplugged.append(HotplugBlock(range: r, device: device))
        events.append("online_pages(): \(what) to the buddy allocator by generic_online_page(); page_contains_unaccepted() is false outside the bitmap, so nothing accepts it")
        initWatermarks()
    }

    /// `online_pages()` when the bitmap tracks the range: each MAX_ORDER
    /// block through `__free_pages_core()`, which finds it unaccepted and
    /// queues it on `zone->unaccepted_pages` (lazy) or accepts it now
    /// (`accept_memory=eager`: `__free_unaccepted()` declines); blocks
    /// already accepted go to the buddy allocator.
    func onlineTracked(_ r: AddressRange, device: MemoryDeviceKind, what: String, clock: inout PhaseClock) -> AcceptOutcome {
        let pages = r.size / 4096
        let z = Self.hotplugZone
        zones[z].managed += pages
        hotplugged.append(HotplugBlock(range: r, device: device))
        defer { initWatermarks() }
        guard let u = unaccepted, u.rangeContainsUnaccepted(start: r.start, size: r.size) else {
            zones[z].freePages += pages
            events.append("online_pages(): \(what) already accepted, to the buddy allocator")
            return .ok
        }
        let blocks = r.size / (4 << 20)
        if config.lazyAccept {
            zones[z].queueUnaccepted(first: GuestPhysicalAddress(r.start).frame, count: blocks)
            events.append("online_pages(): \(what) queued on zone Normal's unaccepted list (\(blocks) blocks), accepted on demand")
            return .ok
        }
        let o = u.acceptBlocks(firstBlockAddress: r.start, count: blocks, vcpu: 0, clock: &clock)
        if o == .ok {
            zones[z].freePages += pages
            events.append("online_pages(): \(what) accepted by __free_pages_core() (accept_memory=eager)")
        }
        return o
    }

    /// The allocator hands out `take` pages of zone Normal: accepted free
    /// pages first, then (mainline) the never-accepted hot-added ones at the
    /// tail of the free lists. Touching the first of those is the guest's
    /// first access to a page nobody accepted: the platform decides
    /// (`GuestPlatform.touch`, fatal on TDX and SNP). Pages handed out
    /// without being touched (a hugetlb pool) leave the list unaccepted.
    /// - Complexity: O(ranges consumed).
    func handOutHotplugged(_ take: UInt64, zone z: Zone, touch: Bool, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        let mines = unacceptedInBuddyPages
        guard mines > 0 else { return .ok }
        let safe = z.acceptedFree > mines ? z.acceptedFree - mines : 0
        guard take > safe else { return .ok }
        if touch, let first = unacceptedInBuddy.first {
            let gfn = GuestPhysicalAddress(first.start).frame
            let (ops, o) = platform.touch(gfn: gfn, vcpu: vcpu)
            clock.charge(ops, vcpu: vcpu, costs: costs)
            if o != .ok {
                if case .terminated(let why) = o { events.append("first touch of hot-added memory at \(gfn.address), never accepted: \(why)") }
                return o
            }
        }
        var left = take - safe
        while left > 0, !unacceptedInBuddy.isEmpty {
            let pages = unacceptedInBuddy[0].size / 4096
            if pages <= left { left -= pages; unacceptedInBuddy.removeFirst() }
            else { unacceptedInBuddy[0].start += left * 4096; left = 0 }
        }
        return .ok
    }

    /// The vCPU the model runs hot-plug and hot-remove on: the ACPI
    /// notification's work (`acpi_hotplug_work_fn()` on `kacpi_hotplug_wq`:
    /// `acpi_scan_hot_remove()` offlines the memory, then evaluates `_EJ0`,
    /// whose write to the hotplug register is the eject) and the accepts it
    /// makes. The kernel may run that work on any CPU; the model takes the BSP.
    public static let hotplugVCPU = 0

    /// `offline_and_remove_memory()` for a range going away (an ACPI eject
    /// of a DIMM, a virtio-mem unplug), with the series'
    /// remove path. Offlining isolates the range: blocks still on the
    /// unaccepted list are accepted first (`set_migratetype_isolate()`'s
    /// `accept_page()`, 6.12+; older kernels are not told apart), pages in
    /// use migrate to free pages elsewhere, which must exist (else
    /// `-EBUSY`). The model does not place allocations, so the range's share
    /// of them is not known; the check is that the zone keeps enough free
    /// pages without it.
    /// - Complexity: O(list runs + bitmap runs in the range).
    public func hotRemove(_ r: AddressRange, device: MemoryDeviceKind, clock: inout PhaseClock) -> HotplugResult {
        var result = HotplugResult()
        let accepted0 = unaccepted?.acceptedBytes ?? 0
        defer { result.acceptedBytes = (unaccepted?.acceptedBytes ?? 0) - accepted0 }
        let what = "\(device.rawValue) \(r) (\(ByteCount(r.size)))"
        if config.hotplugAcceptance == .uhp {
            result.refused = "hot-remove with the UHP prototype is not modelled (its remove path is not described): \(what) stays"
            events.append(result.refused!)
            return result
        }
        let z = Self.hotplugZone
        let pages = r.size / 4096
        let frames = r.framesCovering
        // Isolation: the range's blocks on the unaccepted list are accepted (accept_page()).
        let listed = zones[z].removeUnaccepted(in: frames)
        let listedPages = listed.reduce(0) { $0 + $1.count } * Zone.blockPages
        // Pages in use migrate to free pages anywhere a movable allocation may go (any zone).
        let freeAccepted = zones.reduce(0) { $0 + $1.acceptedFree }
        guard freeAccepted >= pages - listedPages else {
            for e in listed { zones[z].queueUnaccepted(first: e.first, count: e.count) }
            result.refused = "offline_pages(): -EBUSY, \(freeAccepted) free accepted pages for the \(pages) of \(what) to migrate to: not removed"
            events.append(result.refused!)
            return result
        }
        if let u = unaccepted {
            for e in listed {
                let o = u.acceptBlocks(firstBlockAddress: e.first.address.value, count: e.count, vcpu: Self.hotplugVCPU, clock: &clock)
                if o != .ok { result.outcome = o; return result }
            }
        }
        if listedPages > 0 { events.append("offline_pages(): \(ByteCount(listedPages * 4096)) of \(what) still unaccepted, accepted to isolate it") }
        // Never-accepted buddy pages of the range leave with it, untouched.
        unacceptedInBuddy = unacceptedInBuddy.subtracting([r])
        zones[z].managed -= pages
        // The range's free pages leave with it; its pages in use take free pages elsewhere, Normal's first.
        var owed = pages - listedPages
        // Node 0's zonelist (the DIMM's node): Normal, DMA32, DMA, then the other nodes'.
        for zi in zonelist(node: zones[z].node) where owed > 0 {
            let take = min(owed, zones[zi].acceptedFree)
            zones[zi].freePages -= take
            owed -= take
        }
        hotplugged = hotplugged.flatMap { b in [b.range].subtracting([r]).map { HotplugBlock(range: $0, device: b.device) } }
        events.append("offline_pages(): \(what) offlined")
        result.outcome = unacceptRemoved(r, what: what)
        initWatermarks()
        return result
    }

    /// The series' hot-remove step on the table and the platform.
    func unacceptRemoved(_ r: AddressRange, what: String) -> AcceptOutcome {
        guard let u = unaccepted, r.start >= u.table.physBase.value, r.start < u.table.coveredEnd else { return .ok }
        let w = u.table.unit(containing: r.start)..<u.table.unit(roundingUp: min(r.end, u.table.coveredEnd))
        // Units the guest accepted: clear in the unaccepted bitmap (and plugged, for v2).
        var accepted = w.complement(of: u.table.bitmap.setRuns(in: w))
        if let p = u.table.plugged { accepted = accepted.flatMap { p.setRuns(in: $0) } }
        let acceptedUnits: UInt64 = accepted.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) }
        switch config.hotplugAcceptance {
        case .mainline, .uhp:
            return .ok
        case .amdRFC:
            // unaccept_hotplug_memory(): arch_unaccept_memory() per accepted unit; bits stay clear.
            guard acceptedUnits > 0 else { return .ok }
            guard platform.kind == .snp else {
                return .terminated("kernel panic: Cannot accept memory: unknown platform (arch_unaccept_memory() from unaccept_hotplug_memory(), the AMD RFC's hot-remove, on TDX)")
            }
            for run in accepted { (platform as? SNPGuestPlatform)?.makeSharedForHotRemove(u.table.addresses(of: run)) }
            events.append("unaccept_hotplug_memory(): \(acceptedUnits) units of \(what) made shared (SNP page-state change, SNP_PSC_SHARED_TO_SHARED; not charged)")
            return .ok
        case .tdxRFCv2:
            if acceptedUnits > 0 {
                guard platform.kind == .tdx else {
                    return .terminated("kernel panic: Cannot unaccept memory: unknown platform (arch_unaccept_memory() from unaccept_memory(), the TDX RFC v2's hot-remove, on SNP)")
                }
                // tdx_unaccept_memory(): without TDCS_CONFIG_PAGE_RELEASE it returns true at once.
                events.append("unaccept_memory(): \(acceptedUnits) accepted units of \(what); the TDX module model has no TDG.MEM.PAGE.RELEASE (TDCS_CONFIG_PAGE_RELEASE clear), so tdx_unaccept_memory() releases nothing and the host's removal is what frees them")
                for run in accepted { u.table.bitmap.set(run) }
            }
            let units = u.table.unit(containing: r.start)..<u.table.unit(containing: r.end)
            u.table.plugged?.clear(units)
            return .ok
        }
    }
}

extension Zone {
    /// Takes the blocks of `frames` off `zone->unaccepted_pages` wherever they
    /// sit in the list (page isolation of a range being offlined), with the
    /// accounting of `takeUnaccepted()`. Returns them.
    /// - Complexity: O(list runs).
    mutating func removeUnaccepted(in frames: Range<GuestFrameNumber>) -> [(first: GuestFrameNumber, count: UInt64)] {
        var kept: [(first: GuestFrameNumber, count: UInt64)] = []
        var taken: [(first: GuestFrameNumber, count: UInt64)] = []
        for e in unacceptedList[listHead...] {
            let run = Range(start: e.first, count: e.count * Self.blockPages)
            let lo = max(run.lowerBound, frames.lowerBound), hi = min(run.upperBound, frames.upperBound)
            guard lo < hi else { kept.append(e); continue }
            if run.lowerBound < lo { kept.append((run.lowerBound, (lo - run.lowerBound) / Self.blockPages)) }
            taken.append((lo, (hi - lo) / Self.blockPages))
            if hi < run.upperBound { kept.append((hi, (run.upperBound - hi) / Self.blockPages)) }
        }
        unacceptedList = kept
        listHead = 0
        let n = taken.reduce(0) { $0 + $1.count }
        unacceptedPages -= n * Self.blockPages
        freePages -= n * Self.blockPages
        return taken
    }
}

extension Range where Bound == UnacceptedUnit {
    /// The parts of this range not covered by `runs` (sorted, disjoint, inside it).
    func complement(of runs: [Range<UnacceptedUnit>]) -> [Range<UnacceptedUnit>] {
        var out: [Range<UnacceptedUnit>] = []
        var at = lowerBound
        for r in runs {
            if at < r.lowerBound { out.append(at..<r.lowerBound) }
            at = Swift.max(at, r.upperBound)
        }
        if at < upperBound { out.append(at..<upperBound) }
        return out
    }
}
