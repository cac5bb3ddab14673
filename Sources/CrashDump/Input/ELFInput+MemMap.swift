import MemoryModel

/// The first kernel's struct pages as makedumpfile finds them in an ELF
/// vmcore without a vmlinux: from VMCOREINFO, the SPARSEMEM_EXTREME
/// `mem_section` root array and roots (`get_mem_section()`,
/// `get_mm_sparsemem()`), each present section's `section_mem_map`
/// decoded to its mem_map address (`sparse_decode_mem_map()`), and virtual
/// addresses translated through the kernel's own 4-level page tables from
/// `init_top_pgt` (`vtop4_x86_64()`), reading every table from the file.
struct FileMemMap {
    let file: ELFInput
    /// Physical address of `init_top_pgt`.
    let topPGT: UInt64
    /// Present sections with a mem_map: section number and the virtual
    /// address of the struct page of the section's first PFN.
    private(set) var sections: [(number: UInt64, memMap: UInt64)] = []
    let pageSize: UInt64 = 4096

    /// Low flag bits of `section_mem_map` (PRESENT, HAS_MEM_MAP, ONLINE, EARLY, ...).
    static let sectionMapFlags: UInt64 = 0x3f
    static let sectionHasMemMap: UInt64 = 1 << 1
    /// The most `mem_section` roots read: NR_SECTION_ROOTS with 52-bit
    /// physical addresses (`(1 << (52 - 27)) / 256`).
    static let maximumSectionRoots: Int64 = (1 << (52 - 27)) / 256

    init(file: ELFInput, vmcoreinfo: VmcoreinfoNumbers, maxMapnr: UInt64) throws {
        self.file = file
        func need<T>(_ v: T?, _ name: String) throws -> T {
            guard let v else {
                throw CocomemError(.unsupported, "this vmcore's VMCOREINFO has no \(name), which makedumpfile needs to find the struct pages for dump levels above 1")
            }
            return v
        }
        let memSection = try need(vmcoreinfo.symbols["mem_section"], "SYMBOL(mem_section)")
        let roots = try need(vmcoreinfo.lengths["mem_section"], "LENGTH(mem_section)")
        let top = try need(vmcoreinfo.symbols["init_top_pgt"], "SYMBOL(init_top_pgt)")
        let physBase = try need(vmcoreinfo.numbers["phys_base"], "NUMBER(phys_base)")
        let sectionBits = try need(vmcoreinfo.numbers["SECTION_SIZE_BITS"], "NUMBER(SECTION_SIZE_BITS)")
        guard (vmcoreinfo.numbers["pgtable_l5_enabled"] ?? 0) == 0 else {
            throw CocomemError(.unsupported, "this vmcore's kernel uses 5-level page tables, which are not walked")
        }
        guard sectionBits == Int64(X86Layout.sectionSizeBits) else {
            throw CocomemError(.unsupported, "SECTION_SIZE_BITS \(sectionBits): only x86-64's 27 is read")
        }
        guard vmcoreinfo.sizes["page"] == 64, vmcoreinfo.sizes["mem_section"] == 16 else {
            throw CocomemError(.unsupported, "struct page of \(vmcoreinfo.sizes["page"].map(String.init) ?? "unknown") bytes or struct mem_section of \(vmcoreinfo.sizes["mem_section"].map(String.init) ?? "unknown") bytes: only the 64/16-byte x86-64 layout is read")
        }
        // init_top_pgt is in the kernel's data: __START_KERNEL_map maps phys_base.
        topPGT = top &- X86Layout.startKernelMap &+ UInt64(bitPattern: physBase)
        let pagesPerSection: UInt64 = 1 << (UInt64(sectionBits) - 12)
        let perRoot = pageSize / 16
        // NR_SECTION_ROOTS on x86-64: 2^(MAX_PHYSMEM_BITS 52 - SECTION_SIZE_BITS 27) sections, 256 per root.
        guard roots > 0, roots <= Self.maximumSectionRoots else {
            throw CocomemError(.invalidArgument, "this vmcore's VMCOREINFO has LENGTH(mem_section)=\(roots), not between 1 and \(Self.maximumSectionRoots) (NR_SECTION_ROOTS for 52-bit physical addresses)")
        }
        // Only the roots whose sections start below max_mapnr are read: the walk is bounded by the PT_LOADs.
        let usefulRoots = min(UInt64(roots), maxMapnr / (perRoot * pagesPerSection) + 1)
        for r in 0..<usefulRoots {
            guard let slot = translate(memSection &+ r * 8) else {
                throw CocomemError(.unsupported, "the mem_section root array at \(hex(memSection)) is not mapped in this vmcore")
            }
            let root = readU64(slot)
            guard root != 0 else { continue }
            guard let rootPhys = translate(root) else { throw CocomemError(.unsupported, "mem_section root \(r) at \(hex(root)) is not mapped") }
            for k in 0..<perRoot {
                let number = r * perRoot + k
                guard number * pagesPerSection < maxMapnr else { break }
                let coded = readU64(rootPhys + k * 16)
                guard coded & Self.sectionHasMemMap != 0 else { continue }
                // sparse_decode_mem_map(): the coded value is mem_map minus the section's first PFN.
                sections.append((number, (coded & ~Self.sectionMapFlags) &+ number * pagesPerSection * 64))
            }
        }
    }

