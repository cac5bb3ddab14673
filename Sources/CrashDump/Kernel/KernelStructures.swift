public import MemoryModel

/// Where the first kernel put the things a dump tool needs, read from the
/// simulated guest.
public struct KernelStructuresInput: Sendable {
    /// The first kernel's RAM (E820), ascending.
    public var ram: [AddressRange]
    public var kernelImage: AddressRange
    /// memblock's "page tables", "other" and "memmap" reservations.
    public var pageTablesArea: AddressRange
    public var otherArea: AddressRange
    public var memmapArea: AddressRange
    /// 4 MiB blocks still on each zone's `unaccepted_pages`, in list order.
    public var unacceptedBlocks: [Range<GuestFrameNumber>]
    public var release: String
    public var crashTime: Int64
    /// The kernel marks unaccepted block heads with `PGTY_unaccepted` (6.12+).
    public var hasUnacceptedType: Bool
    /// VMCOREINFO carries `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)` (6.16+).
    public var exportsUnacceptedNumber: Bool
    public var seed: UInt64
    /// `transparent_hugepage=always`: anonymous memory is in 2 MiB folios
    /// wherever a 2 MiB-aligned block lies wholly inside it.
    public var transparentHugepages = false
    /// Linux 7.1 and later (d50569612c29, `KernelVersion.namesCompoundInfo`):
    /// VMCOREINFO names the tail field `OFFSET(page.compound_info)`, tails
    /// hold `set_compound_head()`'s mask, and the first tail has 6.15's
    /// `struct folio` page[1] (`_large_mapcount` 16, `_nr_pages_mapped` 20,
    /// `_entire_mapcount` 24, `_pincount` 28, `_mm_id_mapcount` 32,
    /// `_mm_ids` 40, `_mapcount_1` 48, `_refcount_1` 52, `_nr_pages` 56).
    public var compoundInfo = false
    /// The memmap buffers of a guest with several NUMA nodes, one per node
    /// in node order (`sparse_init()` → `sparse_init_nid()` →
    /// `sparse_buffer_init(map_count * section_map_size(), nid)`), each
    /// holding the struct pages of the node's present sections in order;
    /// empty: one buffer, `memmapArea`.
    public var memmapAreas: [AddressRange] = []
    /// Where each node after node 0 begins, by PFN, ascending (the node
    /// field of `page->flags`, `set_page_node()`): empty for one node.
    public var nodeStarts: [(pfn: UInt64, node: Int)] = []
    /// SLUB's slab order (`slub_min_order=` = `slub_max_order=`): 0 puts
    /// every slab in an order-0 page (what the model always did); N > 0 makes
    /// every naturally aligned 2^N-page block of slab memory one slab folio
    /// (`alloc_slab_page()` with `__GFP_COMP`: a `PG_head` head typed
    /// `PGTY_slab`, tails from `prep_compound_page()`).
    public var slabOrder: UInt64 = 0
    /// Each node's `pglist_data` figures, in node order (the kernel's
    /// zones: `calculate_node_totalpages()`); empty: one node over `ram`
    /// (E820 RAM, which leaves out the unaccepted table memblock adds).
    public var nodes: [PglistNode] = []

    public init(ram: [AddressRange], kernelImage: AddressRange, pageTablesArea: AddressRange, otherArea: AddressRange,
                memmapArea: AddressRange, unacceptedBlocks: [Range<GuestFrameNumber>], release: String,
                crashTime: Int64, hasUnacceptedType: Bool, exportsUnacceptedNumber: Bool, seed: UInt64) {
        self.ram = ram; self.kernelImage = kernelImage; self.pageTablesArea = pageTablesArea; self.otherArea = otherArea
        self.memmapArea = memmapArea; self.unacceptedBlocks = unacceptedBlocks
        self.release = release; self.crashTime = crashTime; self.hasUnacceptedType = hasUnacceptedType
        self.exportsUnacceptedNumber = exportsUnacceptedNumber; self.seed = seed
    }
}

/// What a node's `struct pglist_data` holds that dump tools read through
/// VMCOREINFO's `OFFSET(pglist_data.*)` (makedumpfile's
/// `get_mm_discontigmem()` and `_exclude_free_page()`, crash's NUMA init):
/// the node's span (`node_start_pfn`, `node_spanned_pages`,
/// `node_present_pages`, set by `calculate_node_totalpages()`) and each of
/// its MAX_NR_ZONES zones' `spanned_pages`.
public struct PglistNode: Sendable, Equatable {
    public var startPFN: UInt64
    public var spannedPages: UInt64
    public var presentPages: UInt64
    /// `node_zones[z].spanned_pages`, DMA, DMA32, Normal, Movable, Device.
    public var zoneSpannedPages: [UInt64]

    public init(startPFN: UInt64, spannedPages: UInt64, presentPages: UInt64, zoneSpannedPages: [UInt64]) {
        self.startPFN = startPFN; self.spannedPages = spannedPages; self.presentPages = presentPages
        self.zoneSpannedPages = zoneSpannedPages
    }

    /// `nr_zones`: one past the highest zone with pages spanned
    /// (`init_currently_empty_zone()` raises it for each zone it sets up).
    public var nrZones: Int32 { Int32((zoneSpannedPages.lastIndex { $0 > 0 } ?? -1) + 1) }
}

/// A page whose bytes are a kernel structure, generated on demand.
enum StructurePage: Equatable, Sendable {
    case topPGT, level3Kernel, level2Kernel, utsName
    /// `node_states[N_ONLINE]` (`node_online_map`), a `nodemask_t`.
    case nodeOnlineMap
    /// Page `i` of x86's `node_data[MAX_NUMNODES]` pointer array.
    case nodeData(Int)
    /// Page `page` of node `node`'s `pglist_data`.
    case pglistData(node: Int, page: Int)
    case rootArray(Int)       // page i of the 16 KiB mem_section root array
    case sectionRoot(UInt64)  // the mem_section root page of root index r
    case directPUD(UInt64)    // direct-map PUD page i (512 GiB each)
    case vmemmapPUD
    case vmemmapPMD(UInt64)   // vmemmap PMD page for vmemmap GiB g
}

