import CoCoGuest
public import CostModel
import MemoryModel

/// What to load and how.
public struct KexecRequest: Sendable {
    public var syscall: KexecSyscall = .fileLoad
    public var type: KexecImageType = .normal
    public var payload = KexecPayload()
    public init() {}
}

/// Constants of the x86-64 loaders. Kernel: arch/x86/include/asm/kexec.h,
/// arch/x86/kernel/kexec-bzimage64.c; kexec-tools: kexec/arch/x86_64.
enum KexecX86 {
    static let minPurgatoryAddr: UInt64 = 0x3000
    static let minBootParamAddr: UInt64 = 0x3000
    static let minKernelLoadAddr: UInt64 = 0x10_0000
    static let minInitrdLoadAddr: UInt64 = 0x100_0000
    /// KEXEC_SEGMENT_MAX.
    static let segmentMax = 16
    /// KEXEC_DESTINATION_MEMORY_LIMIT: MAXMEM - 1 with 4-level paging (46 physical address bits).
    static let destinationMemoryLimit: UInt64 = (1 << 46) - 1
    /// sizeof(struct boot_params).
    static let bootParamsBytes: UInt64 = 4096
    /// X86_KEXEC_ELFCOREHDR_STR_LEN: room for " elfcorehdr=0x%016lx".
    static let elfcorehdrStrLen: UInt64 = 30
    static let setupDataHeader: UInt64 = 16
    /// sizeof(struct efi_setup_data): fw_vendor, __unused, tables, smbios, reserved[8].
    static let efiSetupData: UInt64 = 96
    /// X86_KEXEC_RNG_SEED_LENGTH (and kexec-tools' rng_seed[32]).
    static let rngSeed: UInt64 = 32
    /// sizeof(struct ima_setup_data).
    static let imaSetupData: UInt64 = 16
    /// The firmware's EFI memory descriptor size (edk2: sizeof(EFI_MEMORY_DESCRIPTOR) + 8).
    static let efiDescSize: UInt64 = 48
    /// kexec-tools' own `struct efi_mem_descriptor`.
    static let kexecToolsEfiDescSize: UInt64 = 40
    /// The kernel's x86-64 purgatory (`kexec_purgatory`): allocated
    /// sections 0x4000 bytes, with .bss 0x5000 (measured: kexec_file debug
    /// output, "segment[0]: bufsz=0x4000 ... memsz=0x5000").
    static let kernelPurgatory = (bufsz: UInt64(0x4000), memsz: UInt64(0x5000))
    /// kexec-tools' purgatory (its debug output: bufsz=0x70e0 memsz=0x9000).
    static let kexecToolsPurgatory = (bufsz: UInt64(0x70e0), memsz: UInt64(0x9000))
    /// kexec-tools' PURGATORY_CMDLINE_SIZE appended to the setup segment.
    static let purgatoryCmdlineSize: UInt64 = 64
    /// sizeof(Elf64_Ehdr), sizeof(Elf64_Phdr), ELF_CORE_HEADER_ALIGN.
    static let ehdr: UInt64 = 64, phdr: UInt64 = 56, elfCoreHeaderAlign: UInt64 = 4096
}

extension KexecPayload {
    /// kexec_file_load's boot_params segment (`bzImage64_load()`):
    /// boot_params, the command line and room for " elfcorehdr=", 16-byte
    /// aligned, then the EFI runtime map, the EFI setup_data, the RNG seed
    /// setup_data and (CONFIG_IMA_KEXEC) the IMA setup_data.
    var kernelBootParamsBytes: UInt64 {
        let k = KexecX86.self
        var n = alignUp(k.bootParamsBytes + cmdlineBytes + k.elfcorehdrStrLen, 16)
        n += alignUp(efiRuntimeDescriptors * k.efiDescSize, 16)
        n += k.setupDataHeader + k.efiSetupData + k.setupDataHeader + k.rngSeed
        if imaKexec { n += k.setupDataHeader + k.imaSetupData }
        return n
    }