    func readU64(_ paddr: UInt64) -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { file.read(paddr: paddr, into: $0) }
        return UInt64(littleEndian: v)
    }

    /// `vtop4_x86_64()`: the physical address of `vaddr`, or nil where a
    /// level is not present. 1 GiB and 2 MiB leaves (PSE) end the walk.
    func translate(_ vaddr: UInt64) -> UInt64? {
        let frame: UInt64 = 0x000f_ffff_ffff_f000
        var table = topPGT
        for shift: UInt64 in [39, 30, 21, 12] {
            let e = readU64(table + ((vaddr >> shift) & 511) * 8)
            guard e & 1 != 0 else { return nil }
            if shift == 12 { return (e & frame) + (vaddr & 0xfff) }
            if shift != 39, e & 0x80 != 0 {
                let size: UInt64 = 1 << shift
                return (e & frame & ~(size - 1)) + (vaddr & (size - 1))
            }
            table = e & frame
        }
        return nil
    }
}

/// The memmap pages a walk has read from an input mapping, given back a
/// window at a time (`ELFInput.release`): the walk reads every struct page
/// of the guest once, 1/64 of its memory (256 MiB at 16 GiB), and pages left
/// mapped stay in the process's resident set until the mapping goes.
/// makedumpfile maps `/proc/vmcore` a window at a time and unmaps the
/// window before it maps the next (`read_with_mmap()`,
/// `update_mmap_range()`), so its RSS does not grow with the guest.
///
/// Reads are noted by file offset; the window is the span from the lowest
/// to the highest byte noted since the last release, given back when it
/// would pass `window` bytes. A memmap laid out in order (a node's
/// `sparse_buffer_alloc()` buffer) is then released in `window`-sized
/// pieces, one system call each.
struct MappingRelease {
    let file: ELFInput
    /// The most bytes of the input the walk keeps mapped between releases.
    static let window: UInt64 = 1 << 20
    private var lo: UInt64 = 0, hi: UInt64 = 0
    /// Called after each release (tests measure the mapping's RSS there).
    var released: (() -> Void)? = nil

    init(_ file: ELFInput) { self.file = file }

    /// Notes that `count` bytes at physical `paddr` were read from the mapping.
    /// - Complexity: O(log PT_LOADs), plus a system call per window.
    mutating func note(paddr: UInt64, count: UInt64) {
        guard file.mapping != nil, let at = file.fileOffset(paddr: paddr) else { return }
        let end = at &+ count
        guard lo < hi else { (lo, hi) = (at, end); return }
        let (l, h) = (min(lo, at), max(hi, end))
        if h - l > Self.window { flush(); (lo, hi) = (at, end) } else { (lo, hi) = (l, h) }
    }

    /// Releases what is noted.
    mutating func flush() {
        guard lo < hi else { return }
        file.release(fileBytes: lo, hi)
        (lo, hi) = (0, 0)
        released?()
    }
}

/// Reads struct pages a memmap page at a time, as makedumpfile's
/// `PGMM_CACHED` buffer does, translating each memmap page once; the
/// memmap pages read are given back to the mapping a window at a time
/// (`MappingRelease`).
struct StructPageReader {
    let memMap: FileMemMap
    private var cachedVaddr = UInt64.max
    private var page = [UInt8](repeating: 0, count: 4096)
    var release: MappingRelease

    init(_ m: FileMemMap) { memMap = m; release = MappingRelease(m.file) }

    /// The struct page at virtual address `vaddr`.
    mutating func read(_ vaddr: UInt64) throws -> StructPage {
        let base = vaddr & ~4095
        if base != cachedVaddr {
            guard let phys = memMap.translate(base) else {
                throw CocomemError(.unsupported, "the struct page at \(hex(vaddr)) is not mapped in this vmcore (Can't read the buffer of struct page)")
            }
            page.withUnsafeMutableBytes { memMap.file.read(paddr: phys, into: $0) }
            release.note(paddr: phys, count: 4096)
            cachedVaddr = base
        }
        return page.withUnsafeBytes { StructPage.load(from: $0.baseAddress! + Int(vaddr - base)) }
    }
}

