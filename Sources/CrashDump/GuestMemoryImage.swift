public import MemoryModel

/// The capture kernel's view of a crashed guest: the RAM ranges
/// `/proc/vmcore` exports as PT_LOADs, what each page holds, the CPUs whose
/// `crash_notes` it carries, and the VMCOREINFO text, if any.
///
/// State is per range (an `IntervalMap` of page classes by PFN), so a
/// multi-TiB guest costs as many entries as it has distinct regions.
public struct GuestMemoryImage: Sendable {
    /// Physical ranges of the PT_LOADs, ascending, page-aligned, disjoint.
    public var loads: [AddressRange]
    /// Page class per PFN (the dumped guest's own frames); PFNs outside
    /// `loads` are never read.
    public var classes: IntervalMap<GuestFrameNumber, PageClass>
    public var content: PageContent
    /// Number of CPUs with a `CORE`/NT_PRSTATUS note.
    public var cpus: Int
    /// The VMCOREINFO note text, or nil to leave the note out.
    public var vmcoreinfo: String?
    /// The kernel structures (page tables, mem_section, struct pages) whose
    /// pages replace class templates, if the guest kernel has them modelled.
    public var kernel: KernelStructures?
    /// An ELF vmcore read from a file: its pages come from the file, not
    /// from the model, and it carries its own notes.
    public var input: ELFInput?

    public init(loads: [AddressRange], classes: IntervalMap<GuestFrameNumber, PageClass>, content: PageContent, cpus: Int, vmcoreinfo: String?,
                kernel: KernelStructures? = nil) {
        self.loads = loads
        self.classes = classes
        self.content = content
        self.cpus = cpus
        self.vmcoreinfo = vmcoreinfo
        self.kernel = kernel
    }

    /// The image of an ELF vmcore file (what `makedumpfile in out`
    /// converts): its PT_LOADs, CPUs and VMCOREINFO; page classes are not
    /// known and pages are read from the file.
    public init(input: ELFInput) {
        self.init(loads: input.ranges, classes: IntervalMap(initial: .freeZero), content: .unused,
                  cpus: input.cpus, vmcoreinfo: input.vmcoreinfo)
        self.input = input
    }

    /// True if page `pfn` is a generated kernel structure rather than a class template.
    public func isGenerated(_ pfn: UInt64) -> Bool { kernel?.isGenerated(pfn) ?? false }

    /// `get_max_mapnr()`: one past the highest PFN of any PT_LOAD.
    public var maxMapnr: UInt64 { divRoundUp(loads.map(\.end).max() ?? 0, 4096) }

    /// Pages in all PT_LOADs.
    public var ramPages: UInt64 { loads.reduce(0) { $0 + $1.bytes.frames() } }

    /// The frames of each PT_LOAD (page-aligned), ascending.
    public var loadFrames: [Range<GuestFrameNumber>] { loads.map { $0.lowerAddress.frame..<$0.upperAddress.frame } }

    /// Calls `body(pfnRange, class)` for every run of one class inside the
    /// PT_LOADs, in PFN order.
    /// - Complexity: O(runs).
    public func forEachRun(_ body: (Range<GuestFrameNumber>, PageClass) -> Void) {
        for l in loadFrames { classes.forEachRun(in: l, body) }
    }

    /// Bytes of page `pfn` as `/proc/vmcore` reads them.
    public func page(_ pfn: GuestFrameNumber) -> [UInt8] {
        if let f = input {
            var out = [UInt8](repeating: 0, count: 4096)
            out.withUnsafeMutableBytes { f.read(paddr: pfn.address.value, into: $0) }
            return out
        }
        if let k = kernel, k.isGenerated(pfn.value) { return k.generatedPage(pfn.value) }
        return content.page(pfn: pfn.value, class: classes.value(at: pfn))
    }

    /// Reads `out.count` bytes at physical address `paddr` from the pages,
    /// as a dump tool reads `/proc/vmcore`.
    public func read(paddr: UInt64, into out: UnsafeMutableRawBufferPointer) {
        var done = 0
        while done < out.count {
            let a = GuestPhysicalAddress(paddr + UInt64(done))
            let offset = Int(a.value - a.frame.address.value)
            let n = min(out.count - done, 4096 - offset)
            page(a.frame).withUnsafeBytes { p in
                out.baseAddress!.advanced(by: done).copyMemory(from: p.baseAddress! + offset, byteCount: n)
            }
            done += n
        }
    }

    /// The capture kernel's PT_LOADs: the first kernel's RAM ranges without
    /// [0, 1 MiB) and the crash-kernel region (x86 `elf_header_exclude_ranges()`).
    public static func loads(ram: [AddressRange], excluding crashKernel: AddressRange?) -> [AddressRange] {
        var cuts = [AddressRange(start: 0, end: 1 << 20)]
        if let crashKernel { cuts.append(crashKernel) }
        return ram.subtracting(cuts).map { AddressRange(start: alignUp($0.start, 4096), end: alignDown($0.end, 4096)) }
            .filter { !$0.isEmpty }.sorted { $0.start < $1.start }
    }
}
