import MemoryModel

/// What a guest page holds, as far as a dump tool is concerned. Every page
/// of a simulated guest belongs to exactly one class; the class decides its
/// synthetic content and, later, its struct page.
public enum PageClass: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Unaccepted memory. `/proc/vmcore` returns zeros for it
    /// (`pfn_is_ram()` is false: `unaccepted_memory_init_kdump()`).
    case unaccepted
    /// Accepted memory nobody has written since: the TDX module zeroes a page
    /// on TDG.MEM.PAGE.ACCEPT, and guest_memfd hands out cleared pages.
    case freeZero
    /// Kernel text and read-only data.
    case kernelText
    /// Kernel data, bss, per-CPU areas, swiotlb and other memblock allocations.
    case kernelData
    /// The memmap (struct page array, 64 bytes per 4K page).
    case memmap
    /// Page tables (direct map, vmemmap, user).
    case pageTables
    /// Slab and other kernel allocations from the page allocator.
    case slab
    /// Page-cache pages (file data).
    case pageCache
    /// Anonymous user memory.
    case anonymous
    /// The `crashkernel=` reservation: accepted, reserved, never written by
    /// the first kernel, and outside the capture kernel's PT_LOADs.
    case crashKernel
    /// Free pages of the hugetlb pool (`nr_hugepages`): 2 MiB folios taken
    /// from the buddy allocator and never written, so they read as zeros.
    /// Appended last so earlier classes keep their raw values (and seeds).
    case hugetlb

    public var description: String {
        switch self {
        case .unaccepted: "unaccepted"
        case .freeZero: "free (zero)"
        case .kernelText: "kernel text"
        case .kernelData: "kernel data"
        case .memmap: "memmap"
        case .pageTables: "page tables"
        case .slab: "slab"
        case .pageCache: "page cache"
        case .anonymous: "anonymous"
        case .crashKernel: "crash kernel"
        case .hugetlb: "hugetlb pool"
        }
    }

    /// True if the page reads back as 4096 zero bytes.
    public var readsAsZero: Bool { self == .unaccepted || self == .freeZero || self == .crashKernel || self == .hugetlb }

    /// Bytes of every 64-byte record that are random; the rest repeat a
    /// class pattern. This is the stated compressibility of the synthetic
    /// content (docs/DUMPS.md): the more random bytes, the worse it compresses.
    var randomBytesPerRecord: Int {
        switch self {
        case .unaccepted, .freeZero, .crashKernel, .hugetlb: 0
        case .kernelText: 40      // machine code: dense, poorly compressible
        case .kernelData: 16
        case .memmap: 8           // struct pages: flags and pointers, mostly repeating
        case .pageTables: 8       // PTEs: consecutive frame numbers with the same flags
        case .slab: 24
        case .pageCache: 32       // text-like file data
        case .anonymous: 20
        }
    }
}

/// Deterministic synthetic page contents. Each non-zero class has
/// `templatesPerClass` template pages generated from the seed; page `pfn`
/// of a class holds template `(pfn + salt) % templatesPerClass`. Because
/// the template depends only on the PFN modulo a small number, counts per
/// template over any PFN range are O(1), which makes the exact size
/// estimate independent of guest size.
public struct PageContent: Sendable {
    public static let pageSize = 4096
    public static let templatesPerClass: UInt64 = 16
    /// `templates[class][t]`: the bytes of template `t`.
    let templates: [[[UInt8]]]
    public let seed: UInt64
    static let zeroPage = [UInt8](repeating: 0, count: pageSize)

    /// - Complexity: O(classes × templates × page size), once.
    public init(seed: UInt64) {
        self.seed = seed
        var all: [[[UInt8]]] = []
        for c in PageClass.allCases {
            var ts: [[UInt8]] = []
            for t in 0..<Self.templatesPerClass {
                ts.append(c.readsAsZero ? Self.zeroPage : Self.makeTemplate(c, t, seed: seed))
            }
            all.append(ts)
        }
        templates = all
    }

    /// The content of an image read from a vmcore file, which reads every
    /// page from the file and never a template (every template use is
    /// behind `image.input == nil`): each class's templates are the one
    /// shared zero page, so no template is built (seed 0's 112 random
    /// templates cost 7 M instructions, 0.5% of a `-l -d 31` conversion).
    static let unused = PageContent()

    private init() {
        seed = 0
        templates = PageClass.allCases.map { _ in Array(repeating: Self.zeroPage, count: Int(Self.templatesPerClass)) }
    }

    static func makeTemplate(_ c: PageClass, _ t: UInt64, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed ^ (UInt64(c.rawValue) << 32) ^ (t &* 0x9E37_79B9_7F4A_7C15))
        var pattern = [UInt8](repeating: 0, count: 64)
        for i in 0..<64 { pattern[i] = UInt8(truncatingIfNeeded: rng.next()) }
        var page = [UInt8](repeating: 0, count: pageSize)
        let random = c.randomBytesPerRecord
        for record in 0..<(pageSize / 64) {
            for i in 0..<64 {
                page[record * 64 + i] = i < random ? UInt8(truncatingIfNeeded: rng.next()) : pattern[i]
            }
        }
        return page
    }

    /// Template index of page `pfn` of class `c`.
    @inlinable static func template(pfn: UInt64, _ c: PageClass) -> Int {
        Int((pfn &+ UInt64(c.rawValue) &* 7) % templatesPerClass)
    }

    /// The 4096 bytes of page `pfn` of class `c`.
    public func page(pfn: UInt64, class c: PageClass) -> [UInt8] {
        templates[Int(c.rawValue)][Self.template(pfn: pfn, c)]
    }

    /// Number of PFNs in `r` that hold template `t` of class `c`.
    /// - Complexity: O(1).
    static func count(of t: Int, in r: Range<UInt64>, _ c: PageClass) -> UInt64 {
        // pfn holds t  <=>  (pfn + salt) % T == t  <=>  pfn ≡ (t - salt) mod T.
        let T = templatesPerClass
        let salt = (UInt64(c.rawValue) &* 7) % T
        let residue = (UInt64(t) + T - salt) % T
        func upTo(_ n: UInt64) -> UInt64 { n <= residue ? 0 : (n - residue - 1) / T + 1 }  // pfn < n
        return upTo(r.upperBound) - upTo(r.lowerBound)
    }
}
