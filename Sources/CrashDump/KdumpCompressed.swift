import Foundation
public import MemoryModel

import Dispatch

/// Options of a kdump-compressed write, in makedumpfile's vocabulary.
public struct DumpOptions: Sendable {
    /// `-d LEVEL`: 1 zero, 2 cache, 4 private cache, 8 user, 16 free.
    public var dumpLevel: Int = 1
    public var compression: DumpCompression = .zlib
    /// Whose filter to follow (the 1.7.7 / 1.7.8 switch for unaccepted blocks).
    public var makedumpfile: MakedumpfileVersion = .v1_7_8
    /// Threads compressing pages (`--num-threads`); the output does not depend on it.
    public var threads: Int = 1
    public init(dumpLevel: Int = 1, compression: DumpCompression = .zlib, makedumpfile: MakedumpfileVersion = .v1_7_8, threads: Int = 1) {
        self.dumpLevel = dumpLevel
        self.compression = compression
        self.makedumpfile = makedumpfile
        self.threads = threads
    }

    /// Checks the level against what the image allows: bits 2-16 need the
    /// kernel structures and a VMCOREINFO note, as makedumpfile does
    /// ("doesn't contain vmcoreinfo").
    public func validate(for image: GuestMemoryImage) throws {
        guard (0...31).contains(dumpLevel) else {
            throw CocomemError(.invalidArgument, "dump level \(dumpLevel) is not between 0 and 31")
        }
        guard (1...256).contains(threads) else { throw CocomemError(.invalidArgument, "--num-threads \(threads) is not between 1 and 256") }
        if dumpLevel & ~1 != 0, image.input != nil, image.vmcoreinfo == nil {
            throw CocomemError(.unsupported, "dump level \(dumpLevel) needs the vmcore's VMCOREINFO note to find the struct pages; this file has none; use -d 0 or -d 1")
        }
        if dumpLevel & ~1 != 0, image.input == nil, image.kernel == nil || image.vmcoreinfo == nil {
            throw CocomemError(.unsupported, "dump level \(dumpLevel) needs the kernel's struct pages and a VMCOREINFO note; this vmcore has none (kernels before 6.12 are not generated, or --no-vmcoreinfo was given); use -d 0 or -d 1")
        }
    }
    var excludeZero: Bool { dumpLevel & 1 != 0 }
}

/// What a write (or estimate) found, in makedumpfile's report terms.
public struct DumpReport: Sendable, Equatable {
    public var totalPages: UInt64 = 0        // pages in PT_LOADs
    public var zeroPages: UInt64 = 0
    public var cachePages: UInt64 = 0
    public var privateCachePages: UInt64 = 0
    public var userPages: UInt64 = 0
    public var freePages: UInt64 = 0
    public var offlinePages: UInt64 = 0
    public var hwpoisonPages: UInt64 = 0
    public var dumpablePages: UInt64 = 0     // set bits of the 2nd bitmap
    public var fileSize: UInt64 = 0
    /// Bytes of page data (compressed or raw) and of descriptors.
    public var dataBytes: UInt64 = 0
    /// Pages per class, for the reader of the report.
    public var pagesByClass: [PageClass: UInt64] = [:]
    /// A sampled estimate: generated pages compressed, out of how many, and
    /// the 95% margin of `fileSize` (all 0 when the size is exact).
    public var sampledPages: UInt64 = 0
    public var sampledPopulation: UInt64 = 0
    public var fileSizeMargin: UInt64 = 0
    /// An ELF dump (`-E`): `pfn_elf_excluded`, the pages really left out of
    /// the file (excluded runs of 256 pages or more).
    public var isELF = false
    public var elfExcludedPages: UInt64 = 0
    public var excluded: UInt64 { zeroPages + cachePages + privateCachePages + userPages + freePages + offlinePages + hwpoisonPages }
}

