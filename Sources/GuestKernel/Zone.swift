public import MemoryModel

/// The zones of an x86-64 node the model fills. A distribution kernel
/// (CONFIG_ZONE_DMA, CONFIG_ZONE_DMA32, CONFIG_ZONE_DEVICE: Ubuntu, Fedora,
/// RHEL) has MAX_NR_ZONES = 5: these three, then ZONE_MOVABLE (empty without
/// `movablecore=`/`kernelcore=`) and ZONE_DEVICE (empty without pmem or
/// HMM), which `/proc/zoneinfo` and every `lowmem_reserve[]` still list.
public enum ZoneKind: String, Sendable, CaseIterable {
    case dma = "DMA", dma32 = "DMA32", normal = "Normal"
    /// MAX_NR_ZONES of a distribution x86-64 kernel.
    public static let maxNrZones = 5
    /// The empty zones after Normal, by `zone_names[]`.
    public static let emptyZoneNames = ["Movable", "Device"]
    /// ZONE_MOVABLE's index: `gfp_zone(GFP_HIGHUSER_MOVABLE)`, the highest
    /// zone a user-space page may come from.
    public static let movableIndex = 3
    /// `sysctl_lowmem_reserve_ratio[]` (mm/page_alloc.c): DMA 256, DMA32 256,
    /// Normal 32, Movable 0 (ZONE_DEVICE has no entry and stays 0).
    public static let lowmemReserveRatio: [UInt64] = [256, 256, 32, 0, 0]
    public var range: Range<UInt64> {
        switch self {
        case .dma: 0..<(16 << 20)
        case .dma32: (16 << 20)..<(1 << 32)
        case .normal: (1 << 32)..<UInt64.max
        }
    }
}

/// One `struct zone`'s accounting: pages are 4 KiB, blocks 4 MiB
/// (MAX_ORDER_NR_PAGES = 1024).
public struct Zone: Sendable {
    public let kind: ZoneKind
    /// The node (`zone->zone_pgdat->node_id`).
    public let node: Int
    /// `managed_pages` (MemTotal): includes unaccepted blocks.
    public var managed: UInt64 = 0
    /// `NR_FREE_PAGES` (MemFree): includes unaccepted blocks.
    public var freePages: UInt64 = 0
    /// `NR_UNACCEPTED`.
    public var unacceptedPages: UInt64 = 0
    /// `NR_ZONE_INACTIVE_FILE` + `NR_ZONE_ACTIVE_FILE`: page-cache pages of
    /// this zone on the node's file LRU. Every page cache the model grows is
    /// clean (files read, never written), so all of it is reclaimable.
    public var filePages: UInt64 = 0
    /// `MAX_ORDER_NR_PAGES`: pages in one block of `unaccepted_pages`.
    public static let blockPages: UInt64 = 1024

    /// `zone->unaccepted_pages`, FIFO (`list_add_tail` / `list_first_entry`),
    /// kept as runs of consecutive 4 MiB blocks: (first frame of the first
    /// block, whose struct page is the list entry; number of blocks).
    public var unacceptedList: [(first: GuestFrameNumber, count: UInt64)] = []
    var listHead = 0
    /// `_watermark[WMARK_MIN/LOW/HIGH/PROMO]`; zero until `init_per_zone_wmark_min()`.
    public var watermarkMin: UInt64 = 0, watermarkLow: UInt64 = 0, watermarkHigh: UInt64 = 0, watermarkPromo: UInt64 = 0
    /// `lowmem_reserve[MAX_NR_ZONES]`: pages this zone keeps from an
    /// allocation whose highest allowed zone is the index
    /// (`setup_per_zone_lowmem_reserve()`); zero until watermarks are set.
    public var lowmemReserve: [UInt64] = Array(repeating: 0, count: ZoneKind.maxNrZones)

    public init(kind: ZoneKind, node: Int = 0) { self.kind = kind; self.node = node }

    /// Free pages that are accepted (on buddy lists).
    public var acceptedFree: UInt64 { freePages - unacceptedPages }
    public var hasUnaccepted: Bool { unacceptedPages > 0 }