    /// kexec-tools' setup segment (`do_bzImage64_load()`): the real-mode
    /// part (at least a page), the command line and PURGATORY_CMDLINE_SIZE.
    var kexecToolsSetupBytes: UInt64 {
        max(kern16Size, 4096) + cmdlineBytes + KexecX86.purgatoryCmdlineSize
    }
}

extension GuestKernel {
    /// Loads a kexec image the way `kexec_file_load(2)` or kexec-tools with
    /// `kexec_load(2)` does on x86-64, in the order the real load allocates:
    /// - the files first (`loadBuffers`): kexec_file_load reads the bzImage
    ///   and the initrd into vmalloc buffers (`kimage_file_prepare_segments()`
    ///   → `kernel_read_file_from_fd()`); kexec-tools reads them into its own
    ///   memory (`slurp_file()`) before calling kexec_load. These are page
    ///   allocations like any other, so `cond_accept_memory()` may accept
    ///   memory for them before any destination is chosen;
    /// - placement (`bzImage64_load()` / `do_bzImage64_load()`), see
    ///   `KexecPlacement`;
    /// - the checks, and on kernels with Yan Zhao's fix (6.15)
    ///   `accept_memory()` of every destination right after them;
    /// - normal images: the control page and the swap page
    ///   (`kimage_alloc_control_pages()`), then one page per destination
    ///   page for the source copies (`kimage_alloc_page()`) and the
    ///   indirection pages that list them (`kimage_add_entry()`); crash
    ///   images are copied straight into the `crashkernel=` region;
    /// - the file buffers are freed once the segments are loaded
    ///   (`kimage_file_post_load_cleanup()`; kexec-tools exits). What was
    ///   accepted for them stays accepted.
    /// A failed load changes nothing but what the failed search touched and
    /// what its allocations accepted.
    /// - Complexity: O(segments² + placement steps), plus the acceptance.
    public func kexecLoad(_ req: KexecRequest, clock: inout PhaseClock) -> Result<KexecImage, KexecLoadFailure> {
        var image = KexecImage(syscall: req.syscall, type: req.type, segments: [])
        let acceptedBefore = unaccepted?.acceptedBytes ?? 0
        defer { allocationTally = nil }
        let buffers: [Int: UInt64]
        switch loadBuffers(req, clock: &clock) {
        case .failure(let f): return .failure(f)
        case .success(let (tally, pages)): buffers = tally; image.loadBufferPages = pages
        }
        let bufferUse: PageUse = req.syscall == .fileLoad ? .kernel : .anonymous
        let result = loadSegments(req, &image, clock: &clock)
        freeTallied(buffers, use: bufferUse)
        image.acceptedDuringLoad = (unaccepted?.acceptedBytes ?? 0) - acceptedBefore
        return result.map { image }
    }

    /// The pages of the file buffers: the bzImage and the initrd, each
    /// rounded up to pages (vmalloc and kexec-tools' malloc both hand out
    /// whole pages for buffers this size).
    static func loadBufferPages(_ p: KexecPayload) -> UInt64 {
        divRoundUp(p.kernelFileBytes, 4096) + divRoundUp(p.initrdBytes, 4096)
    }

    /// Allocates the file buffers (`kernel_read_file_from_fd()` → vmalloc,
    /// GFP_KERNEL; kexec-tools' `slurp_file()`, user memory), written as the
    /// files are read. Returns the pages taken from each zone, to be freed.
    func loadBuffers(_ req: KexecRequest, clock: inout PhaseClock) -> Result<([Int: UInt64], UInt64), KexecLoadFailure> {
        let pages = Self.loadBufferPages(req.payload)
        let use: PageUse = req.syscall == .fileLoad ? .kernel : .anonymous
        allocationTally = [:]
        var never: Double? = nil
        let (got, o) = allocate(pages: pages, use: use, touch: true, clock: &clock, fullyAcceptedAt: &never, onVCPU: 0)
        let tally = allocationTally ?? [:]
        allocationTally = nil
        if case .terminated(let why) = o { return .failure(KexecLoadFailure(errno: "EFAULT", message: why)) }
        guard got == pages else {
            freeTallied(tally, use: use)
            let who = req.syscall == .fileLoad ? "kernel_read_file_from_fd(): vmalloc" : "kexec-tools: slurp_file(): malloc"
            return .failure(KexecLoadFailure(errno: "ENOMEM", message: "\(who) of the kernel and initrd: out of memory after \(got) of \(pages) pages"))
        }
        return .success((tally, pages))
    }