/// The stored pages of one batch, in PFN order: one entry per page, and
/// the compressed or raw bytes of all of them in one page-aligned buffer
/// that the compressor writes into directly. A batch is a slot of the
/// write pipeline (`orderedPipeline`): allocated once per write and reused
/// for every batch it carries, so steady state allocates nothing and
/// touches no new memory.
final class PageBatch: @unchecked Sendable {
    enum Entry {
        case zero
        case template(PageClass, Int)
        /// The next `count` bytes of `bytes`, compressed or stored raw.
        case compressed(Int)
        case raw
    }
    var entries: [Entry] = []
    /// Room for `pages` raw pages plus one compressor output.
    let bytes: UnsafeMutableRawPointer
    let capacity: Int
    /// Bytes of `bytes` in use.
    var count = 0

    /// The huge-page mapping `bytes` is in, or nil when it is a heap allocation.
    private let mapping: HugePageBuffer?

    init(pages: Int) {
        capacity = pages * 4096 + PageCompressor.outputCapacity
        // Only the bytes a batch writes are ever touched; on huge pages that
        // costs a fault per 2 MiB instead of one per 4 KiB (`HugePageBuffer`).
        mapping = HugePageBuffer(byteCount: capacity)
        bytes = mapping?.base ?? UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 4096)
        entries.reserveCapacity(pages)
    }

    deinit {
        if let mapping { mapping.unmap() } else { bytes.deallocate() }
    }

    func reset() {
        entries.removeAll(keepingCapacity: true)
        count = 0
    }

    /// The stored bytes `lo..<hi`.
    func slice(_ lo: Int, _ hi: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes + lo, count: hi - lo) }
}

/// A dumpable page as the writer meets it: bytes (generated structures or
/// an input file's page) or a class template.
enum PageBytes {
    case bytes(UnsafeRawBufferPointer)
    case template(PageClass, Int)
}

/// The kdump-compressed ("diskdump") format as makedumpfile writes it
/// (`write_kdump_header()`, `write_kdump_pages_and_bitmap_cyclic()`):
/// header version 6 with `tv_usec` 0, the sub-header followed by the whole
/// note section, the two bitmaps, one 24-byte `page_desc_t` per dumpable
/// page in PFN order, and the page data, which starts with the one shared
/// zero page when level bit 1 is set. Zero pages keep their bitmap bit and
/// descriptor (they are found at write time); each other page is compressed
/// alone and stored compressed only when that is smaller.
///
/// Pages are compressed on `options.threads` threads in PFN-ordered
/// batches and written in order, so the file is the same for any count.
public struct KdumpCompressedWriter: Sendable {
    public static let blockSize: UInt64 = 4096
    let image: GuestMemoryImage
    let options: DumpOptions
    let notes: [UInt8]
    /// The 2nd bitmap before zero pages (makedumpfile's filter).
    public let filtered: FilterResult
    /// Compressed bytes of each template (nil: stored raw), by class; empty for an input file.
    let compressed: [[[UInt8]?]]
    /// Whether each template is all zeros, by class; empty for an input file.
    let isZero: [[Bool]]
    /// Pages per batch handed to one thread (4 MiB: large writes, and a
    /// pipeline of `threads + 2` batches stays small).
    static let batchPages = 1024
    /// Batch-sized read buffers (holes, a file that shrank, no mapping)
    /// reused across batches: a fresh 4 MiB buffer per batch costs a page
    /// fault per page.
    let readBuffers = BufferPool()

    public init(image: GuestMemoryImage, options: DumpOptions) throws {
        try options.validate(for: image)
        self.image = image
        self.options = options
        let compressor = try PageCompressor(options.compression)
        self.notes = image.input?.notes ?? ELFVmcore.notes(cpus: image.cpus, vmcoreinfo: image.vmcoreinfo)
        var comp: [[[UInt8]?]] = [], zero: [[Bool]] = []
        // An input file's pages are all read from it, never from a template
        // (every template use is behind `image.input == nil`): compressing the
        // 16 templates of every class would cost each opened file ~200 compressions.
        for c in PageClass.allCases where image.input == nil {
            let ts = image.content.templates[Int(c.rawValue)]
            zero.append(ts.map { $0.allSatisfy { $0 == 0 } })
            comp.append(ts.map { compressor.compress($0) })
        }
        compressed = comp
        isZero = zero
        let filter = image.vmcoreinfo.map { MakedumpfileFilter(version: options.makedumpfile, dumpLevel: options.dumpLevel, vmcoreinfo: $0) }
        filtered = image.input == nil ? image.filter(filter) : try image.filterInput(filter, version: options.makedumpfile)
    }

