import MemoryModel

/// x86-64 4-level virtual layout of a kernel without KASLR
/// (`arch/x86/include/asm/page_64_types.h`, `pgtable_64_types.h`).
public enum X86Layout {
    /// `__PAGE_OFFSET_BASE_L4`: the direct map, `__va(0)`.
    public static let pageOffset: UInt64 = 0xffff_8880_0000_0000
    /// `__VMALLOC_BASE_L4`.
    public static let vmallocStart: UInt64 = 0xffff_c900_0000_0000
    /// `__VMEMMAP_BASE_L4`: `vmemmap`, the struct page of PFN n at `vmemmap + 64·n`.
    public static let vmemmapStart: UInt64 = 0xffff_ea00_0000_0000
    /// `__START_KERNEL_map`: kernel text maps `phys_base` here.
    public static let startKernelMap: UInt64 = 0xffff_ffff_8000_0000
    /// `CONFIG_PHYSICAL_START`: `_text` is `__START_KERNEL_map + 16 MiB`.
    public static let physicalStart: UInt64 = 16 << 20
    /// `KERNEL_IMAGE_SIZE` with `CONFIG_RANDOMIZE_BASE`.
    public static let kernelImageSize: UInt64 = PageLevel.size1G.bytes
    /// `SECTION_SIZE_BITS`, `MAX_PHYSMEM_BITS` (4-level).
    public static let sectionSizeBits = 27, maxPhysmemBits = 46
    public static let pagesPerSection: UInt64 = 1 << 15
    /// `SECTIONS_PER_ROOT` = PAGE_SIZE / sizeof(struct mem_section), `NR_SECTION_ROOTS`.
    public static let sectionsPerRoot: UInt64 = 256, sectionRoots: UInt64 = 2048
    /// Page-table entry bits: present, writable, accessed, dirty; PSE for leaves above 4K.
    public static let tableEntry: UInt64 = 0x63, largeLeaf: UInt64 = 0xe3
}

/// Page flag bit numbers of `enum pageflags` in 6.16
/// (`include/linux/page-flags.h`, x86-64 with CONFIG_MMU and
/// CONFIG_MEMORY_FAILURE), as VMCOREINFO exports them.
public enum PageFlag {
    public static let referenced = 2, uptodate = 3, lru = 5, head = 6, waiters = 7, active = 8
    /// `PG_swapcache` = `PG_owner_priv_1`.
    public static let swapcache = 10
    public static let reserved = 13, privateFlag = 14, swapbacked = 17, hwpoison = 21
    /// `TAIL_MAPPING` (`0x400 + POISON_POINTER_DELTA`): `mapping` of tail pages past the folio's own fields.
    public static let tailMapping: UInt64 = 0xdead_0000_0000_0400
    /// The `zone` field of `page->flags`: NODES_WIDTH 10 at the top, then
    /// ZONES_WIDTH 3 (five zones with ZONE_DEVICE); no last_cpupid field
    /// (CONFIG_NUMA_BALANCING off) [derived].
    public static let zonesShift: UInt64 = 51
    /// The node field (`NODES_PGSHIFT`, include/linux/page-flags-layout.h):
    /// `BITS_PER_LONG` minus SECTIONS_WIDTH (0 with SPARSEMEM_VMEMMAP) minus
    /// NODES_WIDTH (CONFIG_NODES_SHIFT 10, the distribution kernels' MAXSMP).
    public static let nodesShift: UInt64 = 54
}

/// `enum pagetype` since 6.12 (`PGTY_*`): the type sits in the top byte of
/// `page_type` (the union with `_mapcount`), `PGTY_x << 24`.
public enum PageType: UInt32, Sendable {
    case buddy = 0xf0, offline = 0xf1, table = 0xf2, guardPage = 0xf3, hugetlb = 0xf4, slab = 0xf5, zsmalloc = 0xf6, unaccepted = 0xf7
    /// The `page_type` / `_mapcount` word.
    public var word: UInt32 { rawValue << 24 }
    /// The value VMCOREINFO prints for `NUMBER(PAGE_x_MAPCOUNT_VALUE)`:
    /// `PGTY_x << 24` wrapped to a signed int.
    public var number: Int64 { Int64(Int32(bitPattern: word)) }
}