    /// `vfree()` / `free()` of a temporary buffer: its pages go back to the
    /// zones that gave them, accepted.
    /// - Complexity: O(zones).
    func freeTallied(_ tally: [Int: UInt64], use: PageUse) {
        for (zi, n) in tally.sorted(by: { $0.key < $1.key }) {
            zones[zi].freePages += n
            allocatedPages -= n
            nodeUsage[zones[zi].node].allocated -= n
            if use == .kernel { kernelPages -= n }
        }
    }

    /// Placement, the checks, accept-on-load and the pages a normal image keeps.
    func loadSegments(_ req: KexecRequest, _ image: inout KexecImage, clock: inout PhaseClock) -> Result<Void, KexecLoadFailure> {
        do {
            switch req.syscall {
            case .fileLoad: try placeKexecFile(req, &image)
            case .load: try placeKexecTools(req, &image)
            }
            try sanityCheckSegmentList(image)
        } catch let f as KexecLoadFailure {
            return .failure(f)
        } catch {
            return .failure(KexecLoadFailure(errno: "EINVAL", message: "\(error)"))
        }
        if config.version.acceptsKexecDestinations, let u = unaccepted {
            let before = u.acceptedBytes
            for s in image.segments {
                let o = u.acceptMemory(start: s.mem, size: s.memsz, vcpu: 0, clock: &clock)
                if case .terminated(let why) = o { return .failure(KexecLoadFailure(errno: "EFAULT", message: why)) }
            }
            image.acceptedAtLoad = u.acceptedBytes - before
        }
        if req.type == .normal {
            var never: Double? = nil
            // kimage_alloc_init() / kimage_file_alloc_init(): the control
            // code page (KEXEC_CONTROL_PAGE_SIZE, one page on x86-64) and
            // the swap page.
            let control: UInt64 = 2
            let (gotControl, oc) = allocate(pages: control, use: .kernel, touch: true, clock: &clock, fullyAcceptedAt: &never, onVCPU: 0)
            if case .terminated(let why) = oc { return .failure(KexecLoadFailure(errno: "EFAULT", message: why)) }
            image.controlPages = gotControl
            if gotControl < control { return .failure(KexecLoadFailure(errno: "ENOMEM", message: "kimage_alloc_control_pages(): out of memory")) }
            let pages = image.segments.reduce(0) { $0 + $1.memsz / 4096 }
            let (got, o) = allocate(pages: pages, use: .kernel, touch: true, clock: &clock, fullyAcceptedAt: &never, onVCPU: 0)
            if case .terminated(let why) = o { return .failure(KexecLoadFailure(errno: "EFAULT", message: why)) }
            image.sourcePages = got
            if got < pages { return .failure(KexecLoadFailure(errno: "ENOMEM", message: "kimage_alloc_page(): out of memory after \(got) of \(pages) pages")) }
            let ind = Self.indirectionPages(segments: UInt64(image.segments.count), sourcePages: pages)
            let (gotInd, oi) = allocate(pages: ind, use: .kernel, touch: true, clock: &clock, fullyAcceptedAt: &never, onVCPU: 0)
            if case .terminated(let why) = oi { return .failure(KexecLoadFailure(errno: "EFAULT", message: why)) }
            image.controlPages += gotInd
            if gotInd < ind { return .failure(KexecLoadFailure(errno: "ENOMEM", message: "kimage_add_entry(): out of memory for an indirection page")) }
        }
        // kexec_dprintk() after the load (the kernel's buf= pointer is left out).
        let tag = req.syscall == .fileLoad ? "kexec_file" : "kexec"
        image.log.append("\(tag): nr_segments = \(image.segments.count)")
        for (i, s) in image.segments.enumerated() {
            image.log.append("\(tag): segment[\(i)]: bufsz=\(hex(s.bufsz)) mem=\(hex(s.mem)) memsz=\(hex(s.memsz))")
        }
        return .success(())
    }

