public import MemoryModel

/// The zones of an x86-64 node.
public enum ZoneKind: String, Sendable, CaseIterable {
    case dma = "DMA", dma32 = "DMA32", normal = "Normal"
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
    /// `managed_pages` (MemTotal): includes unaccepted blocks.
    public var managed: UInt64 = 0
    /// `NR_FREE_PAGES` (MemFree): includes unaccepted blocks.
    public var freePages: UInt64 = 0
    /// `NR_UNACCEPTED`.
    public var unacceptedPages: UInt64 = 0
    /// `MAX_ORDER_NR_PAGES`: pages in one block of `unaccepted_pages`.
    public static let blockPages: UInt64 = 1024

    /// `zone->unaccepted_pages`, FIFO (`list_add_tail` / `list_first_entry`),
    /// kept as runs of consecutive 4 MiB blocks: (first frame of the first
    /// block, whose struct page is the list entry; number of blocks).
    public var unacceptedList: [(first: GuestFrameNumber, count: UInt64)] = []
    var listHead = 0
    /// `_watermark[WMARK_MIN/LOW/HIGH/PROMO]`; zero until `init_per_zone_wmark_min()`.
    public var watermarkMin: UInt64 = 0, watermarkLow: UInt64 = 0, watermarkHigh: UInt64 = 0, watermarkPromo: UInt64 = 0

    public init(kind: ZoneKind) { self.kind = kind }

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

    /// `__setup_per_zone_wmarks()` for this zone's share of `pagesMin`.
    mutating func setWatermarks(pagesMin: UInt64, lowmemPages: UInt64, scaleFactor: UInt64 = 10) {
        guard managed > 0, lowmemPages > 0 else { return }
        let tmp = pagesMin * managed / lowmemPages
        watermarkMin = tmp
        let delta = max(tmp >> 2, managed * scaleFactor / 10000)
        watermarkLow = watermarkMin + delta
        watermarkHigh = watermarkLow + delta
        watermarkPromo = watermarkHigh + delta
    }
}

/// `calculate_min_free_kbytes()`: int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144].
public func minFreeKbytes(lowmemKbytes: UInt64) -> UInt64 {
    var x = UInt64(Double(lowmemKbytes * 16).squareRoot())
    while x * x > lowmemKbytes * 16 { x -= 1 }
    while (x + 1) * (x + 1) <= lowmemKbytes * 16 { x += 1 }
    return min(max(x, 128), 262144)
}
