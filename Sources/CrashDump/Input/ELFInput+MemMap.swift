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

/// Reads struct pages a memmap page at a time, as makedumpfile's
/// `PGMM_CACHED` buffer does, translating each memmap page once.
struct StructPageReader {
    let memMap: FileMemMap
    private var cachedVaddr = UInt64.max
    private var page = [UInt8](repeating: 0, count: 4096)

    init(_ m: FileMemMap) { memMap = m }

    /// The struct page at virtual address `vaddr`.
    mutating func read(_ vaddr: UInt64) throws -> StructPage {
        let base = vaddr & ~4095
        if base != cachedVaddr {
            guard let phys = memMap.translate(base) else {
                throw CocomemError(.unsupported, "the struct page at \(hex(vaddr)) is not mapped in this vmcore (Can't read the buffer of struct page)")
            }
            page.withUnsafeMutableBytes { memMap.file.read(paddr: phys, into: $0) }
            cachedVaddr = base
        }
        return page.withUnsafeBytes { StructPage.load(from: $0.baseAddress! + Int(vaddr - base)) }
    }
}

extension GuestMemoryImage {
    /// makedumpfile's filter on an ELF vmcore file: the same walk as on a
    /// simulated guest, with the struct pages read from the file through
    /// its VMCOREINFO and page tables.
    /// - Complexity: O(pages of the present sections).
    func filterInput(_ f: MakedumpfileFilter?) throws -> FilterResult {
        guard let f, let file = input, let text = vmcoreinfo, f.walksMemMap else { return filter(nil) }
        let m = try FileMemMap(file: file, vmcoreinfo: VmcoreinfoNumbers(text: text), maxMapnr: maxMapnr)
        var reader = StructPageReader(m)
        let memMapOf = Dictionary(uniqueKeysWithValues: m.sections.map { ($0.number, $0.memMap) })
        return try walkMemMap(f, sections: m.sections.map(\.number)) { pfn in
            let s = pfn / X86Layout.pagesPerSection
            return try reader.read(memMapOf[s]! &+ (pfn % X86Layout.pagesPerSection) * 64)
        }
    }
}
