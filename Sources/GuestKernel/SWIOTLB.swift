import MemoryModel

/// The size of the SWIOTLB bounce buffer a confidential guest boots with, as
/// the kernel decides it in two steps:
///
/// 1. `mem_encrypt_setup_arch()` (arch/x86/mm/mem_encrypt.c), for a guest
///    with `CC_ATTR_GUEST_MEM_ENCRYPT` (TDX and SEV-SNP alike): 6% of
///    `memblock_phys_mem_size()`, clamped to [IO_TLB_DEFAULT_SIZE (64 MiB),
///    SZ_1G], handed to `swiotlb_adjust_size()` (kernel/dma/swiotlb.c), which
///    aligns it to IO_TLB_SIZE (2 KiB) and the slab count to IO_TLB_SEGSIZE
///    (128) and prints "SWIOTLB bounce buffer size adjusted to %luMB" (the
///    2 KiB-aligned size, not the segment-aligned one). No areas are set yet,
///    so `round_up_default_nslabs()` does nothing there.
/// 2. `swiotlb_init_remap()` (from `pci_iommu_alloc()` in `mem_init()`, flags
///    `SWIOTLB_FORCE` from `pci_swiotlb_detect()`, no `SWIOTLB_ANY`): with no
///    `swiotlb=` areas, `swiotlb_adjust_nareas(num_possible_cpus())` rounds the
///    area count up to a power of two, prints "area num %d.", and
///    `round_up_default_nslabs()` raises the slab count to at least
///    IO_TLB_SEGSIZE × areas and up to a power of two, printing "SWIOTLB
///    bounce buffer size roundup to %luMB" when it changed it. The buffer is
///    `memblock_alloc_low()`: below ARCH_LOW_ADDRESS_LIMIT (4 GiB), halved
///    (to a multiple of IO_TLB_SEGSIZE) while it does not fit, down to 1 MiB.
///    The slot array (`struct io_tlb_slot`, 24 bytes a slab) is a plain
///    `memblock_alloc()` anywhere.
///
/// Read in the 2025-26 tree (swiotlb.c with `round_up_default_nslabs()`,
/// `limit_nareas()`; mem_encrypt.c with the 6% rule); the same arithmetic is
/// assumed for every release the version table covers (6.5 to 7.1), not
/// checked release by release. `swiotlb=` on the command line (which makes
/// `swiotlb_adjust_size()` return early) is not modelled.
public struct SWIOTLBSizing: Sendable, Equatable {
    /// IO_TLB_SHIFT: a slab is 2 KiB.
    public static let slabBytes: UInt64 = 1 << 11
    /// IO_TLB_SEGSIZE: slabs a segment (and the smallest area) holds.
    public static let segmentSlabs: UInt64 = 128
    /// IO_TLB_DEFAULT_SIZE.
    public static let defaultBytes: UInt64 = 64 << 20
    /// IO_TLB_MIN_SLABS: 1 MiB.
    public static let minSlabs: UInt64 = (1 << 20) >> 11
    /// `sizeof(struct io_tlb_slot)` on x86-64: orig_addr, alloc_size, list (and pad_slots).
    public static let slotBytes: UInt64 = 24

    /// The size `mem_encrypt_setup_arch()` asked for, 2 KiB-aligned (what
    /// "adjusted to %luMB" prints, in bytes); nil when the kernel does not
    /// adjust it (`KernelConfig.swiotlbSizedFromMemory` off).
    public let adjustedBytes: UInt64?
    /// `default_nareas` after `swiotlb_adjust_nareas(num_possible_cpus())`.
    public let areas: UInt64
    /// `default_nslabs` after the areas' round-up, before allocation.
    public let slabs: UInt64
    /// Whether `round_up_default_nslabs()` changed the slab count (and so
    /// printed "roundup to").
    public let roundedUp: Bool

    /// The sizing for a guest whose memblock holds `totalMemBytes` and has
    /// `possibleCPUs` CPUs.
    /// - Complexity: O(1).
    /// `adjustsSize` false: no `swiotlb_adjust_size()` call, IO_TLB_DEFAULT_SIZE.
    public init(totalMemBytes: UInt64, possibleCPUs: Int, adjustsSize: Bool = true) {
        var size = totalMemBytes * 6 / 100
        size = min(max(size, Self.defaultBytes), 1 << 30)
        adjustedBytes = adjustsSize ? alignUp(size, Self.slabBytes) : nil
        let adjustedSlabs = alignUp((adjustedBytes ?? Self.defaultBytes) / Self.slabBytes, Self.segmentSlabs)
        // swiotlb_adjust_nareas(): zero is one; others up to a power of two.
        let cpus = UInt64(max(1, possibleCPUs))
        areas = cpus.nonzeroBitCount == 1 ? cpus : 1 << (64 - (cpus - 1).leadingZeroBitCount)
        // round_up_default_nslabs()
        var n = adjustedSlabs
        var changed = false
        if n < Self.segmentSlabs * areas {
            n = Self.segmentSlabs * areas
            changed = true
        }
        if changed || n.nonzeroBitCount != 1 {
            n = n.nonzeroBitCount == 1 ? n : 1 << (64 - (n - 1).leadingZeroBitCount)
            changed = true
        }
        slabs = n
        roundedUp = changed
    }

    /// The buffer's size in bytes before any halving.
    public var bytes: UInt64 { slabs * Self.slabBytes }

    /// The slab counts `swiotlb_init_remap()` tries, largest first: each
    /// failed `memblock_alloc_low()` halves the count (aligned to a segment)
    /// until it is at most IO_TLB_MIN_SLABS.
    public var attempts: [UInt64] {
        var out = [slabs]
        var n = slabs
        while n > Self.minSlabs {
            n = alignUp(n >> 1, Self.segmentSlabs)
            out.append(n)
        }
        return out
    }

    /// `PAGE_ALIGN(array_size(sizeof(*mem->slots), nslabs))`.
    public static func slotArrayBytes(slabs: UInt64) -> UInt64 { alignUp(slabs * slotBytes, 4096) }
}