/// The kernel structures makedumpfile walks without a vmlinux, generated
/// from the simulated state: the x86-64 page tables (`init_top_pgt`, a
/// 1 GiB-page direct map, a 2 MiB-page vmemmap and kernel text map), the
/// SPARSEMEM_EXTREME `mem_section` root array and roots, `init_uts_ns`,
/// the 64-byte struct pages of every present section, and a 6.16-style
/// VMCOREINFO that points at them.
///
/// Nothing is materialised: a page of structures is produced when asked
/// for, from per-range state (the page roles and the section list), so a
/// multi-TiB guest costs memory in proportion to its number of regions.
public struct KernelStructures: Sendable {
    public let input: KernelStructuresInput
    /// Page role per PFN, per range.
    public let roles: IntervalMap<GuestFrameNumber, PageRole>
    /// Present sections, ascending; the vmemmap of the i-th is the i-th
    /// 2 MiB of the memmap buffer (`sparse_buffer_alloc()` in order).
    public let presentSections: [UInt64]
    /// `phys_base`: `_text` (16 MiB into `__START_KERNEL_map`) is the kernel image's start.
    public let physBase: UInt64
    /// PFN of each generated single page.
    let singles: [UInt64: StructurePage]
    let rootPages: [UInt64: UInt64]          // root index -> physical address
    let directPUDs: [UInt64]                  // physical addresses
    let vmemmapPUD: UInt64
    let vmemmapPMDs: [UInt64: UInt64]         // vmemmap GiB -> physical address
    let topPGT: UInt64, level3Kernel: UInt64, level2Kernel: UInt64, utsPage: UInt64, rootArray: UInt64
    /// The nodes' `pglist_data` figures (`KernelStructuresInput.nodes`, or one node over RAM).
    let nodes: [PglistNode]
    /// Physical addresses of `node_online_map`, `node_data[]` and each node's `pglist_data`.
    let nodeOnlineMap: UInt64, nodeDataArray: UInt64
    let pglistData: [UInt64]
    /// Kernel-data addresses used as list heads and owners in struct pages.
    let kernelDataVirtual: UInt64
    /// The memmap buffers in use: their PFNs and the ordinal in
    /// `presentSections` of the first section each holds (one buffer on a
    /// one-node guest; one per node otherwise, `KernelStructuresInput.memmapAreas`).
    let memmapBuffers: [(pfns: Range<UInt64>, firstOrdinal: Int)]

    public init(_ i: KernelStructuresInput, classes: IntervalMap<GuestFrameNumber, PageClass>) throws {
        input = i
        guard i.kernelImage.start >= X86Layout.physicalStart else {
            throw CocomemError(.unsupported, "the kernel image starts below 16 MiB; phys_base would be negative")
        }
        physBase = i.kernelImage.start - X86Layout.physicalStart
        presentSections = Sparsemem.presentSections(i.ram)
        // Each buffer holds the next present sections, 2 MiB of struct pages each.
        var buffers: [(pfns: Range<UInt64>, firstOrdinal: Int)] = []
        var ordinal = 0
        for a in (i.memmapAreas.isEmpty ? [i.memmapArea] : i.memmapAreas) where ordinal < presentSections.count {
            let n = min(Int(a.size / (2 << 20)), presentSections.count - ordinal)
            let first = a.lowerAddress.frame.value
            if n > 0 { buffers.append((first..<(first + UInt64(n) * 512), ordinal)) }
            ordinal += n
        }
        guard ordinal == presentSections.count else {
            let total = (i.memmapAreas.isEmpty ? [i.memmapArea] : i.memmapAreas).reduce(0) { $0 + $1.size }
            throw CocomemError(.invalidScenario, "the memmap reservation (\(ByteCount(total))) is smaller than 2 MiB per present section")
        }
        memmapBuffers = buffers
        roles = Self.roles(i, classes: classes, presentSections: presentSections)

        // Kernel .data: the static page tables and init_uts_ns.
        let data = alignUp(i.kernelImage.start + i.kernelImage.size / 2, 4096)
        topPGT = data; level3Kernel = data + 0x1000; level2Kernel = data + 0x2000; utsPage = data + 0x3000
        kernelDataVirtual = X86Layout.startKernelMap + (data + 0x4000 - physBase)
        /// The PFN of a physical address (`singles` is keyed by raw PFN: it is read per page on the dump path).
        func pfn(_ phys: UInt64) -> UInt64 { GuestPhysicalAddress(phys).frame.value }
        var singles: [UInt64: StructurePage] = [pfn(topPGT): .topPGT, pfn(level3Kernel): .level3Kernel,
                                                pfn(level2Kernel): .level2Kernel, pfn(utsPage): .utsName]
        // memblock "other": the root array (sparse_init: NR_SECTION_ROOTS pointers), then one page per root in use.
        rootArray = i.otherArea.start
        for p in 0..<4 { singles[pfn(rootArray) + UInt64(p)] = .rootArray(p) }
        var roots: [UInt64: UInt64] = [:]
        var next = rootArray + 0x4000
        for s in presentSections where roots[s / X86Layout.sectionsPerRoot] == nil {
            roots[s / X86Layout.sectionsPerRoot] = next
            singles[pfn(next)] = .sectionRoot(s / X86Layout.sectionsPerRoot)
            next += 0x1000
        }
        guard next <= i.otherArea.end else { throw CocomemError(.invalidScenario, "mem_section roots do not fit memblock's early area") }
        rootPages = roots
        // CONFIG_NUMA (every distribution kernel, MAX_NUMNODES 1024):
        // node_states[] and x86's node_data[] in .data, after the stand-ins;
        // each node's pglist_data (alloc_node_data(): roundup(sizeof(pg_data_t),
        // PAGE_SIZE) from memblock) in memblock's "other" lump after the
        // mem_section roots (the model keeps early allocations as one lump, so
        // NODE_DATA is not on its node).
        let nodes = i.nodes.isEmpty ? [Self.oneNode(i.ram)] : i.nodes
        self.nodes = nodes
        guard nodes.count <= Self.maxNumNodes else { throw CocomemError(.unsupported, "\(nodes.count) nodes: MAX_NUMNODES is \(Self.maxNumNodes)") }
        let numaData = alignUp(data + 0x4000 + 0x8000 + UInt64(nodes.count) * 0x2800, 4096)
        nodeOnlineMap = numaData; nodeDataArray = numaData + 0x1000
        guard nodeDataArray + 0x2000 <= i.kernelImage.end else {
            throw CocomemError(.invalidScenario, "node_states and node_data do not fit the kernel image")
        }
        singles[pfn(nodeOnlineMap)] = .nodeOnlineMap
        singles[pfn(nodeDataArray)] = .nodeData(0); singles[pfn(nodeDataArray) + 1] = .nodeData(1)
        var pgdats: [UInt64] = []
        for n in nodes.indices {
            pgdats.append(next)
            for k in 0..<Self.pglistPages { singles[pfn(next) + UInt64(k)] = .pglistData(node: n, page: k) }
            next += UInt64(Self.pglistPages) * 0x1000
        }
        guard next <= i.otherArea.end else { throw CocomemError(.invalidScenario, "the nodes' pglist_data do not fit memblock's early area") }
        pglistData = pgdats
        // memblock "page tables": direct-map PUDs, the vmemmap PUD and its PMDs.
        let maxPhys = i.ram.map(\.end).max() ?? 0
        var pt = i.pageTablesArea.start
        var puds: [UInt64] = []
        for n in 0..<max(1, divRoundUp(maxPhys, 512 * PageLevel.size1G.bytes)) { puds.append(pt); singles[pfn(pt)] = .directPUD(n); pt += 0x1000 }
        directPUDs = puds
        vmemmapPUD = pt; singles[pfn(pt)] = .vmemmapPUD; pt += 0x1000
        var pmds: [UInt64: UInt64] = [:]
        for s in presentSections where pmds[s / 512] == nil {
            pmds[s / 512] = pt; singles[pfn(pt)] = .vmemmapPMD(s / 512); pt += 0x1000
        }
        guard pt <= i.pageTablesArea.end else { throw CocomemError(.invalidScenario, "the page tables do not fit memblock's page-table reservation") }
        guard presentSections.last.map({ $0 / 512 < 512 }) ?? true else {
            throw CocomemError(.unsupported, "guests above 32 TiB need a second vmemmap PUD page, which is not generated")
        }
        vmemmapPMDs = pmds
        self.singles = singles
    }