    /// Indirection pages of a normal image (`kimage_add_entry()`): one entry
    /// per source page (IND_SOURCE), one IND_DESTINATION per segment and
    /// the final IND_DONE; each page holds PAGE_SIZE / 8 entries, the last
    /// of which links to the next page (IND_INDIRECTION).
    static func indirectionPages(segments: UInt64, sourcePages: UInt64) -> UInt64 {
        divRoundUp(sourcePages + segments + 1, 4096 / 8 - 1)
    }

    /// The "System RAM" resources a search walks, or the crash kernel's.
    func kexecSearchRegions(_ type: KexecImageType) throws -> [AddressRange] {
        guard type == .crash else { return ram }
        guard let c = reservation(.crashKernel) else {
            throw KexecLoadFailure(errno: "EADDRNOTAVAIL", message: "no crash kernel reservation (boot with crashkernel=)")
        }
        return [c]
    }

    /// `bzImage64_load()`: (crash: the ELF core headers), purgatory,
    /// boot_params, kernel, initrd, each through `kexec_add_buffer()`.
    func placeKexecFile(_ req: KexecRequest, _ image: inout KexecImage) throws {
        let p = req.payload
        guard p.kernelFileBytes >= p.kern16Size else { throw KexecLoadFailure(errno: "ENOEXEC", message: "bzImage truncated") }
        let regions = try kexecSearchRegions(req.type)
        var bufs: [KexecBuf] = []
        if req.type == .crash {
            let size = alignUp(KexecX86.ehdr + elfcorehdrPhdrs() * KexecX86.phdr, KexecX86.elfCoreHeaderAlign)
            bufs.append(KexecBuf(kind: .elfcorehdr, bufsz: size, memsz: size, align: KexecX86.elfCoreHeaderAlign, min: 0, topDown: false))
        }
        let pg = KexecX86.kernelPurgatory
        bufs.append(KexecBuf(kind: .purgatory, bufsz: pg.bufsz, memsz: pg.memsz, align: 16, min: KexecX86.minPurgatoryAddr, topDown: true))
        let bp = p.kernelBootParamsBytes
        bufs.append(KexecBuf(kind: .bootParams, bufsz: bp, memsz: bp, align: 16, min: KexecX86.minBootParamAddr, topDown: true))
        bufs.append(KexecBuf(kind: .kernel, bufsz: p.kernelFileBytes - p.kern16Size, memsz: p.initSize, align: p.kernelAlignment,
                             min: max(KexecX86.minKernelLoadAddr, p.prefAddress), topDown: true))
        if p.initrdBytes > 0 {
            bufs.append(KexecBuf(kind: .initrd, bufsz: p.initrdBytes, memsz: p.initrdBytes, align: 4096, min: KexecX86.minInitrdLoadAddr, topDown: true))
        }
        for var b in bufs {
            guard image.segments.count < KexecX86.segmentMax else { throw KexecLoadFailure(errno: "EINVAL", message: "more than KEXEC_SEGMENT_MAX segments") }
            // kexec_add_buffer(): page-granular size and alignment.
            b.memsz = alignUp(b.memsz, 4096)
            b.align = max(b.align, 4096)
            guard let mem = KexecPlacement.kernelLocate(b, regions: regions, placed: image.segments,
                                                        reverseWalk: config.version.kexecFileWalksTopDown) else {
                throw KexecLoadFailure(errno: "EADDRNOTAVAIL", message: "no room for the \(b.kind.rawValue) (\(hex(b.memsz)) bytes, align \(hex(b.align))) in \(req.type == .crash ? "the crash kernel region" : "System RAM")")
            }
            image.segments.append(KexecSegment(kind: b.kind, bufsz: b.bufsz, mem: mem, memsz: b.memsz))
            image.log.append(Self.bzImage64Message(b, at: mem))
        }
    }

