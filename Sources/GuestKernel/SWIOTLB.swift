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
/// checked release by release. `swiotlb=` on the command line is
/// `SWIOTLBParameter`: a slab count other than the default's makes
/// `swiotlb_adjust_size()` return early, so the user's size is kept.
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
    /// adjust it (`KernelConfig.swiotlbSizedFromMemory` off, or `swiotlb=`
    /// gave a slab count other than the default's).
    public let adjustedBytes: UInt64?
    /// `default_nareas` after `swiotlb_adjust_nareas()` (the command line's
    /// count, or `num_possible_cpus()` in `swiotlb_init_remap()`).
    public let areas: UInt64
    /// `default_nslabs` after the areas' round-up, before allocation.
    public let slabs: UInt64
    /// Whether `round_up_default_nslabs()` changed the slab count (and so
    /// printed "roundup to").
    public let roundedUp: Bool
    /// `swiotlb=noforce` (`swiotlb_force_disable`): `swiotlb_init_remap()`
    /// returns before allocating anything; the guest has no bounce buffer.
    public let disabled: Bool
    /// The kernel's "software IO TLB:" lines about the sizing, in the order
    /// it prints them (`setup_io_tlb_npages()` at early_param time, then
    /// `swiotlb_adjust_size()`, then `swiotlb_init_remap()`).
    public let messages: [String]

    /// The sizing for a guest whose memblock holds `totalMemBytes` and has
    /// `possibleCPUs` CPUs.
    /// `adjustsSize` false: no `swiotlb_adjust_size()` call, IO_TLB_DEFAULT_SIZE.
    /// `parameter`: `swiotlb=` on the command line (`setup_io_tlb_npages()`).
    /// - Complexity: O(1).
    public init(totalMemBytes: UInt64, possibleCPUs: Int, adjustsSize: Bool = true, parameter: SWIOTLBParameter? = nil) {
        let mb = { (b: UInt64) in b >> 20 }
        var lines: [String] = []
        var nslabs = Self.defaultBytes / Self.slabBytes
        var nareas: UInt64 = 0
        var changed = false
        func pow2(_ v: UInt64) -> UInt64 { v.nonzeroBitCount == 1 ? v : 1 << (64 - (v - 1).leadingZeroBitCount) }
        // round_up_default_nslabs()
        func roundUp() -> Bool {
            guard nareas > 0 else { return false }
            if nslabs < Self.segmentSlabs * nareas {
                nslabs = Self.segmentSlabs * nareas
            } else if nslabs.nonzeroBitCount == 1 {
                return false
            }
            nslabs = pow2(nslabs)
            return true
        }
        // swiotlb_adjust_nareas()
        func adjustAreas(_ n: UInt64) {
            nareas = n == 0 ? 1 : pow2(n)
            lines.append("area num \(nareas).")
            if roundUp() {
                changed = true
                lines.append("SWIOTLB bounce buffer size roundup to \(mb(nslabs * Self.slabBytes))MB")
            }
        }
        // setup_io_tlb_npages(): ALIGN(slabs, IO_TLB_SEGSIZE), then the areas.
        if let u = parameter?.slabs { nslabs = alignUp(u, Self.segmentSlabs) }
        if let a = parameter?.areas { adjustAreas(a) }
        // swiotlb_adjust_size() from mem_encrypt_setup_arch(): returns early
        // when default_nslabs is not IO_TLB_DEFAULT_SIZE's.
        var adjusted: UInt64? = nil
        if adjustsSize, nslabs == Self.defaultBytes / Self.slabBytes {
            var size = totalMemBytes * 6 / 100
            size = min(max(size, Self.defaultBytes), 1 << 30)
            size = alignUp(size, Self.slabBytes)
            nslabs = alignUp(size / Self.slabBytes, Self.segmentSlabs)
            if roundUp() { changed = true; size = nslabs * Self.slabBytes }
            adjusted = size
            lines.append("SWIOTLB bounce buffer size adjusted to \(mb(size))MB")
        }
        adjustedBytes = adjusted
        disabled = parameter?.force == .noforce
        // swiotlb_init_remap(): areas from the possible CPUs unless set.
        if !disabled, nareas == 0 { adjustAreas(UInt64(max(1, possibleCPUs))) }
        areas = max(nareas, 1)
        slabs = nslabs
        roundedUp = changed
        messages = lines
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

/// `swiotlb=<slabs>[,<areas>][,force|noforce]` as `setup_io_tlb_npages()`
/// (kernel/dma/swiotlb.c) reads it: a slab count (2 KiB each, rounded up
/// to IO_TLB_SEGSIZE), an area count (rounded up to a power of two), and
/// `force` (bounce every DMA: a confidential guest does already) or
/// `noforce` (no bounce buffer at all). The kernel takes numbers with
/// `simple_strtoul(str, &str, 0)` and ignores what it cannot read; here a
/// value it would misread is refused instead, and the counts are bounded:
/// slabs 1 to 2097152 (4 GiB, all `memblock_alloc_low()` could give),
/// areas 1 to 4096.
public struct SWIOTLBParameter: Sendable, Equatable {
    public enum Force: String, Sendable { case force, noforce }
    public var slabs: UInt64?
    public var areas: UInt64?
    public var force: Force?
    public init(slabs: UInt64? = nil, areas: UInt64? = nil, force: Force? = nil) {
        self.slabs = slabs; self.areas = areas; self.force = force
    }

    // Slabs are IO_TLB_SIZE (1 << IO_TLB_SHIFT = 2 KiB): at most a 4 GiB pool, the whole low memory it must fit in.
    public static let slabRange: ClosedRange<UInt64> = 1...((4 << 30) >> 11)
    public static let areaRange: ClosedRange<UInt64> = 1...4096

    /// Reads the value after `swiotlb=`.
    /// - Complexity: O(length).
    public static func parse(_ text: String) throws -> SWIOTLBParameter {
        func fail(_ why: String) -> CocomemError {
            CocomemError(.invalidArgument, "swiotlb=\(text): \(why); expected <slabs>[,<areas>][,force|noforce]")
        }
        func number(_ s: Substring, _ what: String, _ range: ClosedRange<UInt64>) throws -> UInt64 {
            let v = s.hasPrefix("0x") || s.hasPrefix("0X") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
            guard let v else { throw fail("'\(s)' is not a number of \(what)") }
            guard range.contains(v) else { throw fail("\(what) must be \(range.lowerBound) to \(range.upperBound), got \(v)") }
            return v
        }
        var p = SWIOTLBParameter()
        var parts = text.split(separator: ",", omittingEmptySubsequences: false)[...]
        guard !text.isEmpty else { throw fail("empty") }
        if let f = parts.first, f.first?.isNumber == true { p.slabs = try number(f, "slabs", slabRange); parts = parts.dropFirst() }
        if p.slabs != nil, let f = parts.first, f.first?.isNumber == true { p.areas = try number(f, "areas", areaRange); parts = parts.dropFirst() }
        if let f = parts.first {
            guard let force = Force(rawValue: String(f)) else { throw fail("'\(f)' is neither force nor noforce") }
            p.force = force
            parts = parts.dropFirst()
        }
        guard parts.isEmpty else { throw fail("unexpected '\(parts.joined(separator: ","))'") }
        return p
    }

    /// The parameter as the command line carries it.
    public var text: String {
        [slabs.map { String($0) }, areas.map { String($0) }, force?.rawValue].compactMap { $0 }.joined(separator: ",")
    }
}