    /// Page roles: classes decide (the crash kernel is its own class, so
    /// reserved), non-RAM stays reserved, and the unaccepted list overrides.
    static func roles(_ i: KernelStructuresInput, classes: IntervalMap<GuestFrameNumber, PageClass>, presentSections: [UInt64]) -> IntervalMap<GuestFrameNumber, PageRole> {
        var roles = IntervalMap<GuestFrameNumber, PageRole>(initial: .reserved)
        for r in i.ram {
            classes.forEachRun(in: r.lowerAddress.frame..<r.upperAddress.frame) { pfns, c in
                let role: PageRole
                switch c {
                case .freeZero, .unaccepted: role = .free
                case .slab: role = .slab
                case .pageCache: role = .pageCache
                case .anonymous: role = .anonymous
                case .kernelText, .kernelData, .memmap, .pageTables, .crashKernel: role = .reserved
                case .hugetlb: role = .hugetlb
                }
                roles.assign(pfns, role)
                if c == .anonymous, i.transparentHugepages {
                    let folio = PageLevel.size2M.pages
                    let folios = alignUp(pfns.lowerBound.value, folio)..<alignDown(pfns.upperBound.value, folio)
                    if folios.lowerBound < folios.upperBound { roles.assign(Range(raw: folios), .transparentHuge) }
                }
            }
        }
        for b in i.unacceptedBlocks { roles.assign(b, .unacceptedBlock) }
        return roles
    }

    // MARK: Which pages are generated

    /// PFN range of the first memmap buffer in use (node 0's; the only one on a one-node guest).
    public var memmapPFNs: Range<UInt64> { memmapBuffers.first?.pfns ?? 0..<0 }

    /// PFN ranges of every memmap buffer in use, one per node.
    /// - Complexity: O(nodes).
    public var memmapPFNRanges: [Range<UInt64>] { memmapBuffers.map(\.pfns) }

    /// The memmap page holding the struct pages of PFNs `64 q ..< 64 q + 64`
    /// of the present section at `ordinal`.
    /// - Complexity: O(nodes).
    public func memmapPFN(ordinal: Int, page q: UInt64) -> UInt64 {
        let b = memmapBuffers.last { $0.firstOrdinal <= ordinal }!
        return b.pfns.lowerBound + UInt64(ordinal - b.firstOrdinal) * 512 + q
    }

    /// For a memmap page: the ordinal of its section and its page in the
    /// section's 2 MiB (nil for any other PFN).
    /// - Complexity: O(buffers).
    func memmapPlace(_ pfn: UInt64) -> (ordinal: Int, page: UInt64)? {
        for b in memmapBuffers where b.pfns.contains(pfn) {
            let q = pfn - b.pfns.lowerBound
            return (b.firstOrdinal + Int(q / 512), q % 512)
        }
        return nil
    }

    /// True if page `pfn` holds generated structures (not a class template).
    public func isGenerated(_ pfn: UInt64) -> Bool { memmapBuffers.contains { $0.pfns.contains(pfn) } || singles[pfn] != nil }

    /// Generated PFNs inside `r` as ascending disjoint ranges.
    /// - Complexity: O(single pages + buffers), independent of the memmap's size.
    public func generatedRanges(in r: Range<UInt64>) -> [Range<UInt64>] {
        var out = singles.keys.filter { r.contains($0) }.map { $0..<($0 + 1) }
        for b in memmapBuffers {
            let m = b.pfns.clamped(to: r)
            if !m.isEmpty { out.append(m) }
        }
        return out.sorted { $0.lowerBound < $1.lowerBound }
    }

