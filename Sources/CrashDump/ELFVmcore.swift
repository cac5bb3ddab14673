public import MemoryModel

/// The capture kernel's `/proc/vmcore` as an ELF64 core file, as the kernel
/// builds it: `crash_prepare_elf64_headers()` (one PT_LOAD per RAM range,
/// [0, 1 MiB) and the crash kernel left out) and `fs/proc/vmcore.c`, which
/// merges every CPU's note and the VMCOREINFO note into one PT_NOTE, puts
/// the headers and the notes each in their own page-rounded region, and
/// lays the PT_LOADs out one after the other from there.
public enum ELFVmcore {
    static let ehdrSize: UInt64 = 64, phdrSize: UInt64 = 56
    /// `PAGE_OFFSET` of x86-64 with 4-level paging and no KASLR: `__va(0)`.
    public static let pageOffset: UInt64 = 0xffff_8880_0000_0000

    /// The merged PT_NOTE contents: a `CORE`/NT_PRSTATUS note per CPU, then
    /// `VMCOREINFO` (type 0) if present.
    public static func notes(cpus: Int, vmcoreinfo: String?) -> [UInt8] {
        var w = ByteWriter()
        for cpu in 0..<cpus {
            var prstatus = ByteWriter()
            prstatus.zeros(32)
            prstatus.u32(UInt32(cpu))  // pr_pid: the task running on that CPU (the idle task here)
            prstatus.zeros(336 - 36)
            appendNote(&w, name: "CORE", type: 1, desc: prstatus.bytes)
        }
        if let v = vmcoreinfo { appendNote(&w, name: "VMCOREINFO", type: 0, desc: Array(v.utf8)) }
        return w.bytes
    }

    static func appendNote(_ w: inout ByteWriter, name: String, type: UInt32, desc: [UInt8]) {
        let n = Array(name.utf8) + [0]
        w.u32(UInt32(n.count)); w.u32(UInt32(desc.count)); w.u32(type)
        w.raw(n); w.pad(to: 4)
        w.raw(desc); w.pad(to: 4)
    }

    /// File layout: header region, note region, then each PT_LOAD's data.
    struct Layout {
        var headerRegion: UInt64
        var noteOffset: UInt64
        var noteSize: UInt64
        var loadOffsets: [UInt64]
        var fileSize: UInt64
    }

    static func layout(_ image: GuestMemoryImage, noteSize: UInt64) -> Layout {
        let phnum = UInt64(1 + image.loads.count)
        let headers = alignUp(ehdrSize + phnum * phdrSize, 4096)
        var off = headers + alignUp(noteSize, 4096)
        var loads: [UInt64] = []
        for l in image.loads { loads.append(off); off += l.size }
        return Layout(headerRegion: headers, noteOffset: headers, noteSize: noteSize, loadOffsets: loads, fileSize: off)
    }

    /// The ELF header (`e_phnum` = 1 + PT_LOADs) and the program headers:
    /// the PT_NOTE, then one PT_LOAD per range at its direct-map address.
    static func headers(_ image: GuestMemoryImage, _ l: Layout) -> (ehdr: [UInt8], phdrs: [ELFProgramHeader]) {
        var w = ByteWriter()
        w.raw([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]); w.zeros(8)      // e_ident: ELFCLASS64, LSB, EV_CURRENT
        w.u16(4); w.u16(62); w.u32(1)                                 // ET_CORE, EM_X86_64, EV_CURRENT
        w.u64(0); w.u64(ehdrSize); w.u64(0)                           // e_entry, e_phoff, e_shoff
        w.u32(0); w.u16(UInt16(ehdrSize)); w.u16(UInt16(phdrSize))    // e_flags, e_ehsize, e_phentsize
        w.u16(UInt16(1 + image.loads.count)); w.u16(0); w.u16(0); w.u16(0)
        var phdrs = [ELFProgramHeader(type: ELFProgramHeader.note, flags: 0, offset: l.noteOffset, vaddr: 0, paddr: 0,
                                      filesz: l.noteSize, memsz: l.noteSize, align: 0)]
        for (i, r) in image.loads.enumerated() {
            phdrs.append(ELFProgramHeader(type: ELFProgramHeader.load, flags: 7, offset: l.loadOffsets[i], vaddr: pageOffset &+ r.start,   // PF_R | PF_W | PF_X
                                          paddr: r.start, filesz: r.size, memsz: r.size, align: 0))
        }
        return (w.bytes, phdrs)
    }

    /// The ELF header and program headers of the vmcore of `image`, and
    /// its notes: what makedumpfile reads from `/proc/vmcore`.
    static func headers(_ image: GuestMemoryImage) -> (ehdr: [UInt8], phdrs: [ELFProgramHeader], notes: [UInt8]) {
        let n = notes(cpus: image.cpus, vmcoreinfo: image.vmcoreinfo)
        let h = headers(image, layout(image, noteSize: UInt64(n.count)))
        return (h.ehdr, h.phdrs, n)
    }

    /// Size of the ELF file for `image`.
    /// - Complexity: O(PT_LOADs).
    public static func fileSize(_ image: GuestMemoryImage) -> UInt64 {
        layout(image, noteSize: UInt64(notes(cpus: image.cpus, vmcoreinfo: image.vmcoreinfo).count)).fileSize
    }

    /// Writes the ELF vmcore to `path` (through a temporary file);
    /// `progress`, if given, follows the PT_LOAD bytes (holes count as done
    /// when they are passed).
    /// - Complexity: O(pages); zero pages are left as holes of the file.
    public static func write(_ image: GuestMemoryImage, to path: String, progress: (any ProgressReporter)? = nil) throws {
        let total = image.loads.reduce(0) { $0 + $1.size }
        try progress.run(ProgressTask("writing \(path)", total: total)) {
            try writeFile(image, to: path, progress: progress)
        }
    }

    static func writeFile(_ image: GuestMemoryImage, to path: String, progress: (any ProgressReporter)?) throws {
        let n = notes(cpus: image.cpus, vmcoreinfo: image.vmcoreinfo)
        let l = layout(image, noteSize: UInt64(n.count))
        let f = try AtomicFile(path: path)
        let h = headers(image, l)
        var w = ByteWriter()
        w.raw(h.ehdr)
        for p in h.phdrs { p.encode(into: &w) }
        try f.write(w.bytes, at: 0)
        try f.write(n, at: l.noteOffset)
        for (i, load) in image.loads.enumerated() {
            let base = l.loadOffsets[i]
            var pfnRuns: [(Range<GuestFrameNumber>, PageClass)] = []
            image.classes.forEachRun(in: load.lowerAddress.frame..<load.upperAddress.frame) { pfnRuns.append(($0, $1)) }
            for (pfns, c) in pfnRuns {
                guard !c.readsAsZero else { progress?.advance(by: ByteCount.frames(UInt64(pfns.count)).value); continue }
                var pending: UInt64 = 0
                for pfn in pfns {
                    try f.write(image.page(pfn), at: base + pfn.address.value - load.start)
                    pending += 1
                    if pending == 2048 { progress?.advance(by: ByteCount.frames(pending).value); pending = 0 }
                }
                progress?.advance(by: ByteCount.frames(pending).value)
            }
        }
        // Zero pages are not written: extend the file so trailing ones read as zeros.
        try f.setSize(l.fileSize)
        try f.commit()
    }
}
