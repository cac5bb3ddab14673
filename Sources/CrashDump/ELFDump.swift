public import MemoryModel

/// `makedumpfile -E`: an ELF dump file, filtered like a kdump-compressed
/// one but uncompressed, as makedumpfile writes it (`write_elf_header()`,
/// `get_loads_dumpfile_cyclic()`, `write_elf_pages_cyclic()`,
/// `write_elf_load_segment()`):
///
/// - The input's ELF header is copied with only `e_phnum` changed (and the
///   extended numbering of a section header 0 when it reaches `PN_XNUM`);
///   the program headers follow it at offset 64, the input's first PT_NOTE
///   first (its contents copied right after the headers), then the PT_LOADs.
/// - With dump level bit 1, zero pages are taken out of the 2nd bitmap
///   before the headers are made (`exclude_zero_pages_cyclic()`), unlike
///   the kdump-compressed format, which finds them while writing.
/// - Walking each input PT_LOAD page by page, a run of at least
///   `PFN_EXCLUDED` (256) excluded pages followed by a dumpable page ends
///   the segment: the excluded run stays in its `p_memsz` but not in its
///   `p_filesz`, and a new PT_LOAD starts at the dumpable page. Shorter
///   runs are written with their contents. A segment cut off with no file
///   data has `p_offset` 0; the last segment of an input PT_LOAD keeps the
///   running offset even when it has none.
/// - The segments' data follow the notes back to back, unaligned.
public struct ELFDumpWriter: Sendable {
    /// `PFN_EXCLUDED`.
    public static let pfnExcluded: UInt64 = 256
    /// `PN_XNUM`.
    static let pnXNum = 0xffff
    static let pageSize: UInt64 = 4096
    /// Marks a cut-off segment without data while offsets are relative.
    static let noDataOffset = UInt64.max

    /// The filter and the page source (a writer without compression).
    let source: KdumpCompressedWriter
    let ehdr: [UInt8]
    let inputHeaders: [ELFProgramHeader]
    let notes: [UInt8]

    public init(image: GuestMemoryImage, options: DumpOptions) throws {
        guard options.compression == .none else {
            throw CocomemError(.invalidArgument, "Commandline parameter is invalid: -E writes an ELF file, whose pages are not compressed; leave out -c, -l, -p and -z")
        }
        source = try KdumpCompressedWriter(image: image, options: options)
        if let f = image.input {
            (ehdr, inputHeaders, notes) = (f.elfHeader, f.programHeaders, f.notes)
        } else {
            (ehdr, inputHeaders, notes) = ELFVmcore.headers(image)
        }
        guard inputHeaders.contains(where: { $0.type == ELFProgramHeader.note }) else {
            throw CocomemError(.invalidArgument, "Can't get a PT_NOTE header: -E needs the input's note segment")
        }
    }

    /// The output's program headers and where everything goes.
    public struct Layout: Sendable, Equatable {
        /// The PT_NOTE, then the PT_LOADs in order.
        public var programHeaders: [ELFProgramHeader]
        /// File offsets of the note contents and of the first PT_LOAD's data
        /// (each PT_LOAD's data is read from memory at its `p_paddr`).
        public var noteOffset: UInt64
        public var loadOffset: UInt64
        public var fileSize: UInt64
        /// `pfn_elf_excluded`: pages really left out of the file.
        public var elfExcludedPages: UInt64
        /// Zero pages taken out of the 2nd bitmap.
        public var zeroPages: UInt64
        /// Whether the header uses extended numbering (`e_phnum` = PN_XNUM).
        public var extendedNumbering: Bool { programHeaders.count >= ELFDumpWriter.pnXNum }
    }

    // MARK: The 2nd bitmap of ELF mode