    // MARK: Page contents

    /// Writes the 4096 bytes of generated page `pfn` into `p` (zeroed first).
    public func generate(_ pfn: UInt64, into p: UnsafeMutableRawBufferPointer) {
        p.initializeMemory(as: UInt8.self, repeating: 0)
        let base = p.baseAddress!
        func entry(_ i: Int, _ v: UInt64) { base.storeBytes(of: v.littleEndian, toByteOffset: i * 8, as: UInt64.self) }
        if let (ordinal, q) = memmapPlace(pfn) {
            let firstPFN = presentSections[ordinal] * X86Layout.pagesPerSection + q * 64
            fillStructPages(firstPFN, into: base)
            return
        }
        switch singles[pfn]! {
        case .topPGT:
            for (n, pud) in directPUDs.enumerated() { entry(Self.index(X86Layout.pageOffset, level: 39) + n, pud | X86Layout.tableEntry) }
            entry(Self.index(X86Layout.vmemmapStart, level: 39), vmemmapPUD | X86Layout.tableEntry)
            entry(Self.index(X86Layout.startKernelMap, level: 39), level3Kernel | X86Layout.tableEntry)
        case .level3Kernel:
            entry(Self.index(X86Layout.startKernelMap, level: PageLevel.size1G.shift), level2Kernel | X86Layout.tableEntry)
        case .level2Kernel:
            // level2_kernel_pgt maps phys_base.. in 2 MiB pages up to _end.
            let n = divRoundUp(input.kernelImage.end - physBase, 2 << 20)
            for k in 0..<Int(min(n, 512)) { entry(k, (physBase + UInt64(k) * PageLevel.size2M.bytes) | X86Layout.largeLeaf) }
        case .directPUD(let n):
            let maxPhys = input.ram.map(\.end).max() ?? 0
            for k in 0..<512 {
                let phys = (n * 512 + UInt64(k)) * PageLevel.size1G.bytes
                if phys < maxPhys { entry(k, phys | X86Layout.largeLeaf) }
            }
        case .vmemmapPUD:
            for (g, pmd) in vmemmapPMDs { entry(Self.index(X86Layout.vmemmapStart + g * PageLevel.size1G.bytes, level: PageLevel.size1G.shift), pmd | X86Layout.tableEntry) }
        case .vmemmapPMD(let g):
            for (o, s) in presentSections.enumerated() where s / 512 == g {
                entry(Int(s % 512), GuestFrameNumber(memmapPFN(ordinal: o, page: 0)).address.value | X86Layout.largeLeaf)
            }
        case .utsName:
            // struct uts_namespace starts with struct new_utsname (6 x 65 bytes).
            let fields = ["Linux", "cocomem", input.release, "#1 SMP PREEMPT_DYNAMIC", "x86_64", "(none)"]
            for (k, f) in fields.enumerated() {
                for (j, b) in f.utf8.prefix(64).enumerated() { base.storeBytes(of: b, toByteOffset: k * 65 + j, as: UInt8.self) }
            }
        case .nodeOnlineMap:
            // A nodemask_t: bit n set for each online node (node_set_online()).
            var words = [UInt64](repeating: 0, count: Self.maxNumNodes / 64)
            for n in nodes.indices { words[n / 64] |= UInt64(1) << UInt64(n % 64) }
            for (w, v) in words.enumerated() where v != 0 { entry(w, v) }
        case .nodeData(let part):
            // node_data[nid] = __va(nd_pa) (alloc_node_data()); NULL for nodes never set up.
            for (n, pa) in pglistData.enumerated() where n / 512 == part { entry(n % 512, X86Layout.pageOffset + pa) }
        case .pglistData(let node, let page):
            fillPglist(nodes[node], node: node, page: page, into: base)
        case .rootArray(let part):
            for k in 0..<512 {
                let r = UInt64(part * 512 + k)
                if let phys = rootPages[r] { entry(k, X86Layout.pageOffset + phys) }
            }
        case .sectionRoot(let r):
            for k in 0..<256 {
                let s = r * 256 + UInt64(k)
                guard presentSections.binarySearchContains(s) else { continue }
                // sparse_encode_mem_map(): mem_map - section_nr_to_pfn(s), i.e. vmemmap itself,
                // | SECTION_MARKED_PRESENT | HAS_MEM_MAP | IS_ONLINE | IS_EARLY; then the usage pointer.
                entry(2 * k, X86Layout.vmemmapStart | 0xf)
                entry(2 * k + 1, X86Layout.pageOffset + input.otherArea.start + 0x80_0000 + s * 32)
            }
        }
    }

    // MARK: NUMA

    /// MAX_NUMNODES of a distribution x86-64 kernel (CONFIG_NODES_SHIFT 10:
    /// Ubuntu, Fedora, RHEL): `LENGTH(node_data)`, and the 1024 bits of
    /// `SIZE(nodemask_t)` 128.
    static let maxNumNodes = 1024
    /// `roundup(sizeof(pg_data_t), PAGE_SIZE)` pages (`alloc_node_data()`),
    /// with `SIZE(pglist_data)` 174592.
    static let pglistPages = (174592 + 4095) / 4096
    /// `struct pglist_data` offsets with CONFIG_NUMA, MAX_NR_ZONES 5 and
    /// `SIZE(zone)` 1792: `node_zones[5]` (8960 bytes), `node_zonelists[2]`
    /// (MAX_ZONELISTS; each `MAX_NUMNODES * MAX_NR_ZONES + 1` zonerefs of
    /// 16 bytes: 81936), then `int nr_zones`, `spinlock_t node_size_lock`
    /// (CONFIG_MEMORY_HOTPLUG), `node_start_pfn`, `node_present_pages`,
    /// `node_spanned_pages`, `int node_id` (include/linux/mmzone.h). The same
    /// order and sizes as the BTF of a 6.18 x86-64 NUMA kernel, whose larger
    /// `struct zone` moves them by 5 × its size.
    static let pglistNodeZones = 0, pglistNrZones = 5 * 1792 + 2 * 81936
    static let pglistNodeStartPFN = pglistNrZones + 8, pglistNodePresentPages = pglistNrZones + 16
    static let pglistNodeSpannedPages = pglistNrZones + 24, pglistNodeID = pglistNrZones + 32
    /// `OFFSET(zone.spanned_pages)` and `SIZE(zone)`.
    static let zoneSpannedPages = 112, zoneSize = 1792