/// What the kernel did with a page frame, as far as its struct page shows.
public enum PageRole: UInt8, Sendable, Equatable {
    /// memblock-reserved or not RAM (`PG_reserved`, from `reserve_bootmem_region()`
    /// and `init_unavailable_range()`).
    case reserved
    /// On a buddy free list: the head of each maximal aligned block carries
    /// `PGTY_buddy` and the order in `private`.
    case free
    /// A 4 MiB block on `zone->unaccepted_pages` (`__free_unaccepted()`):
    /// the head carries `PGTY_unaccepted` (6.12+); tails are untyped.
    case unacceptedBlock
    /// A slab page (`PGTY_slab`, struct slab overlay).
    case slab
    /// A page-cache page on the LRU, not mapped.
    case pageCache
    /// An anonymous page mapped once (`mapping` = anon_vma | PAGE_MAPPING_ANON).
    case anonymous
    /// Anonymous memory in PMD-mapped 2 MiB folios (THP): a `PG_head` head,
    /// the order in the first tail's `_flags_1`, tails pointing at the head.
    case transparentHuge
    /// A free 2 MiB folio of the hugetlb pool: the head carries `PGTY_hugetlb`.
    case hugetlb
}

/// The 64-byte `struct page` of 6.16 as a dump tool reads it. Offsets:
/// flags 0, lru / compound_head / slab_cache 8, lru.prev 16, mapping 24,
/// index 32, private 40, _mapcount / page_type 48, _refcount 52, memcg_data 56.
public struct StructPage: Equatable, Sendable {
    public static let size = 64
    public var flags: UInt64 = 0
    /// `lru.next`; also `compound_head` (bit 0 set on tail pages) and `slab_cache`.
    public var word1: UInt64 = 0
    public var word2: UInt64 = 0
    public var mapping: UInt64 = 0
    public var index: UInt64 = 0
    public var privateValue: UInt64 = 0
    public var mapcount: UInt32 = 0xffff_ffff
    public var refcount: UInt32 = 0
    public var memcg: UInt64 = 0

    public init(flags: UInt64 = 0, word1: UInt64 = 0, word2: UInt64 = 0, mapping: UInt64 = 0, index: UInt64 = 0,
                privateValue: UInt64 = 0, mapcount: UInt32 = 0xffff_ffff, refcount: UInt32 = 0, memcg: UInt64 = 0) {
        self.flags = flags; self.word1 = word1; self.word2 = word2; self.mapping = mapping; self.index = index
        self.privateValue = privateValue; self.mapcount = mapcount; self.refcount = refcount; self.memcg = memcg
    }

    public var compoundHead: UInt64 { word1 }

    /// Writes the 64 bytes at `p`.
    @inlinable func store(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: flags.littleEndian, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: word1.littleEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: word2.littleEndian, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: mapping.littleEndian, toByteOffset: 24, as: UInt64.self)
        p.storeBytes(of: index.littleEndian, toByteOffset: 32, as: UInt64.self)
        p.storeBytes(of: privateValue.littleEndian, toByteOffset: 40, as: UInt64.self)
        p.storeBytes(of: mapcount.littleEndian, toByteOffset: 48, as: UInt32.self)
        p.storeBytes(of: refcount.littleEndian, toByteOffset: 52, as: UInt32.self)
        p.storeBytes(of: memcg.littleEndian, toByteOffset: 56, as: UInt64.self)
    }

    /// Reads a struct page from 64 bytes at `p` (what makedumpfile's
    /// `ULONG(pcache + OFFSET(...))` reads).
    public static func load(from p: UnsafeRawPointer) -> StructPage {
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        return StructPage(flags: u64(0), word1: u64(8), word2: u64(16), mapping: u64(24), index: u64(32),
                          privateValue: u64(40), mapcount: u32(48), refcount: u32(52), memcg: u64(56))
    }

    /// The struct page's virtual address.
    @inlinable public static func address(of pfn: UInt64) -> UInt64 { X86Layout.vmemmapStart &+ pfn &* 64 }
    /// `page->lru`'s address, what an empty or self-linked list points at.
    @inlinable static func lruAddress(of pfn: UInt64) -> UInt64 { address(of: pfn) &+ 8 }
}