    /// The `kexec_dprintk()` line `bzImage64_load()` and
    /// `crash_load_segments()` print for a placed buffer.
    static func bzImage64Message(_ b: KexecBuf, at mem: UInt64) -> String {
        let sizes = "bufsz=\(hex(b.bufsz)) memsz=\(hex(b.memsz))"
        switch b.kind {
        case .purgatory: return "kexec-bzImage64: Loaded purgatory at \(hex(mem))"
        case .bootParams: return "kexec-bzImage64: Loaded boot_param, command line and misc at \(hex(mem)) \(sizes)"
        case .kernel: return "kexec-bzImage64: Loaded 64bit kernel at \(hex(mem)) \(sizes)"
        case .initrd: return "kexec-bzImage64: Loaded initrd at \(hex(mem)) bufsz=\(hex(b.bufsz)) memsz=\(hex(b.bufsz))"
        case .elfcorehdr: return "crash: Loaded ELF headers at \(hex(mem)) \(sizes)"
        default: return "kexec-bzImage64: Loaded \(b.kind.rawValue) at \(hex(mem)) \(sizes)"
        }
    }

    /// Program headers of the crash image's ELF core header
    /// (`crash_prepare_elf64_headers()` with the kernel text map): one note
    /// per possible CPU, VMCOREINFO, the kernel text, and one per RAM range
    /// left after cutting out [0, 1 MiB) and the crash kernel
    /// (`elf_header_exclude_ranges()`). CONFIG_CRASH_HOTPLUG's reserve for
    /// later CPUs and ranges is not added.
    func elfcorehdrPhdrs() -> UInt64 {
        var cuts = [AddressRange(start: 0, end: 1 << 20)]
        if let c = reservation(.crashKernel) { cuts.append(c) }
        return UInt64(vcpus) + 2 + UInt64(ram.subtracting(cuts).count)
    }

    /// kexec-tools `do_bzImage64_load()` + `setup_linux_system_parameters()`:
    /// purgatory, setup segment, kernel and initrd top-down, then the EFI
    /// setup_data, the EFI runtime map and the RNG seed bottom-up from
    /// 1 MiB, each through `add_buffer()` → `locate_hole()`; segments end
    /// up sorted by address (`sort_segments()`). Crash images are not
    /// modelled for kexec_load.
    func placeKexecTools(_ req: KexecRequest, _ image: inout KexecImage) throws {
        guard req.type == .normal else {
            throw KexecLoadFailure(errno: "EINVAL", message: "crash images are modelled for kexec_file_load only")
        }
        let p = req.payload
        let k = KexecX86.self
        guard p.kernelFileBytes >= p.kern16Size else { throw KexecLoadFailure(errno: "ENOEXEC", message: "BzImage truncated?") }
        var bufs = [
            KexecBuf(kind: .purgatory, bufsz: k.kexecToolsPurgatory.bufsz, memsz: k.kexecToolsPurgatory.memsz, align: 16, min: k.minPurgatoryAddr, topDown: true),
            KexecBuf(kind: .bootParams, bufsz: p.kexecToolsSetupBytes, memsz: p.kexecToolsSetupBytes, align: 16, min: k.minBootParamAddr, topDown: true),
            KexecBuf(kind: .kernel, bufsz: p.kernelFileBytes - p.kern16Size, memsz: p.initSize, align: p.kernelAlignment,
                     min: k.minKernelLoadAddr, topDown: true),
        ]
        if p.initrdBytes > 0 {
            bufs.append(KexecBuf(kind: .initrd, bufsz: p.initrdBytes, memsz: p.initrdBytes, align: 4096, min: k.minInitrdLoadAddr, topDown: true))
        }
        let efi = k.setupDataHeader + k.efiSetupData, map = p.efiRuntimeDescriptors * k.kexecToolsEfiDescSize
        bufs.append(KexecBuf(kind: .efiSetupData, bufsz: efi, memsz: efi, align: 4096, min: 1 << 20, topDown: false))
        if map > 0 { bufs.append(KexecBuf(kind: .efiRuntimeMap, bufsz: map, memsz: map, align: 4096, min: 1 << 20, topDown: false)) }
        bufs.append(KexecBuf(kind: .rngSeed, bufsz: k.setupDataHeader + k.rngSeed, memsz: k.setupDataHeader + k.rngSeed, align: 4096, min: 1 << 20, topDown: false))
        for var b in bufs {
            b.memsz = alignUp(b.memsz, 4096)
            guard let mem = KexecPlacement.userLocate(b, ram: ram, placed: image.segments, memMin: 0, memMax: .max) else {
                throw KexecLoadFailure(errno: "ENOMEM", message: "Could not find a free area of memory of \(hex(b.memsz)) bytes... (\(b.kind.rawValue))")
            }
            // add_segment(): the segment must lie inside one RAM range.
            let r = AddressRange(start: mem, size: b.memsz)
            guard ram.contains(where: { $0.start <= r.start && r.end <= $0.end }) else {
                throw KexecLoadFailure(errno: "EINVAL", message: "Invalid memory segment \(hex(r.start)) - \(hex(r.end - 1)) (\(b.kind.rawValue))")
            }
            if let clash = image.segments.first(where: { $0.range.overlaps(r) }) {
                throw KexecLoadFailure(errno: "EINVAL", message: "Overlapping memory segments at \(hex(clash.range.end)) (\(b.kind.rawValue))")
            }
            image.segments.append(KexecSegment(kind: b.kind, bufsz: b.bufsz, mem: mem, memsz: b.memsz))
            image.segments.sort { $0.mem < $1.mem }
            // kexec -d's dbgprintf() lines for the main pieces.
            switch b.kind {
            case .purgatory: image.log.append("kexec-tools: Loaded purgatory at addr \(hex(mem))")
            case .bootParams: image.log.append("kexec-tools: Loaded real_mode_data and command line at \(hex(mem))")
            case .kernel: image.log.append("kexec-tools: Loaded 64bit kernel at \(hex(mem))")
            default: break
            }
        }
    }