    /// One node over E820 RAM (no kernel figures given): its first and last
    /// page, and each zone's span clamped to it.
    static func oneNode(_ ram: [AddressRange]) -> PglistNode {
        let first = (ram.map(\.start).min() ?? 0) / 4096, end = (ram.map(\.end).max() ?? 0) / 4096
        let present = ram.reduce(UInt64(0)) { $0 + $1.size / 4096 }
        let bounds: [(UInt64, UInt64)] = [(0, 4096), (4096, 1 << 20), (1 << 20, .max), (0, 0), (0, 0)]
        let zones = bounds.map { b -> UInt64 in
            let parts = ram.map { (max($0.start / 4096, b.0), min($0.end / 4096, b.1)) }.filter { $0.0 < $0.1 }
            guard let lo = parts.map(\.0).min(), let hi = parts.map(\.1).max() else { return 0 }
            return hi - lo
        }
        return PglistNode(startPFN: first, spannedPages: end - first, presentPages: present, zoneSpannedPages: zones)
    }

    /// Page `page` of node `node`'s `pglist_data`: the fields dump tools
    /// read, the rest zero (the zones' free lists are not generated: the
    /// struct pages' list heads are stand-ins).
    func fillPglist(_ n: PglistNode, node: Int, page: Int, into base: UnsafeMutableRawPointer) {
        let lo = page * 4096
        func put<T: FixedWidthInteger>(_ offset: Int, _ v: T) {
            guard offset >= lo, offset + MemoryLayout<T>.size <= lo + 4096 else { return }
            base.storeBytes(of: v.littleEndian, toByteOffset: offset - lo, as: T.self)
        }
        for (z, spanned) in n.zoneSpannedPages.enumerated() { put(Self.pglistNodeZones + z * Self.zoneSize + Self.zoneSpannedPages, spanned) }
        put(Self.pglistNrZones, n.nrZones)
        put(Self.pglistNodeStartPFN, n.startPFN)
        put(Self.pglistNodePresentPages, n.presentPages)
        put(Self.pglistNodeSpannedPages, n.spannedPages)
        put(Self.pglistNodeID, Int32(node))
    }