    // MARK: Layout

    var subHeaderBlocks: UInt64 { divRoundUp(104 + UInt64(notes.count), Self.blockSize) }
    /// Blocks of one bitmap.
    var bitmapBlocksOne: UInt64 { divRoundUp(divRoundUp(image.maxMapnr, 8), Self.blockSize) }
    var descriptorOffset: UInt64 { (1 + subHeaderBlocks + 2 * bitmapBlocksOne) * Self.blockSize }

    func storedSize(_ c: PageClass, _ t: Int) -> UInt64 {
        compressed[Int(c.rawValue)][t].map { UInt64($0.count) } ?? Self.blockSize
    }

    // MARK: Pages

    /// Calls `body` with each page of `ranges`, in order. An input file's
    /// pages come a contiguous run at a time (`forEachRun`); generated pages
    /// are built in one reused buffer.
    func forEachPage(_ ranges: [Range<UInt64>], _ body: (UInt64, PageBytes) -> Void) {
        if image.input != nil {
            forEachRun(ranges) { first, bytes in
                for i in 0..<(bytes.count / 4096) {
                    body(first + UInt64(i), .bytes(UnsafeRawBufferPointer(rebasing: bytes[(i * 4096)..<((i + 1) * 4096)])))
                }
            }
            return
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        buffer.withUnsafeMutableBytes { b in
            for r in ranges {
                for pfn in r {
                    if let k = image.kernel, k.isGenerated(pfn) {
                        k.generate(pfn, into: b)
                        body(pfn, .bytes(UnsafeRawBufferPointer(b)))
                    } else {
                        let c = image.classes.value(at: GuestFrameNumber(pfn))
                        body(pfn, .template(c, PageContent.template(pfn: pfn, c)))
                    }
                }
            }
        }
    }

    /// Calls `body` with the bytes of each range of an input file's pages,
    /// in order: straight from the file's mapping where the range is file
    /// data of one PT_LOAD (no copy; its page tables populated in one call,
    /// `ELFInput.populate`), else read into a reused batch buffer
    /// (holes, zero-filled tails, a file that shrank, no mapping).
    /// - Complexity: O(pages) of copying only on the fallback path.
    func forEachRun(_ ranges: [Range<UInt64>], _ body: (UInt64, UnsafeRawBufferPointer) -> Void) {
        guard let f = image.input else { return }
        var buffer: [UInt8]? = nil
        defer { if let b = buffer { readBuffers.give(b) } }
        for r in ranges where !r.isEmpty {
            let paddr = GuestFrameNumber(r.lowerBound).address.value, count = r.count * 4096
            if let m = f.mapped(paddr: paddr, count: count) { f.populate(m); body(r.lowerBound, m); f.doneWith(m); continue }
            if buffer == nil { buffer = readBuffers.take() }
            if buffer!.count < count { buffer = [UInt8](repeating: 0, count: max(count, Self.batchPages * 4096)) }
            buffer!.withUnsafeMutableBytes { b in
                let bytes = UnsafeMutableRawBufferPointer(rebasing: b[0..<count])
                f.read(paddr: paddr, into: bytes)
                body(r.lowerBound, UnsafeRawBufferPointer(bytes))
            }
        }
    }

    func isZero(_ c: PageClass, _ t: Int) -> Bool { isZero[Int(c.rawValue)][t] }

    /// How the dumpable pages of `ranges` are stored, in order, into
    /// `batch`: the shared zero page (level bit 1), compressed when that is
    /// smaller, or raw. Each page is compressed straight into the batch's
    /// buffer (no copy of the compressed bytes); a page stored raw is copied
    /// over its failed compression.
    /// The batch's entries and byte count are kept in locals while its
    /// pages are stored (the entries array moved out and back, not copied):
    /// the class's stored properties would otherwise be checked for
    /// exclusive access on every page.
    /// - Complexity: O(pages), no allocation.
    func store(_ ranges: [Range<UInt64>], into batch: PageBatch, _ compressor: PageCompressor) {
        batch.reset()
        let excludeZero = options.excludeZero
        var entries: [PageBatch.Entry] = []
        swap(&entries, &batch.entries)
        var count = 0
        let bytes = batch.bytes
        forEachPage(ranges) { _, page in
            switch page {
            case .template(let c, let t):
                entries.append(excludeZero && isZero(c, t) ? .zero : .template(c, t))
            case .bytes(let p):
                if excludeZero, isZeroPage(p) { entries.append(.zero); return }
                let dst = bytes + count
                if let n = compressor.compress(p, into: dst) {
                    count += n
                    entries.append(.compressed(n))
                } else {
                    dst.copyMemory(from: p.baseAddress!, byteCount: p.count)
                    count += p.count
                    entries.append(.raw)
                }
            }
        }
        swap(&entries, &batch.entries)
        batch.count = count
    }

    /// The stored size of the pages of `ranges` and how many are zero
    /// pages, as `storeBatch` would store them, without keeping any bytes.
    func storedSize(_ ranges: [Range<UInt64>], _ compressor: PageCompressor) -> (bytes: UInt64, zeros: UInt64) {
        var bytes: UInt64 = 0, zeros: UInt64 = 0
        forEachPage(ranges) { _, page in
            switch page {
            case .template(let c, let t):
                if options.excludeZero && isZero(c, t) { zeros += 1 } else { bytes += storedSize(c, t) }
            case .bytes(let p):
                if options.excludeZero, isZeroPage(p) { zeros += 1 } else { bytes += UInt64(compressor.compressedCount(p) ?? p.count) }
            }
        }
        return (bytes, zeros)
    }

    /// Stores every batch of dumpable PFNs (`store`) on `options.threads`
    /// threads and hands each to `sink` in PFN order on the calling thread,
    /// while the next ones are compressed (`orderedPipeline`, `threads + 2`
    /// batches in flight); `progress` advances by each batch's bytes once
    /// it is sunk.
    /// - Complexity: O(dumpable pages); memory O(threads × batch).
    func forEachStoredBatch(progress: (any ProgressReporter)? = nil, sink: (PageBatch) throws -> Void) throws {
        let threads = max(1, options.threads)
        let compressors = try (0..<threads).map { _ in try PageCompressor(options.compression) }
        let slots = (0..<(threads == 1 ? 1 : threads + 2)).map { _ in PageBatch(pages: Self.batchPages) }
        var cutter = BatchCutter(pages: Self.batchPages)
        var dumpable = filtered.dumpable.makeIterator()
        var cut: [[Range<UInt64>]] = []
        // The batches, cut as they are asked for (never all at once: a 4 TiB guest has 10^6).
        let next: () -> [Range<UInt64>]? = {
            while cut.isEmpty {
                if let r = dumpable.next() { cutter.add(r) { cut.append($0) } } else { cutter.finish { cut.append($0) }; break }
            }
            return cut.isEmpty ? nil : cut.removeFirst()
        }
        try orderedPipeline(threads: threads, slots: slots, next: next,
                            produce: { w, ranges, batch in self.store(ranges, into: batch, compressors[w]) },
                            consume: { ranges, batch in
                                try sink(batch)
                                progress?.advance(by: Self.pages(ranges) * Self.blockSize)
                            })
    }

    /// The report fields that do not depend on page contents.
    func baseReport() -> DumpReport {
        var r = DumpReport()
        image.forEachRun { pfns, c in
            r.totalPages += UInt64(pfns.count)
            // An input file's pages have no known class.
            if image.input == nil { r.pagesByClass[c, default: 0] += UInt64(pfns.count) }
        }
        let x = filtered.counts
        r.cachePages = x.cache; r.privateCachePages = x.privateCache; r.userPages = x.user
        r.freePages = x.free; r.hwpoisonPages = x.hwpoison; r.offlinePages = x.offline
        r.dumpablePages = filtered.dumpableCount
        return r
    }

    // MARK: Write

    /// Pages in `ranges`.
    static func pages(_ ranges: [Range<UInt64>]) -> UInt64 { ranges.reduce(0) { $0 + UInt64($1.count) } }

    /// Writes the file to `path` through a temporary file; `progress`, if
    /// given, follows the dumpable pages as they are written.
    /// - Complexity: O(dumpable pages), compression spread over `options.threads`.
    @discardableResult
    public func write(to path: String, progress: (any ProgressReporter)? = nil) throws -> DumpReport {
        try progress.run(ProgressTask("writing \(path)", total: filtered.dumpableCount * Self.blockSize)) {
            try writeFile(to: path, progress: progress)
        }
    }

    func writeFile(to path: String, progress: (any ProgressReporter)?) throws -> DumpReport {
        var report = baseReport()
        let f = try AtomicFile(path: path)
        try f.write(header(), at: 0)
        try f.write(subHeader(), at: Self.blockSize)
        try f.write(notes, at: Self.blockSize + 104)
        try writeBitmaps(f)
        var desc = ChunkedWriter(file: f, offset: descriptorOffset)
        let dataStart = descriptorOffset + 24 * report.dumpablePages
        var data = ChunkedWriter(file: f, offset: dataStart)
        if options.excludeZero { try data.append([UInt8](repeating: 0, count: Int(Self.blockSize))) }
        let flags = options.compression.rawValue
        try forEachStoredBatch(progress: progress) { batch in
            // The batch's stored bytes are one run of the data region (templates
            // aside): descriptors point into it as it grows, and it is appended
            // whole, in one write where it is large, not a page at a time.
            var cursor = 0, pending = 0
            func appendPending() throws {
                guard pending > 0 else { return }
                try data.append(batch.slice(cursor, cursor + pending))
                cursor += pending; pending = 0
            }
            for e in batch.entries {
                switch e {
                case .zero:
                    report.zeroPages += 1
                    try desc.appendDescriptor(offset: dataStart, size: Self.blockSize, flags: 0)
                case .template(let c, let t):
                    try appendPending()
                    if let z = compressed[Int(c.rawValue)][t] {
                        try desc.appendDescriptor(offset: data.position, size: UInt64(z.count), flags: flags)
                        try data.append(z[...])
                    } else {
                        try desc.appendDescriptor(offset: data.position, size: Self.blockSize, flags: 0)
                        try data.append(image.content.templates[Int(c.rawValue)][t][...])
                    }
                case .compressed(let n):
                    try desc.appendDescriptor(offset: data.position + UInt64(pending), size: UInt64(n), flags: flags)
                    pending += n
                case .raw:
                    try desc.appendDescriptor(offset: data.position + UInt64(pending), size: Self.blockSize, flags: 0)
                    pending += 4096
                }
            }
            try appendPending()
        }
        try desc.flush()
        try data.flush()
        guard UInt64(desc.position) == dataStart else { throw CocomemError(.io, "internal: descriptor count differs from the 2nd bitmap") }
        try image.input?.checkReads()
        report.fileSize = data.position
        report.dataBytes = data.position - descriptorOffset
        try f.commit()
        return report
    }


    /// `struct disk_dump_header` (464 bytes on x86-64).
    func header() -> [UInt8] {
        var w = ByteWriter()
        w.raw(Array("KDUMP   ".utf8))
        w.u32(6)                                   // header_version
        w.raw(utsname())                           // utsname: from init_uts_ns when VMCOREINFO lets makedumpfile read it
        w.zeros(6)                                 // padding to the timeval
        w.u64(UInt64(bitPattern: crashTime)); w.u64(0)   // tv_sec = CRASHTIME, tv_usec = 0
        w.u32(options.compression.rawValue)        // status
        w.u32(UInt32(Self.blockSize))
        w.u32(UInt32(subHeaderBlocks))
        w.u32(UInt32(2 * bitmapBlocksOne))
        w.u32(UInt32(min(image.maxMapnr, UInt64(UInt32.max))))
        w.u32(0); w.u32(0); w.u32(0); w.u32(0)     // total_ram_blocks, device_blocks, written_blocks, current_cpu
        w.u32(UInt32(image.cpus))                  // nr_cpus: CORE notes
        return w.bytes
    }

    /// `info->system_utsname` as `check_release()` reads it from
    /// `init_uts_ns`, or zeros without VMCOREINFO. A model image is read the
    /// way a file is: through its VMCOREINFO and its pages, nothing else.
    func utsname() -> [UInt8] {
        if let f = image.input { return Self.utsname(from: f) }
        guard image.kernel != nil else { return [UInt8](repeating: 0, count: 6 * 65) }
        return Self.utsname(vmcoreinfo: image.vmcoreinfo) { paddr, out in image.read(paddr: paddr, into: out) }
    }

    static func utsname(from f: ELFInput) -> [UInt8] {
        utsname(vmcoreinfo: f.vmcoreinfo) { paddr, out in f.read(paddr: paddr, into: out) }
    }

    /// `get_utsname()`: `SYMBOL(init_uts_ns)` plus
    /// `OFFSET(uts_namespace.name)` (or the `kref` int before it), a kernel
    /// image address translated as `vaddr - __START_KERNEL_map + phys_base`,
    /// read from memory with `read`.
    static func utsname(vmcoreinfo: String?, read: (UInt64, UnsafeMutableRawBufferPointer) -> Void) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 6 * 65)
        guard let v = vmcoreinfo else { return out }
        let info = VmcoreinfoNumbers(text: v)
        guard let sym = info.symbols["init_uts_ns"] else { return out }
        let vaddr = sym &+ (info.offset("uts_namespace.name") ?? 4)
        let startKernelMap: UInt64 = 0xffff_ffff_8000_0000
        guard vaddr >= startKernelMap else { return out }
        let paddr = vaddr - startKernelMap &+ UInt64(bitPattern: info.number("phys_base") ?? 0)
        out.withUnsafeMutableBytes { read(paddr, $0) }
        return out
    }

    /// `struct kdump_sub_header` (104 bytes).
    func subHeader() -> [UInt8] {
        var w = ByteWriter()
        w.u64(vmcoreinfoNumber("phys_base") ?? 0)
        w.u32(UInt32(options.dumpLevel)); w.u32(0)  // dump_level, split
        w.u64(0); w.u64(0)                          // start_pfn, end_pfn (split only)
        let (vOff, vSize) = vmcoreinfoLocation()
        w.u64(vOff); w.u64(vSize)
        w.u64(Self.blockSize + 104); w.u64(UInt64(notes.count))
        w.u64(0); w.u64(0)                          // eraseinfo
        w.u64(0); w.u64(0)                          // start_pfn_64, end_pfn_64 (split only)
        w.u64(image.maxMapnr)
        return w.bytes
    }

    /// Offset (in this file) and size of the VMCOREINFO note's text.
    func vmcoreinfoLocation() -> (UInt64, UInt64) {
        guard let v = image.vmcoreinfo else { return (0, 0) }
        if let f = image.input, let o = f.vmcoreinfoOffset { return (Self.blockSize + 104 + o, UInt64(v.utf8.count)) }
        let before = ELFVmcore.notes(cpus: image.cpus, vmcoreinfo: nil).count
        let nameSize = alignUp(UInt64("VMCOREINFO".utf8.count + 1), 4)
        return (Self.blockSize + 104 + UInt64(before) + 12 + nameSize, UInt64(v.utf8.count))
    }

    var crashTime: Int64 {
        guard let v = image.vmcoreinfo, let line = v.splitLines().first(where: { $0.hasPrefix("CRASHTIME=") }) else { return 0 }
        return Int64(line.dropFirst("CRASHTIME=".count)) ?? 0
    }

    func vmcoreinfoNumber(_ name: String) -> UInt64? {
        guard let v = image.vmcoreinfo else { return nil }
        let key = "NUMBER(\(name))="
        guard let line = v.splitLines().first(where: { $0.hasPrefix(key) }) else { return nil }
        return Int64(line.dropFirst(key.count)).map { UInt64(bitPattern: $0) }
    }

    /// The 1st bitmap (every PFN inside a PT_LOAD) and the 2nd (what the
    /// filter kept; zero pages keep their bits).
    func writeBitmaps(_ f: AtomicFile) throws {
        let oneBitmapBytes = bitmapBlocksOne * Self.blockSize
        let base1 = (1 + subHeaderBlocks) * Self.blockSize
        let chunkBytes: UInt64 = 1 << 20
        var start: UInt64 = 0
        while start < oneBitmapBytes {
            let len = min(chunkBytes, oneBitmapBytes - start)
            let pfnLo = start * 8, pfnHi = (start + len) * 8
            func bitmap(_ ranges: [Range<UInt64>]) -> [UInt8] {
                var buf = [UInt8](repeating: 0, count: Int(len))
                for r in ranges {
                    let a = max(r.lowerBound, pfnLo), b = min(r.upperBound, pfnHi)
                    if a < b { setBits(&buf, (a - pfnLo)..<(b - pfnLo)) }
                }
                return buf
            }
            try f.write(bitmap(image.loadPFNs), at: base1 + start)
            try f.write(bitmap(filtered.dumpable), at: base1 + oneBitmapBytes + start)
            start += len
        }
    }

    func setBits(_ buf: inout [UInt8], _ r: Range<UInt64>) {
        var i = r.lowerBound
        while i < r.upperBound {
            if i % 8 == 0, r.upperBound - i >= 8 {
                let n = (r.upperBound - i) / 8
                for k in 0..<n { buf[Int(i / 8 + k)] = 0xff }
                i += n * 8
                continue
            }
            buf[Int(i / 8)] |= UInt8(1) << UInt8(i % 8)
            i += 1
        }
    }
}