    /// `__free_unaccepted()` for `count` consecutive blocks.
    mutating func queueUnaccepted(first: GuestFrameNumber, count: UInt64) {
        guard count > 0 else { return }
        if let last = unacceptedList.last, unacceptedList.count > listHead,
           last.first + last.count * Self.blockPages == first {
            unacceptedList[unacceptedList.count - 1].count += count
        } else {
            unacceptedList.append((first, count))
        }
        freePages += 1024 * count
        unacceptedPages += 1024 * count
    }

    /// Takes up to `n` blocks from the head of the list (`list_del` of the
    /// first entries, accounting moved off NR_UNACCEPTED but not yet freed).
    mutating func takeUnaccepted(_ n: UInt64) -> [(first: GuestFrameNumber, count: UInt64)] {
        var out: [(GuestFrameNumber, UInt64)] = []
        var left = n
        while left > 0, listHead < unacceptedList.count {
            let e = unacceptedList[listHead]
            let k = min(left, e.count)
            out.append((e.first, k))
            if k == e.count { listHead += 1 } else {
                unacceptedList[listHead] = (e.first + k * Self.blockPages, e.count - k)
            }
            left -= k
        }
        let taken = n - left
        unacceptedPages -= 1024 * taken
        freePages -= 1024 * taken
        if listHead > 64 && listHead * 2 > unacceptedList.count {
            unacceptedList.removeFirst(listHead); listHead = 0
        }
        return out
    }

    public var unacceptedBlocks: UInt64 { unacceptedPages / 1024 }

    /// The 4 MiB blocks still on `zone->unaccepted_pages`, in list order:
    /// (first frame, number of consecutive blocks).
    public var pendingUnacceptedBlocks: ArraySlice<(first: GuestFrameNumber, count: UInt64)> { unacceptedList[listHead...] }

    /// `__setup_per_zone_wmarks()` for this (lowmem) zone's share of
    /// `pagesMin`: min in proportion to the zone's managed pages, then low,
    /// high and promo each a step above the last, the step being a quarter of
    /// min or `watermark_scale_factor`/10000 of the zone, whichever is more
    /// (`mult_frac()`, exact in 64 bits). An empty zone gets zeros.
    mutating func setWatermarks(pagesMin: UInt64, lowmemPages: UInt64, scaleFactor: UInt64) {
        // The product can pass 64 bits (vm.min_free_kbytes up to INT_MAX on a
        // 4 PiB guest); the quotient cannot, since managed <= lowmemPages.
        let tmp = lowmemPages > 0 ? lowmemPages.dividingFullWidth(pagesMin.multipliedFullWidth(by: managed)).quotient : 0
        watermarkMin = tmp
        let delta = max(tmp >> 2, managed * scaleFactor / 10000)
        watermarkLow = watermarkMin + delta
        watermarkHigh = watermarkLow + delta
        watermarkPromo = watermarkHigh + delta
    }

    /// `high_wmark_pages()` plus the largest `lowmem_reserve[]` entry at or
    /// above this zone, capped at its managed pages: this zone's part of
    /// `totalreserve_pages` (`calculate_totalreserve_pages()`).
    public func reservePages(index: Int) -> UInt64 {
        let maxReserve = lowmemReserve[index...].max() ?? 0
        return min(maxReserve + watermarkHigh, managed)
    }
}

/// The watermarks `__setup_per_zone_wmarks()` gives an empty ZONE_MOVABLE:
/// its min is `managed / 1024` clamped to [SWAP_CLUSTER_MAX, 128], so 32
/// pages, and the step above it is zero.
public let emptyMovableZoneWatermark: UInt64 = 32

/// `calculate_min_free_kbytes()`: int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144].
public func minFreeKbytes(lowmemKbytes: UInt64) -> UInt64 {
    var x = UInt64(Double(lowmemKbytes * 16).squareRoot())
    while x * x > lowmemKbytes * 16 { x -= 1 }
    while (x + 1) * (x + 1) <= lowmemKbytes * 16 { x += 1 }
    return min(max(x, 128), 262144)
}