extension GuestMemoryImage {
    /// makedumpfile's 2nd bitmap of an ELF vmcore file (`create_2nd_bitmap()`):
    /// the PT_LOADs' pages without their unstored part
    /// (`exclude_nodata_pages()`, by `version`), then the filter's walk — the
    /// same as on a simulated guest — with the struct pages read from the
    /// file through its VMCOREINFO and page tables.
    /// - Complexity: O(PT_LOADs log PT_LOADs) without a walk; with one,
    ///   O(struct pages read from the file + memmap pages translated), a
    ///   run of struct pages the file stores no bytes of being one step.
    func filterInput(_ f: MakedumpfileFilter?, version: MakedumpfileVersion) throws -> FilterResult {
        var out = try walkInput(f)
        if let file = input { out.clear(file.nodataFrames(roundsUp: version.nodataRoundsUp)) }
        return out
    }

    /// The walk alone; `byRuns` false reads every struct page, for tests;
    /// `released`, if given, is called each time the walk gives a window of
    /// memmap pages back to the input mapping (`MappingRelease`). Nothing
    /// the walk read stays mapped once it returns (`ELFInput.releaseAll`).
    func walkInput(_ f: MakedumpfileFilter?, byRuns: Bool = true, released: (() -> Void)? = nil) throws -> FilterResult {
        guard let f, let file = input, vmcoreinfo != nil, f.walksMemMap else { return filter(nil) }
        // Page tables and mem_section roots (read by `translate`, a few pages), and whatever a failed walk left.
        defer { file.releaseAll() }
        // The filter has read this image's VMCOREINFO once already.
        let m = try FileMemMap(file: file, vmcoreinfo: f.n, maxMapnr: maxMapnr)
        var reader = StructPageReader(m)
        reader.release.released = released
        defer { reader.release.flush() }
        let memMapOf = Dictionary(uniqueKeysWithValues: m.sections.map { ($0.number, $0.memMap) })
        // The walk goes a section at a time: look its mem_map up once.
        var section = UInt64.max, sectionMemMap: UInt64 = 0
        func vaddr(_ pfn: UInt64) -> UInt64 {
            if pfn / X86Layout.pagesPerSection != section {
                section = pfn / X86Layout.pagesPerSection
                sectionMemMap = memMapOf[section]!
            }
            return sectionMemMap &+ (pfn % X86Layout.pagesPerSection) * 64
        }
        // The probe looks its section up itself. It is an optional, so
        // escaping, closure: had it shared `vaddr`'s section cache with the
        // struct-page reader, the cache would be boxed and every struct page's
        // `vaddr` would pay dynamic exclusivity checks on it.
        let zeroRun: (UInt64, UInt64) -> (zero: UInt64, nextCheck: UInt64) = { pfn, limit in
            let memMap = memMapOf[pfn / X86Layout.pagesPerSection]!
            return m.zeroStructPages(from: memMap &+ (pfn % X86Layout.pagesPerSection) * 64, pages: limit - pfn)
        }
        return try walkMemMap(f, sections: m.sections.map(\.number), structPage: { pfn in try reader.read(vaddr(pfn)) },
                              zeroRun: byRuns ? zeroRun : nil)
    }
}

extension FileMemMap {
    /// `vtop4_x86_64()` returning also how many bytes from `vaddr` the same
    /// leaf maps contiguously, or nil where a level is not present.
    func translateLeaf(_ vaddr: UInt64) -> (paddr: UInt64, bytes: UInt64)? {
        let frame: UInt64 = 0x000f_ffff_ffff_f000
        var table = topPGT
        for shift: UInt64 in [39, 30, 21, 12] {
            let e = readU64(table + ((vaddr >> shift) & 511) * 8)
            guard e & 1 != 0 else { return nil }
            let size: UInt64 = 1 << shift
            if shift == 12 || (shift != 39 && e & 0x80 != 0) {
                return ((e & frame & ~(size - 1)) &+ (vaddr & (size - 1)), size - (vaddr & (size - 1)))
            }
            table = e & frame
        }
        return nil
    }

    /// Struct pages from `vaddr` on (at most `pages`) whose bytes the file
    /// does not store (`ELFInput.zeroPrefix`: zero-filled or in no PT_LOAD),
    /// so they read as all zeros; and the number of struct pages after
    /// which a run of such pages may begin (at least 1). Translates one leaf
    /// per step: a memmap page (64 struct pages) or a 2 MiB leaf (32768).
    /// - Complexity: O(leaves crossed × (levels + log PT_LOADs)).
    func zeroStructPages(from vaddr: UInt64, pages: UInt64) -> (zero: UInt64, nextCheck: UInt64) {
        let want = pages &* 64
        var done: UInt64 = 0
        while done < want {
            guard let (p, leafBytes) = translateLeaf(vaddr &+ done) else { break }
            let n = min(leafBytes, want - done)
            let z = file.zeroPrefix(paddr: p, count: n)
            done += z
            guard z == n else {
                if done / 64 > 0 { return (done / 64, done / 64) }
                // The file stores these bytes: no zero run starts before they end.
                return (0, max(1, divRoundUp(done + file.dataPrefix(paddr: p + z, count: n - z), 64)))
            }
        }
        return (done / 64, max(1, done / 64))
    }
}