/// Buffers appends to one region of a file and flushes them in large writes.
struct ChunkedWriter {
    let file: AtomicFile
    private(set) var position: UInt64
    private var buffer: [UInt8] = []
    private var bufferStart: UInt64
    static let flushBytes = 1 << 20

    init(file: AtomicFile, offset: UInt64) {
        self.file = file
        position = offset
        bufferStart = offset
        buffer.reserveCapacity(Self.flushBytes + 8192)
    }

    /// Appends one 24-byte `page_desc_t` (offset, size, flags, page_flags 0).
    mutating func appendDescriptor(offset: UInt64, size: UInt64, flags: UInt32) throws {
        let d = (offset.littleEndian, UInt32(size).littleEndian, flags.littleEndian, UInt64(0))
        withUnsafeBytes(of: d) { buffer.append(contentsOf: $0) }
        position += 24
        if buffer.count >= Self.flushBytes { try flush() }
    }

    /// Appends `bytes`; a block at least `flushBytes` long is written
    /// straight from where it is (after what is buffered), not copied.
    mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count >= Self.flushBytes {
            try flush()
            try file.write(bytes, at: position)
            position += UInt64(bytes.count)
            bufferStart = position
            return
        }
        buffer.append(contentsOf: bytes)
        position += UInt64(bytes.count)
        if buffer.count >= Self.flushBytes { try flush() }
    }

    mutating func append(_ bytes: ArraySlice<UInt8>) throws {
        buffer += bytes
        position += UInt64(bytes.count)
        if buffer.count >= Self.flushBytes { try flush() }
    }

    mutating func append(_ bytes: [UInt8]) throws {
        buffer += bytes
        position += UInt64(bytes.count)
        if buffer.count >= Self.flushBytes { try flush() }
    }

    /// Appends `count` zero bytes.
    mutating func appendZeros(_ count: UInt64) throws {
        var left = count
        while left > 0 {
            let n = Int(min(left, UInt64(Self.flushBytes)))
            buffer.append(contentsOf: repeatElement(0, count: n))
            position += UInt64(n)
            left -= UInt64(n)
            if buffer.count >= Self.flushBytes { try flush() }
        }
    }

    /// Appends `count` bytes of the input file from `offset`, after what
    /// is buffered: copied by the kernel (`AtomicFile.copy`), or, where it
    /// cannot copy between the two files, read with `pread` into the buffer.
    /// Returns the bytes appended, fewer where the file ended (it shrank).
    /// - Complexity: O(count), in the kernel where it can.
    mutating func appendCopy(from input: ELFInput, at offset: UInt64, count: UInt64) throws -> UInt64 {
        try flush()
        if let n = try file.copy(from: input.fd, at: offset, count: count, to: position) {
            position += n
            bufferStart = position
            return n
        }
        var done: UInt64 = 0
        while done < count {
            let n = Int(min(count - done, UInt64(Self.flushBytes)))
            let start = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: n))
            let got = buffer.withUnsafeMutableBytes { ELFInput.pread(fd: input.fd, $0.baseAddress! + start, count: n, at: offset + done) }
            buffer.removeLast(n - got)
            position += UInt64(got)
            done += UInt64(got)
            if buffer.count >= Self.flushBytes { try flush() }
            if got < n { break }
        }
        return done
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try file.write(buffer, at: bufferStart)
        bufferStart += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Maps `items` on up to `threads` threads, keeping their order.