    /// The dumpable PFNs of ELF mode: the filter's, without zero pages when
    /// level bit 1 is set; and how many zero pages that removed. Class runs
    /// are decided per run; generated pages and an input file's pages are
    /// read, on `options.threads`.
    /// `progress`, if given, follows the pages read (all of them for a
    /// file: a conversion reads its input twice, here and when writing).
    /// - Complexity: O(runs + generated pages) for a model, O(pages) for a file.
    func dumpable(progress: (any ProgressReporter)? = nil) -> (ranges: [Range<UInt64>], zeroPages: UInt64) {
        let filtered = source.filtered.dumpable
        guard source.options.excludeZero else { return (filtered, 0) }
        let image = source.image
        var kept: [Range<UInt64>] = [], zeros: UInt64 = 0, perPage: [Range<UInt64>] = []
        if image.input != nil { perPage = filtered }
        for d in filtered where image.input == nil {
            image.classes.forEachRun(in: Range(raw: d)) { frames, c in
                let pfns = frames.raw
                let generated = image.kernel?.generatedRanges(in: pfns) ?? []
                perPage += generated
                let zero = (0..<Int(PageContent.templatesPerClass)).map { source.isZero(c, $0) }
                if zero.allSatisfy({ $0 }) {
                    zeros += UInt64(pfns.count) - generated.reduce(0) { $0 + UInt64($1.count) }
                } else if zero.allSatisfy({ !$0 }) {
                    kept += [pfns].subtracting(generated)
                } else {
                    perPage += [pfns].subtracting(generated)
                }
            }
        }
        let batches = BatchCutter.cut(perPage.sorted { $0.lowerBound < $1.lowerBound }, pages: KdumpCompressedWriter.batchPages)
        let task = ProgressTask("finding zero pages", total: KdumpCompressedWriter.pages(perPage) * KdumpCompressedWriter.blockSize)
        var checked: [([Range<UInt64>], UInt64)] = []
        progress.run(task) {
            // 4 batches per thread at a time, kept in order, so that progress
            // can be told between groups.
            let group = 4 * max(1, source.options.threads)
            for start in stride(from: 0, to: batches.count, by: group) {
                let some = Array(batches[start..<min(batches.count, start + group)])
                checked += zeroScan(some)
                progress?.advance(by: some.reduce(0) { $0 + KdumpCompressedWriter.pages($1) } * KdumpCompressedWriter.blockSize)
            }
        }
        for (r, z) in checked { kept += r; zeros += z }
        return (Self.coalesced(kept), zeros)
    }

    /// The non-zero PFN runs of each batch and its zero pages, read on
    /// `options.threads`, in batch order.
    func zeroScan(_ batches: [[Range<UInt64>]]) -> [([Range<UInt64>], UInt64)] {
        parallelMap(batches, threads: source.options.threads) { batch -> ([Range<UInt64>], UInt64) in
            var out: [Range<UInt64>] = [], z: UInt64 = 0
            self.source.forEachPage(batch) { pfn, page in
                let isZero: Bool
                switch page {
                case .template(let c, let t): isZero = self.source.isZero(c, t)
                case .bytes(let p): isZero = isZeroPage(p)
                }
                if isZero { z += 1; return }
                if let l = out.last, l.upperBound == pfn { out[out.count - 1] = l.lowerBound..<(pfn + 1) } else { out.append(pfn..<(pfn + 1)) }
            }
            return (out, z)
        }
    }