    /// `sanity_check_segment_list()` (kernel/kexec_core.c), up to the
    /// acceptance loop: page-aligned destinations below
    /// KEXEC_DESTINATION_MEMORY_LIMIT, no overlaps, bufsz <= memsz, no more
    /// than half of RAM (`totalram_pages()`), and for crash images every
    /// segment inside the crash kernel region.
    func sanityCheckSegmentList(_ image: KexecImage) throws {
        let segs = image.segments
        for s in segs {
            let mend = s.mem &+ s.memsz
            if s.mem > mend { throw KexecLoadFailure(errno: "EADDRNOTAVAIL", message: "segment at \(hex(s.mem)) wraps") }
            if s.mem % 4096 != 0 || mend % 4096 != 0 {
                throw KexecLoadFailure(errno: "EADDRNOTAVAIL", message: "segment \(hex(s.mem))+\(hex(s.memsz)) is not page aligned")
            }
            if mend >= KexecX86.destinationMemoryLimit {
                throw KexecLoadFailure(errno: "EADDRNOTAVAIL", message: "segment ends at \(hex(mend)), above KEXEC_DESTINATION_MEMORY_LIMIT")
            }
        }
        for i in segs.indices { for j in segs.indices where j < i && segs[i].range.overlaps(segs[j].range) {
            throw KexecLoadFailure(errno: "EINVAL", message: "segments \(j) and \(i) overlap")
        } }
        if let s = segs.first(where: { $0.bufsz > $0.memsz }) {
            throw KexecLoadFailure(errno: "EINVAL", message: "segment at \(hex(s.mem)) has bufsz > memsz")
        }
        let nrPages = totalManagedPages
        var total: UInt64 = 0
        for s in segs {
            let pages = divRoundUp(s.memsz, 4096)
            if pages > nrPages / 2 { throw KexecLoadFailure(errno: "EINVAL", message: "segment at \(hex(s.mem)) needs more than half of memory") }
            total += pages
        }
        if total > nrPages / 2 { throw KexecLoadFailure(errno: "EINVAL", message: "the segments need more than half of memory (\(total) of \(nrPages) pages)") }
        if image.type == .crash {
            let c = try kexecSearchRegions(.crash)[0]
            if let s = segs.first(where: { $0.mem < c.start || $0.range.end > c.end }) {
                throw KexecLoadFailure(errno: "EADDRNOTAVAIL", message: "segment at \(hex(s.mem)) is outside the crash kernel region \(c)")
            }
        }
    }
}