    /// Bytes of generated page `pfn`.
    public func generatedPage(_ pfn: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 4096)
        out.withUnsafeMutableBytes { generate(pfn, into: $0) }
        return out
    }

    static func index(_ va: UInt64, level: UInt64) -> Int { Int((va >> level) & 511) }

    // MARK: Struct pages

    /// The zone index of a PFN: DMA below 16 MiB, DMA32 below 4 GiB, Normal above.
    static func zone(_ pfn: UInt64) -> UInt64 { UInt64(X86Zones.index(ofAddress: GuestFrameNumber(pfn).address.value)) }

    /// The node of a PFN (`page_to_nid()`): the last node starting at or below it.
    /// - Complexity: O(log nodes); O(1) on a one-node guest.
    func node(_ pfn: UInt64) -> UInt64 {
        let starts = input.nodeStarts
        guard !starts.isEmpty, pfn >= starts[0].pfn else { return 0 }
        var lo = 0, hi = starts.count
        while hi - lo > 1 { let mid = (lo + hi) / 2; if starts[mid].pfn <= pfn { lo = mid } else { hi = mid } }
        return UInt64(starts[lo].node)
    }

    /// `page->flags` before the page flags: the zone (`set_page_zone()`)
    /// and the node (`set_page_node()`) fields.
    func flagsFields(_ pfn: UInt64, zone: UInt64) -> UInt64 {
        zone << PageFlag.zonesShift | node(pfn) << PageFlag.nodesShift
    }

    /// A stand-in kernel-data address for zone `zone` of `pfn`'s node's
    /// `pglist_data` (list heads in struct pages): node 0's as before,
    /// other nodes' after the other stand-ins.
    func zoneVirtual(_ pfn: UInt64, zone: UInt64) -> UInt64 {
        let n = node(pfn)
        return n == 0 ? kernelDataVirtual + zone * 0x800 : kernelDataVirtual + 0x8000 + (n - 1) * 0x2800 + zone * 0x800
    }

    /// Fills the 64 struct pages from `firstPFN` at `base`, one role run at
    /// a time. Free and unaccepted runs differ from page to page only in
    /// the self-linked `lru` of their tails, so only block heads go through
    /// `structPage(_:role:run:)`; the result is the same bytes.
    func fillStructPages(_ firstPFN: UInt64, into base: UnsafeMutableRawPointer) {
        let end = firstPFN + 64
        var pfn = firstPFN
        while pfn < end {
            let (typedRun, role) = roles.run(containing: GuestFrameNumber(pfn))
            let run = typedRun.raw
            let stop = min(end, run.upperBound)
            switch role {
            case .free, .unacceptedBlock, .reserved:
                fillUniformRun(pfn..<stop, role: role, run: run, into: base + Int(pfn - firstPFN) * 64)
            case .slab, .pageCache, .anonymous, .transparentHuge, .hugetlb:
                for p in pfn..<stop { structPage(p, role: role, run: run).store(to: base + Int(p - firstPFN) * 64) }
            }
            pfn = stop
        }
    }

    /// Struct pages of a reserved, free or unaccepted run: every page is
    /// the run's tail page with its own `lru` address, except the heads of
    /// buddy blocks (free) and of 4 MiB blocks (unaccepted).
    private func fillUniformRun(_ pfns: Range<UInt64>, role: PageRole, run: Range<UInt64>, into base: UnsafeMutableRawPointer) {
        var tail = structPage(pfns.lowerBound, role: role, run: run)
        var nextHead: UInt64
        switch role {
        case .free:
            let (h, o) = Self.buddyBlock(pfns.lowerBound, in: run)
            nextHead = h == pfns.lowerBound ? h : h + (1 << o)
            if h == pfns.lowerBound { tail = structPage(pfns.lowerBound + 1 < run.upperBound ? pfns.lowerBound + 1 : pfns.lowerBound, role: role, run: run) }
        case .unacceptedBlock:
            nextHead = alignUp(pfns.lowerBound, 1024)
            if nextHead == pfns.lowerBound { tail = structPage(pfns.lowerBound + 1, role: role, run: run) }
        default:
            nextHead = .max
        }
        for p in pfns {
            let at = base + Int(p - pfns.lowerBound) * 64
            if p == nextHead {
                structPage(p, role: role, run: run).store(to: at)
                nextHead = role == .free ? p + (1 << Self.buddyBlock(p, in: run).order) : p + 1024
                continue
            }
            tail.word1 = StructPage.lruAddress(of: p); tail.word2 = tail.word1
            tail.store(to: at)
        }
    }

    /// The struct page of `pfn`, whose role is `role` over the maximal run `run`.
    public func structPage(_ pfn: UInt64) -> StructPage {
        let (run, role) = roles.run(containing: GuestFrameNumber(pfn))
        return structPage(pfn, role: role, run: run.raw)
    }

    /// The buddy block holding `pfn` in the free run `run`: the largest
    /// aligned block of order ≤ 10 inside the run (`__free_one_page()` merges
    /// to exactly these).
    static func buddyBlock(_ pfn: UInt64, in run: Range<UInt64>) -> (head: UInt64, order: UInt64) {
        var o: UInt64 = 10
        while true {
            let head = pfn & ~((1 << o) - 1)
            if head >= run.lowerBound && head + (1 << o) <= run.upperBound { return (head, o) }
            o -= 1
        }
    }

    func structPage(_ pfn: UInt64, role: PageRole, run: Range<UInt64>) -> StructPage {
        let zone = Self.zone(pfn)
        var p = StructPage()
        p.flags = flagsFields(pfn, zone: zone)
        let selfLRU = StructPage.lruAddress(of: pfn)
        p.word1 = selfLRU; p.word2 = selfLRU       // INIT_LIST_HEAD(&page->lru) in __init_single_page()
        let zoneVirtual = self.zoneVirtual(pfn, zone: zone)
        switch role {
        case .reserved:
            p.flags |= 1 << PageFlag.reserved
            p.refcount = 1
        case .free:
            let (head, order) = Self.buddyBlock(pfn, in: run)
            guard head == pfn else { break }
            let freeList = zoneVirtual + 0x100 + order * 0x58 + 0x10   // free_area[order].free_list[MIGRATE_MOVABLE]
            let nextHead = head + (1 << order)
            p.word1 = nextHead < run.upperBound ? StructPage.lruAddress(of: nextHead) : freeList
            p.word2 = head > run.lowerBound ? StructPage.lruAddress(of: Self.buddyBlock(head - 1, in: run).head) : freeList
            p.privateValue = order                         // set_buddy_order()
            p.mapcount = PageType.buddy.word
        case .unacceptedBlock:
            guard pfn % 1024 == 0 else { break }
            let listHead = zoneVirtual + 0x700             // zone->unaccepted_pages
            p.word1 = pfn + 1024 < run.upperBound ? StructPage.lruAddress(of: pfn + 1024) : listHead
            p.word2 = pfn > run.lowerBound ? StructPage.lruAddress(of: pfn - 1024) : listHead
            if input.hasUnacceptedType { p.mapcount = PageType.unaccepted.word }
        case .slab:
            if let f = slabFolio(pfn, run: run), f.head != pfn {
                return folioTail(pfn, head: f.head, order: f.order, mapped: false, hugetlb: false, zone: zone)
            }
            if slabFolio(pfn, run: run) != nil { p.flags |= 1 << PageFlag.head }
            // struct slab: slab_cache, slab_list, freelist, counters, __page_type.
            p.word1 = kernelDataVirtual + 0x2000 + (pfn % 8) * 0x100
            p.word2 = StructPage.address(of: pfn) + 16
            p.mapping = StructPage.address(of: pfn) + 16
            p.index = X86Layout.pageOffset + GuestFrameNumber(pfn).address.value + (pfn % 7) * 64
            p.privateValue = 0x8040_0040
            p.mapcount = PageType.slab.word
            p.refcount = 1
        case .pageCache:
            p.flags |= 1 << PageFlag.lru | 1 << PageFlag.uptodate | 1 << PageFlag.referenced
            p.word1 = StructPage.lruAddress(of: pfn + 1); p.word2 = StructPage.lruAddress(of: pfn &- 1)
            p.mapping = kernelDataVirtual + 0x4000 + ((pfn >> 8) % 16) * 0x200   // one address_space per 1 MiB file
            p.index = pfn & 0xff
            p.refcount = 1
        case .anonymous:
            p.flags |= 1 << PageFlag.lru | 1 << PageFlag.uptodate | 1 << PageFlag.swapbacked | 1 << PageFlag.active
            p.word1 = StructPage.lruAddress(of: pfn + 1); p.word2 = StructPage.lruAddress(of: pfn &- 1)
            p.mapping = (kernelDataVirtual + 0x6000 + (GuestFrameNumber(pfn).region2M.value % 16) * 0x80) | 1     // anon_vma | PAGE_MAPPING_ANON
            p.index = 0x7f00_0000 + (pfn & 0xf_ffff)
            p.mapcount = 0
            p.refcount = 1
        case .transparentHuge, .hugetlb:
            return folioPage(pfn, role: role, run: run, zone: zone)
        }
        if role == .free || role == .unacceptedBlock { p.refcount = 0 }   // __free_pages_core(): set_page_count(p, 0)
        return p
    }

    /// A page of a 2 MiB folio (6.16 `struct folio` over the first pages):
    /// the head with `PG_head`; the first tail's `_flags_1` holding the order
    /// (`folio_set_order()`) and the folio's counts; every tail's
    /// `compound_head` the head's address | 1 (`prep_compound_tail()`), and
    /// `TAIL_MAPPING` from the third tail on. A THP is PMD-mapped once (head
    /// `_mapcount` -1, on the LRU, anonymous); a free hugetlb folio has
    /// `PGTY_hugetlb` and sits on the hstate free list with refcount 0.
    func folioPage(_ pfn: UInt64, role: PageRole, run: Range<UInt64>, zone: UInt64) -> StructPage {
        let head = pfn & ~511
        if input.compoundInfo, pfn != head {
            return folioTail(pfn, head: head, order: 9, mapped: role == .transparentHuge, hugetlb: role == .hugetlb, zone: zone)
        }
        var p = StructPage()
        p.flags = flagsFields(pfn, zone: zone)
        let listHead = kernelDataVirtual + 0x7000 + (role == .hugetlb ? 0x100 : 0)   // hstate free list / LRU list head
        switch pfn - head {
        case 0:
            p.flags |= 1 << PageFlag.head
            p.word1 = head + 512 < run.upperBound ? StructPage.lruAddress(of: head + 512) : listHead
            p.word2 = head > run.lowerBound ? StructPage.lruAddress(of: head - 512) : listHead
            if role == .transparentHuge {
                p.flags |= 1 << PageFlag.lru | 1 << PageFlag.uptodate | 1 << PageFlag.swapbacked | 1 << PageFlag.active
                p.mapping = (kernelDataVirtual + 0x6000 + (GuestFrameNumber(pfn).region2M.value % 16) * 0x80) | 1    // anon_vma | PAGE_MAPPING_ANON
                p.index = 0x7f00_0000 + (pfn & 0xf_ffff)
                p.refcount = 2                                                             // the mapping and the LRU
            } else {
                p.mapcount = PageType.hugetlb.word
            }
        case 1:
            p.flags |= 9                                      // _flags_1: folio order
            p.word1 = StructPage.address(of: head) | 1
            p.word2 = role == .transparentHuge ? 0 : 0xffff_ffff_ffff_ffff   // _large_mapcount, _entire_mapcount
            p.mapping = 512                                   // _folio_nr_pages
        default:
            p.word1 = StructPage.address(of: head) | 1
            if pfn - head >= 3 { p.mapping = PageFlag.tailMapping }
        }
        return p
    }

    /// The slab folio holding `pfn` in the slab run `run`, when slabs are
    /// folios (`slabOrder` > 0) and the naturally aligned block lies wholly
    /// in the run; nil for an order-0 slab page.
    func slabFolio(_ pfn: UInt64, run: Range<UInt64>) -> (head: UInt64, order: UInt64)? {
        let order = input.slabOrder
        guard order > 0 else { return nil }
        let head = pfn & ~((1 << order) - 1)
        return head >= run.lowerBound && head + (1 << order) <= run.upperBound ? (head, order) : nil
    }

    /// Word 1 of a tail (`set_compound_head()`): before 7.1 the head's
    /// address | 1; from 7.1, where `compound_info_has_mask()` holds (a
    /// 64-byte struct page and CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP, as x86-64
    /// distribution kernels are built), `GENMASK(63, order + 6) | 1`, the
    /// mask that turns a tail's address into its head's. Bit 0 marks a tail
    /// either way.
    func compoundInfo(head: UInt64, order: UInt64) -> UInt64 {
        input.compoundInfo ? ~((1 << (order + 6)) - 1) | 1 : StructPage.address(of: head) | 1
    }

    /// A tail page of a 2^`order` folio as `prep_compound_page()` leaves it
    /// in 6.15 and later, with 7.1's `compound_info` (used for 7.1 folios and
    /// for slab folios): every tail `TAIL_MAPPING`, private 0, its `lru.prev`
    /// still self-linked from `__init_single_page()`; then
    /// `prep_compound_head()` writes page[1] (the order in `_flags_1`,
    /// `_large_mapcount` and `_entire_mapcount` -1, `_mm_id_mapcount` -1,
    /// `_nr_pages`) and, for order > 1, page[2]'s self-linked
    /// `_deferred_list`. A PMD-mapped THP then has one mapping
    /// (`_large_mapcount` and `_entire_mapcount` 0, `_nr_pages_mapped`
    /// ENTIRELY_MAPPED, mm id 1 with mapcount 0); a hugetlb folio's page[3]
    /// has NULL subpool and cgroups (`init_new_hugetlb_folio()`).
    func folioTail(_ pfn: UInt64, head: UInt64, order: UInt64, mapped: Bool, hugetlb: Bool, zone: UInt64) -> StructPage {
        var p = StructPage()
        p.flags = flagsFields(pfn, zone: zone)
        p.word1 = compoundInfo(head: head, order: order)
        p.word2 = StructPage.lruAddress(of: pfn)
        p.mapping = PageFlag.tailMapping
        func pair(_ lo: Int32, _ hi: Int32) -> UInt64 { UInt64(UInt32(bitPattern: lo)) | UInt64(UInt32(bitPattern: hi)) << 32 }
        switch pfn - head {
        case 1:
            p.flags |= order                                                // _flags_1: folio_set_order()
            p.word2 = mapped ? pair(0, 0x80_0000) : pair(-1, 0)             // _large_mapcount, _nr_pages_mapped
            p.mapping = mapped ? pair(0, 0) : pair(-1, 0)                   // _entire_mapcount, _pincount
            p.index = mapped ? pair(0, -1) : pair(-1, -1)                   // _mm_id_mapcount[2]
            p.privateValue = mapped ? 1 : 0                                 // _mm_ids
            p.memcg = 1 << order                                            // _nr_pages
        case 2 where order > 1:
            p.word2 = StructPage.address(of: pfn) + 16                       // _deferred_list, INIT_LIST_HEAD
            p.mapping = StructPage.address(of: pfn) + 16
        case 3 where hugetlb:
            p.word2 = 0; p.mapping = 0                                      // _hugetlb_subpool, _hugetlb_cgroup
        default:
            break
        }
        return p
    }

    // MARK: VMCOREINFO

    /// The VMCOREINFO note of a 6.16 x86-64 kernel (`kernel/vmcore_info.c`,
    /// `arch/x86/kernel/vmcore_info_64.c`) for this guest, built as
    /// distribution kernels are, with CONFIG_NUMA: `crash_save_vmcoreinfo_init()`
    /// writes `SYMBOL(node_online_map)` (every kernel) and the `pglist_data`
    /// offsets, `arch_crash_save_vmcoreinfo()` `SYMBOL(node_data)` and
    /// `LENGTH(node_data)`; no `SYMBOL(mem_map)`/`contig_page_data` (those are
    /// !CONFIG_NUMA). Lines the model's tools do not need (`swapper_pg_dir`,
    /// the log buffer's, kallsyms') are left out.
    public var vmcoreinfo: String {
        func hex(_ v: UInt64) -> String { String(v, radix: 16) }
        let text = X86Layout.startKernelMap + X86Layout.physicalStart
        var rng = SplitMix64(seed: input.seed ^ 0xb11d)
        let buildID = (0..<5).map { _ in String(UInt32(truncatingIfNeeded: rng.next()), radix: 16).leftPadded(8, with: "0") }.joined()
        var l: [String] = [
            "OSRELEASE=\(input.release)", "BUILD-ID=\(buildID)", "PAGESIZE=4096",
            "SYMBOL(init_uts_ns)=\(hex(kernelVirtual(utsPage)))", "OFFSET(uts_namespace.name)=0",
            "SYMBOL(node_online_map)=\(hex(kernelVirtual(nodeOnlineMap)))",
            "SYMBOL(_stext)=\(hex(text))", "NUMBER(VMALLOC_START)=0x\(hex(X86Layout.vmallocStart))",
            "SYMBOL(vmemmap)=\(hex(X86Layout.vmemmapStart))",
            "SYMBOL(mem_section)=\(hex(X86Layout.pageOffset + rootArray))", "LENGTH(mem_section)=\(X86Layout.sectionRoots)",
            "SIZE(mem_section)=16", "OFFSET(mem_section.section_mem_map)=0",
            "NUMBER(SECTION_SIZE_BITS)=\(X86Layout.sectionSizeBits)", "NUMBER(MAX_PHYSMEM_BITS)=\(X86Layout.maxPhysmemBits)",
            "SIZE(page)=64", "SIZE(pglist_data)=174592", "SIZE(zone)=\(Self.zoneSize)", "SIZE(free_area)=88", "SIZE(list_head)=16",
            "SIZE(nodemask_t)=128",
            "OFFSET(page.flags)=0", "OFFSET(page._refcount)=52", "OFFSET(page.mapping)=24", "OFFSET(page.lru)=8",
            "OFFSET(page._mapcount)=48", "OFFSET(page.private)=40",
            input.compoundInfo ? "OFFSET(page.compound_info)=8" : "OFFSET(page.compound_head)=8",
            "OFFSET(pglist_data.node_zones)=\(Self.pglistNodeZones)", "OFFSET(pglist_data.nr_zones)=\(Self.pglistNrZones)",
            "OFFSET(pglist_data.node_start_pfn)=\(Self.pglistNodeStartPFN)",
            "OFFSET(pglist_data.node_spanned_pages)=\(Self.pglistNodeSpannedPages)",
            "OFFSET(pglist_data.node_id)=\(Self.pglistNodeID)",
            "OFFSET(zone.free_area)=256", "OFFSET(zone.vm_stat)=1536", "OFFSET(zone.spanned_pages)=\(Self.zoneSpannedPages)",
            "OFFSET(free_area.free_list)=0", "OFFSET(list_head.next)=0", "OFFSET(list_head.prev)=8",
            "LENGTH(zone.free_area)=11", "LENGTH(free_area.free_list)=6",
            "NUMBER(NR_FREE_PAGES)=0", "NUMBER(PG_lru)=\(PageFlag.lru)", "NUMBER(PG_private)=\(PageFlag.privateFlag)",
            "NUMBER(PG_swapcache)=\(PageFlag.swapcache)", "NUMBER(PG_swapbacked)=\(PageFlag.swapbacked)",
            "NUMBER(PG_head_mask)=\(1 << PageFlag.head)", "NUMBER(PG_hwpoison)=\(PageFlag.hwpoison)",
            "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=\(PageType.buddy.number)",
            "NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=\(PageType.hugetlb.number)",
            "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=\(PageType.offline.number)",
            "NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=\(PageType.slab.number)",
        ]
        if input.exportsUnacceptedNumber { l.append("NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)=\(PageType.unaccepted.number)") }
        l += [
            "NUMBER(phys_base)=\(physBase)", "SYMBOL(init_top_pgt)=\(hex(kernelVirtual(topPGT)))",
            "NUMBER(pgtable_l5_enabled)=0",
            "SYMBOL(node_data)=\(hex(kernelVirtual(nodeDataArray)))", "LENGTH(node_data)=\(Self.maxNumNodes)",
            "KERNELOFFSET=0", "NUMBER(KERNEL_IMAGE_SIZE)=\(X86Layout.kernelImageSize)",
            "NUMBER(sme_mask)=0", "CRASHTIME=\(input.crashTime)",
        ]
        return l.joined(separator: "\n") + "\n"
    }

    /// The kernel-text mapping of a physical address inside the image
    /// (the offset first: a kernel kexec loaded high, above 2 GiB, would
    /// overflow `__START_KERNEL_map + phys`).
    func kernelVirtual(_ phys: UInt64) -> UInt64 { X86Layout.startKernelMap + (phys - physBase) }
}

extension Array where Element == UInt64 {
    /// Binary search in an ascending array.
    func binarySearchContains(_ v: UInt64) -> Bool {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        return lo < count && self[lo] == v
    }
}