func parallelMap<T, R>(_ items: [T], threads: Int, _ body: @escaping @Sendable (T) -> R) -> [R] {
    if threads <= 1 || items.count <= 1 { return items.map(body) }
    var results = [R?](repeating: nil, count: items.count)
    results.withUnsafeMutableBufferPointer { out in
        nonisolated(unsafe) let out = out
        nonisolated(unsafe) let items = items
        let next = Counter()
        DispatchQueue.concurrentPerform(iterations: min(threads, items.count)) { _ in
            while true {
                let i = next.take()
                guard i < items.count else { return }
                out[i] = body(items[i])
            }
        }
    }
    return results.map { $0! }
}

/// A lock-protected free list of byte buffers, shared by the threads of
/// one write.
final class BufferPool: @unchecked Sendable {
    private var free: [[UInt8]] = []
    private let lock = NSLock()
    /// A buffer from the list, or an empty one.
    func take() -> [UInt8] { lock.lock(); defer { lock.unlock() }; return free.popLast() ?? [] }
    func give(_ b: [UInt8]) { lock.lock(); defer { lock.unlock() }; if free.count < 64 { free.append(b) } }
}

/// A shared work index.
final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func take() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
}

/// True if the 4 KiB page is all zeros (`is_zero_page()`), 64 bytes at a
/// time: a page that is not zero is usually known by its first line, so
/// only zero pages are read whole.
@inline(__always)
func isZeroPage(_ page: UnsafeRawBufferPointer) -> Bool {
    guard let base = page.baseAddress, page.count % 64 == 0 else { return page.allSatisfy { $0 == 0 } }
    var i = 0
    while i < page.count {
        var acc: UInt64 = 0
        for k in stride(from: 0, to: 64, by: 8) { acc |= base.loadUnaligned(fromByteOffset: i + k, as: UInt64.self) }
        if acc != 0 { return false }
        i += 64
    }
    return true
}