    /// Sorted, with touching ranges merged.
    static func coalesced(_ rs: [Range<UInt64>]) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        for r in rs.sorted(by: { $0.lowerBound < $1.lowerBound }) where !r.isEmpty {
            if let l = out.last, l.upperBound >= r.lowerBound { out[out.count - 1] = l.lowerBound..<max(l.upperBound, r.upperBound) } else { out.append(r) }
        }
        return out
    }

    // MARK: Layout

    /// The output's headers and sizes, from the ELF-mode bitmap.
    /// - Complexity: O(input PT_LOADs + dumpable runs) once the bitmap is known.
    public func layout(progress: (any ProgressReporter)? = nil) -> Layout {
        let (kept, zeros) = dumpable(progress: progress)
        var loads: [ELFProgramHeader] = [], elfExcluded: UInt64 = 0
        var offset: UInt64 = 0   // relative to the start of the load data
        for phdr in inputHeaders where phdr.type == ELFProgramHeader.load && phdr.paddr != .max {
            let s = Self.splitLoad(phdr, kept: kept, offset: &offset)
            loads += s.segments; elfExcluded += s.elfExcluded
        }
        let phnum = loads.count + 1
        let xnum = phnum >= Self.pnXNum
        let noteOffset = 64 + UInt64(ELFProgramHeader.size * phnum) + (xnum ? 64 : 0)
        let loadOffset = noteOffset + noteHeader.filesz
        for i in loads.indices { loads[i].offset = loads[i].offset == Self.noDataOffset ? 0 : loads[i].offset + loadOffset }
        var note = noteHeader
        note.offset = noteOffset
        return Layout(programHeaders: [note] + loads, noteOffset: noteOffset, loadOffset: loadOffset, fileSize: loadOffset + offset,
                      elfExcludedPages: elfExcluded, zeroPages: zeros)
    }

    /// The input's first PT_NOTE.
    var noteHeader: ELFProgramHeader { inputHeaders.first { $0.type == ELFProgramHeader.note }! }

    /// One input PT_LOAD cut around its runs of `PFN_EXCLUDED` or more
    /// excluded pages, as `write_elf_pages_cyclic()` walks it. Offsets are
    /// relative to the load data; a cut-off segment with no data gets
    /// `noDataOffset`, which becomes 0 (`offset` is only advanced by data).
    static func splitLoad(_ phdr: ELFProgramHeader, kept: [Range<UInt64>], offset: inout UInt64)
        -> (segments: [ELFProgramHeader], elfExcluded: UInt64) {
        let page = Self.pageSize
        var pfnStart = phdr.paddr / page, pfnEnd = (phdr.paddr + phdr.memsz) / page
        let fracHead = page - phdr.paddr % page, fracTail = (phdr.paddr + phdr.memsz) % page
        var memsz: UInt64 = 0, filesz: UInt64 = 0
        if fracHead != page { memsz = fracHead; filesz = fracHead; pfnStart += 1 }
        if fracTail != 0 { pfnEnd += 1 }
        /// Bytes of `pfns` inside the segment: the last PFN counts only its fraction.
        func bytes(_ pfns: Range<UInt64>) -> UInt64 {
            UInt64(pfns.count) * page - (fracTail != 0 && pfns.contains(pfnEnd - 1) ? page - fracTail : 0)
        }
        var out: [ELFProgramHeader] = [], load = phdr
        var excluded: UInt64 = 0, elfExcluded: UInt64 = 0
        Self.forEachRun(in: pfnStart..<max(pfnStart, pfnEnd), kept: kept) { pfns, dumpable in
            guard dumpable else { excluded += UInt64(pfns.count); memsz += bytes(pfns); return }
            let first = pfns.lowerBound..<(pfns.lowerBound + 1)
            if excluded == 0 {
                memsz += bytes(first); filesz += bytes(first)
            } else if excluded < Self.pfnExcluded {
                memsz += bytes(first); filesz += page * excluded + bytes(first)
            } else {
                elfExcluded += excluded
                load.memsz = memsz; load.filesz = filesz
                load.offset = filesz > 0 ? offset : Self.noDataOffset
                out.append(load)
                load.paddr += memsz; load.vaddr &+= memsz
                offset += filesz
                memsz = page; filesz = page
            }
            excluded = 0
            let rest = (pfns.lowerBound + 1)..<pfns.upperBound
            memsz += bytes(rest); filesz += bytes(rest)
        }
        elfExcluded += excluded
        load.memsz = memsz; load.filesz = filesz; load.offset = offset
        out.append(load)
        offset += filesz
        return (out, elfExcluded)
    }

    /// Calls `body` with the alternating runs of dumpable and excluded PFNs of `r`.
    static func forEachRun(in r: Range<UInt64>, kept: [Range<UInt64>], _ body: (Range<UInt64>, Bool) -> Void) {
        var lo = 0, hi = kept.count
        while lo < hi { let mid = (lo + hi) / 2; if kept[mid].upperBound <= r.lowerBound { lo = mid + 1 } else { hi = mid } }
        var a = r.lowerBound
        var i = lo
        while a < r.upperBound {
            guard i < kept.count, kept[i].lowerBound < r.upperBound else { body(a..<r.upperBound, false); return }
            if a < kept[i].lowerBound { body(a..<kept[i].lowerBound, false); a = kept[i].lowerBound }
            let end = min(kept[i].upperBound, r.upperBound)
            body(a..<end, true)
            a = end; i += 1
        }
    }

    // MARK: Header

    /// The ELF header: the input's, with `e_phnum` (and, past PN_XNUM,
    /// `e_shoff`, `e_shentsize`, `e_shnum`, `e_shstrndx` of section header 0).
    func elfHeader(_ l: Layout) -> [UInt8] {
        var h = ehdr
        func put16(_ v: Int, at o: Int) { h[o] = UInt8(v & 0xff); h[o + 1] = UInt8(v >> 8) }
        put16(l.extendedNumbering ? Self.pnXNum : l.programHeaders.count, at: 56)
        if l.extendedNumbering {
            let shoff = 64 + UInt64(ELFProgramHeader.size * l.programHeaders.count)
            for i in 0..<8 { h[40 + i] = UInt8(truncatingIfNeeded: shoff >> (8 * UInt64(i))) }
            put16(64, at: 58); put16(1, at: 60); put16(0, at: 62)
        }
        return h
    }

    /// Section header 0 of extended numbering: SHT_NULL, `sh_size` = e_shnum,
    /// `sh_link` = e_shstrndx, `sh_info` = the real number of program headers.
    func sectionHeaderZero(_ l: Layout) -> [UInt8] {
        var w = ByteWriter()
        w.u32(0); w.u32(0); w.u64(0); w.u64(0); w.u64(0)   // sh_name, sh_type, sh_flags, sh_addr, sh_offset
        w.u64(1); w.u32(0); w.u32(UInt32(l.programHeaders.count)); w.u64(0); w.u64(0)
        return w.bytes
    }

    // MARK: Estimate and write

    /// makedumpfile's report for this file, with its size.
    /// - Complexity: that of `layout()`.
    public func estimate() -> DumpReport { report(layout()) }

    func report(_ l: Layout) -> DumpReport {
        var r = source.baseReport()
        r.zeroPages = l.zeroPages
        r.dumpablePages -= l.zeroPages
        r.elfExcludedPages = l.elfExcludedPages
        r.isELF = true
        r.fileSize = l.fileSize
        r.dataBytes = l.fileSize - l.loadOffset
        return r
    }

    /// Writes the ELF dump file to `path` through a temporary file;
    /// `progress`, if given, follows the PT_LOAD bytes as they are written.
    /// - Complexity: O(pages written).
    @discardableResult
    public func write(to path: String, progress: (any ProgressReporter)? = nil) throws -> DumpReport {
        let l = layout(progress: progress)
        let loadBytes = l.programHeaders.dropFirst().reduce(0) { $0 + $1.filesz }
        return try progress.run(ProgressTask("writing \(path)", total: loadBytes)) {
            try writeFile(l, to: path, progress: progress)
        }
    }

    func writeFile(_ l: Layout, to path: String, progress: (any ProgressReporter)?) throws -> DumpReport {
        let f = try AtomicFile(path: path)
        var w = ByteWriter()
        w.raw(elfHeader(l))
        for p in l.programHeaders { p.encode(into: &w) }
        if l.extendedNumbering { w.raw(sectionHeaderZero(l)) }
        w.raw(notes)
        try f.write(w.bytes, at: 0)
        var data = ChunkedWriter(file: f, offset: l.loadOffset)
        for s in l.programHeaders.dropFirst() where s.filesz > 0 {
            try writeSegment(from: s.paddr, bytes: s.filesz, into: &data, progress: progress)
        }
        try data.flush()
        try source.image.input?.checkReads()
        guard data.position == l.fileSize else { throw CocomemError(.io, "internal: wrote \(data.position) bytes of an ELF dump laid out as \(l.fileSize)") }
        try f.commit()
        return report(l)
    }

    /// `write_elf_load_segment()`: `bytes` bytes of memory from `paddr`.
    func writeSegment(from paddr: UInt64, bytes: UInt64, into data: inout ChunkedWriter, progress: (any ProgressReporter)? = nil) throws {
        let end = paddr + bytes
        let pfns = (paddr / Self.pageSize)..<divRoundUp(end, Self.pageSize)
        var failure: (any Error)?
        if let input = source.image.input { return try copySegment(input, from: paddr, bytes: bytes, into: &data, progress: progress) }
        for batch in BatchCutter.cut([pfns], pages: KdumpCompressedWriter.batchPages) {
            forEachGeneratedPage(batch, from: paddr, to: end, into: &data, failure: &failure)
            if let failure { throw failure }
            let first = max(paddr, batch[0].lowerBound * Self.pageSize), last = min(end, batch[batch.count - 1].upperBound * Self.pageSize)
            progress?.advance(by: last - first)
        }
    }

    /// Bytes per `copy` call between progress reports.
    static let copyChunk: UInt64 = 32 << 20

    /// `bytes` bytes of an input file's memory from `paddr`, its file
    /// extents copied by the kernel (`sendfile`: nothing is mapped or read
    /// into this process; `pread` where the kernel cannot) and its zero
    /// extents appended as zeros. A file that ends early (truncated while it
    /// is read) is an error.
    /// - Complexity: O(bytes) in the kernel, a system call per 32 MiB.
    func copySegment(_ input: ELFInput, from paddr: UInt64, bytes: UInt64, into data: inout ChunkedWriter,
                     progress: (any ProgressReporter)?) throws {
        try input.forEachExtent(paddr: paddr, count: bytes) { e in
            switch e {
            case .zeros(let n):
                try data.appendZeros(n)
                progress?.advance(by: n)
            case .file(let offset, let count):
                var done: UInt64 = 0
                while done < count {
                    let want = min(Self.copyChunk, count - done)
                    let n = try data.appendCopy(from: input, at: offset + done, count: want)
                    guard n == want else {
                        throw CocomemError(.io, "reading '\(input.path)' at offset \(offset + done + n) failed: the file ends there (it was truncated while it was read)")
                    }
                    done += n
                    progress?.advance(by: n)
                }
            }
        }
    }

    /// The bytes of a model's pages of `batch` inside `[paddr, end)`, a page at a time.
    func forEachGeneratedPage(_ batch: [Range<UInt64>], from paddr: UInt64, to end: UInt64, into data: inout ChunkedWriter, failure: inout (any Error)?) {
        source.forEachPage(batch) { pfn, page in
            guard failure == nil else { return }
            let lo = Int(max(paddr, pfn * Self.pageSize) - pfn * Self.pageSize)
            let hi = Int(min(end, (pfn + 1) * Self.pageSize) - pfn * Self.pageSize)
            do {
                switch page {
                case .bytes(let p): try data.append(UnsafeRawBufferPointer(rebasing: p[lo..<hi]))
                case .template(let c, let t): try data.append(source.image.content.templates[Int(c.rawValue)][t][lo..<hi])
                }
            } catch { failure = error }
        }
    }
}
