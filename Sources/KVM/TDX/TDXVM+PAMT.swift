import MemoryModel
import TDXModule

/// Host memory spent on PAMT, the TDX module's metadata for every 4K page
/// it may ever use (issue 18 §1, DPAMT v4/v6):
/// - **static**, allocated when the module is initialised, per TDMR: PAMT_1G
///   and PAMT_2M, 16 bytes an entry (`pamt_1g_entry_size`,
///   `pamt_2m_entry_size`), and the 4K level: without Dynamic PAMT
///   PAMT_4K, 16 bytes per 4K page (~0.4% of RAM); with it the
///   PAMT_PAGE_BITMAP, 1 bit per 4K page ("[PATCH v4 04/16] x86/virt/tdx:
///   Allocate page bitmap for Dynamic PAMT": "currently it is 1"; the
///   static total ~0.004%);
/// - **dynamic**: the 2 pages (`tdx_dpamt_entry_pages()`) TDH.PHYMEM.PAMT.ADD
///   installs per 2M host range holding a 4K TD page (the TD's own, counted
///   by the model);
/// - **fault cache**: pages the per-vCPU cache is topped up to before a
///   fault (`DPAMTSeries.faultCachePages`), allocated but not yet given to
///   the module: a bound, not in host committed memory.
public struct PAMTFootprint: Sendable, Equatable {
    /// Bytes of one PAMT entry at any level (`PAMT_ENTRY_SIZE_IN_BYTES`).
    public static let entryBytes: UInt64 = 16
    /// Whether Dynamic PAMT is enabled, and if not, why (nil: enabled).
    public var dynamicPAMT: Bool
    public var disabledBecause: String?
    /// The series the kernel runs.
    public var series: DPAMTSeries
    /// Static PAMT for `pages` 4K pages of TDMR memory: (1G and 2M levels,
    /// 4K level or bitmap).
    public static func staticBytes(pages: UInt64, dynamic: Bool) -> (upper: UInt64, level4K: UInt64) {
        let per2M = PageLevel.size2M.pages, per1G = PageLevel.size1G.pages
        let upper = entryBytes * ((pages + per2M - 1) / per2M + (pages + per1G - 1) / per1G)
        let level4K = dynamic ? (pages + 7) / 8 : entryBytes * pages
        return (upper, level4K)
    }
    /// The TD's memory: static share and dynamic pages.
    public var tdPages: UInt64
    public var tdStatic: (upper: UInt64, level4K: UInt64) { Self.staticBytes(pages: tdPages, dynamic: dynamicPAMT) }
    public var dynamicBytes: UInt64
    public var faultCacheBytes: UInt64
    /// The host's TDMR memory and its static PAMT.
    public var hostPages: UInt64
    public var hostStatic: (upper: UInt64, level4K: UInt64) { Self.staticBytes(pages: hostPages, dynamic: dynamicPAMT) }
    /// Static plus dynamic for the host (one TD).
    public var hostTotalBytes: UInt64 { hostStatic.upper + hostStatic.level4K + dynamicBytes }
    public var tdTotalBytes: UInt64 { tdStatic.upper + tdStatic.level4K + dynamicBytes }
}

extension TDXVM {
    /// Host memory spent on PAMT for this TD and for the host.
    /// - Complexity: O(slots).
    public var pamtFootprint: PAMTFootprint {
        let tdPages = slots.reduce(UInt64(0)) { $0 + $1.pages }
        let dyn = module.features.dynamicPAMT
        let why: String? = dyn ? nil : !dynamicPAMTOffered ? "the module has no Dynamic PAMT"
            : "x86_phys_bits \(options.hostPhysBits) > 48 (v6 enables it only within 48 bits)"
        return PAMTFootprint(dynamicPAMT: dyn, disabledBecause: why, series: options.dpamtSeries, tdPages: tdPages,
                             dynamicBytes: ByteCount.frames(pamtPagesAllocated).value,
                             faultCacheBytes: dyn ? ByteCount.frames(options.dpamtSeries.faultCachePages * UInt64(module.vcpuEpoch.count)).value : 0,
                             hostPages: max(options.hostMemoryPages ?? tdPages, tdPages))
    }
}

/// Where the host allocator put the TD's S-EPT and control pages, and the
/// 2M ranges (each with its PAMT under DPAMT) they occupy there and would
/// occupy at the two bounds of the placement (issue 18 §1).
public struct HostAllocatorFootprint: Sendable, Equatable {
    public var placement: SEPTPlacement
    public var isolatedFreePages: UInt64
    public var controlPages: UInt64
    public var septPages: UInt64
    /// 2M host ranges the pages occupy: as placed, all contiguous, all scattered.
    public var ranges: UInt64
    public var rangesIfContiguous: UInt64
    public var rangesIfScattered: UInt64
    /// PAMT pages per range under Dynamic PAMT (0 without it).
    public var pamtPagesPerRange: UInt64
}

extension TDXVM {
    /// The host allocator's footprint now.
    /// - Complexity: O(1).
    public var hostAllocatorFootprint: HostAllocatorFootprint {
        let taken = tdx.allocatorTaken, per2M = PageLevel.size2M.pages
        return HostAllocatorFootprint(placement: tdx.placement, isolatedFreePages: tdx.isolatedFreePages,
                                      controlPages: tdx.controlPages, septPages: tdx.septPool,
                                      ranges: tdx.allocatorRanges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) },
                                      rangesIfContiguous: (taken + per2M - 1) / per2M, rangesIfScattered: taken,
                                      pamtPagesPerRange: module.features.dynamicPAMT ? TrustDomain.dpamtEntryPages : 0)
    }
}
