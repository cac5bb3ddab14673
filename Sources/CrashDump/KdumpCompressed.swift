import MemoryModel

/// Options of a kdump-compressed write, in makedumpfile's vocabulary.
public struct DumpOptions: Sendable {
    /// `-d LEVEL`: 1 zero, 2 cache, 4 private cache, 8 user, 16 free.
    public var dumpLevel: Int = 1
    public var compression: DumpCompression = .zlib
    public init(dumpLevel: Int = 1, compression: DumpCompression = .zlib) {
        self.dumpLevel = dumpLevel
        self.compression = compression
    }

    /// Checks the level. Bits 2-16 need the struct pages a dump tool walks,
    /// which cocomem does not generate yet, so they are refused rather than
    /// silently ignored.
    public func validate() throws {
        guard (0...31).contains(dumpLevel) else {
            throw CocomemError(.invalidArgument, "dump level \(dumpLevel) is not between 0 and 31")
        }
        guard dumpLevel & ~1 == 0 else {
            throw CocomemError(.unsupported, "dump level \(dumpLevel): excluding cache, user or free pages (bits 2-16) needs the kernel's struct pages, which cocomem does not generate yet; use -d 0 or -d 1")
        }
    }
    var excludeZero: Bool { dumpLevel & 1 != 0 }
}

/// What a write (or estimate) found, in makedumpfile's report terms.
public struct DumpReport: Sendable, Equatable {
    public var totalPages: UInt64 = 0        // pages in PT_LOADs ("Total pages")
    public var zeroPages: UInt64 = 0
    public var cachePages: UInt64 = 0
    public var privateCachePages: UInt64 = 0
    public var userPages: UInt64 = 0
    public var freePages: UInt64 = 0
    public var offlinePages: UInt64 = 0
    public var hwpoisonPages: UInt64 = 0
    public var dumpablePages: UInt64 = 0     // set bits of the 2nd bitmap
    public var fileSize: UInt64 = 0
    /// Pages per class, for the reader of the report.
    public var pagesByClass: [PageClass: UInt64] = [:]
    public var excluded: UInt64 { zeroPages + cachePages + privateCachePages + userPages + freePages + offlinePages + hwpoisonPages }
}

/// The kdump-compressed ("diskdump") format as makedumpfile writes it
/// (`write_kdump_header()`, `write_kdump_pages_and_bitmap_cyclic()`):
/// header version 6 with `tv_usec` 0, the sub-header followed by the whole
/// note section, the two bitmaps, one 24-byte `page_desc_t` per dumpable
/// page in PFN order, and the page data, which starts with the one shared
/// zero page when level bit 1 is set. Zero pages keep their bitmap bit and
/// descriptor (they are found at write time); each other page is compressed
/// alone and stored compressed only when that is smaller.
public struct KdumpCompressedWriter {
    public static let blockSize: UInt64 = 4096
    let image: GuestMemoryImage
    let options: DumpOptions
    let compressor: PageCompressor
    let notes: [UInt8]
    /// Compressed bytes of each template (nil: stored raw), by class.
    var compressed: [[[UInt8]?]]
    /// Whether each template is all zeros, by class.
    var isZero: [[Bool]]

    public init(image: GuestMemoryImage, options: DumpOptions) throws {
        try options.validate()
        self.image = image
        self.options = options
        let compressor = try PageCompressor(options.compression)
        self.compressor = compressor
        self.notes = ELFVmcore.notes(cpus: image.cpus, vmcoreinfo: image.vmcoreinfo)
        var comp: [[[UInt8]?]] = [], zero: [[Bool]] = []
        for c in PageClass.allCases {
            let ts = image.content.templates[Int(c.rawValue)]
            zero.append(ts.map { $0.allSatisfy { $0 == 0 } })
            comp.append(ts.map { compressor.compress($0) })
        }
        compressed = comp
        isZero = zero
    }

    // MARK: Layout

    var subHeaderBlocks: UInt64 { divRoundUp(104 + UInt64(notes.count), Self.blockSize) }
    /// Blocks of one bitmap.
    var bitmapBlocksOne: UInt64 { divRoundUp(divRoundUp(image.maxMapnr, 8), Self.blockSize) }
    var descriptorOffset: UInt64 { (1 + subHeaderBlocks + 2 * bitmapBlocksOne) * Self.blockSize }

    func storedSize(_ c: PageClass, _ t: Int) -> UInt64 {
        compressed[Int(c.rawValue)][t].map { UInt64($0.count) } ?? Self.blockSize
    }

    // MARK: Estimate

    /// The exact size of the file `write` would produce, and its report,
    /// from the size formula (docs/DUMPS.md), without writing.
    /// - Complexity: O(class runs × templates), independent of guest size.
    public func estimate() -> DumpReport {
        var r = DumpReport()
        var data: UInt64 = options.excludeZero ? Self.blockSize : 0
        image.forEachRun { pfns, c in
            let n = UInt64(pfns.count)
            r.totalPages += n
            r.pagesByClass[c, default: 0] += n
            for t in 0..<Int(PageContent.templatesPerClass) {
                let k = PageContent.count(of: t, in: pfns, c)
                if options.excludeZero && isZero[Int(c.rawValue)][t] { r.zeroPages += k; continue }
                data += k * storedSize(c, t)
            }
        }
        r.dumpablePages = r.totalPages
        r.fileSize = descriptorOffset + 24 * r.dumpablePages + data
        return r
    }

    // MARK: Write

    /// Writes the file to `path` through a temporary file. The report is the
    /// estimate's: zero pages are known from the templates before writing.
    /// - Complexity: O(pages).
    @discardableResult
    public func write(to path: String) throws -> DumpReport {
        let plan = estimate()
        let f = try AtomicFile(path: path)
        try f.write(header(), at: 0)
        try f.write(subHeader(), at: Self.blockSize)
        try f.write(notes, at: Self.blockSize + 104)
        try writeBitmaps(f)
        var desc = ChunkedWriter(file: f, offset: descriptorOffset)
        let dataStart = descriptorOffset + 24 * plan.dumpablePages
        var data = ChunkedWriter(file: f, offset: dataStart)
        if options.excludeZero { try data.append([UInt8](repeating: 0, count: Int(Self.blockSize))) }
        for load in image.loads {
            var runs: [(Range<UInt64>, PageClass)] = []
            image.classes.forEachRun(in: (load.start >> 12)..<(load.end >> 12)) { runs.append(($0, $1)) }
            for (pfns, c) in runs {
                for pfn in pfns {
                    let t = PageContent.template(pfn: pfn, c)
                    if options.excludeZero && isZero[Int(c.rawValue)][t] {
                        try desc.append(descriptor(offset: dataStart, size: Self.blockSize, flags: 0))
                        continue
                    }
                    if let z = compressed[Int(c.rawValue)][t] {
                        try desc.append(descriptor(offset: data.position, size: UInt64(z.count), flags: compressor.kind.rawValue))
                        try data.append(z)
                    } else {
                        try desc.append(descriptor(offset: data.position, size: Self.blockSize, flags: 0))
                        try data.append(image.content.templates[Int(c.rawValue)][t])
                    }
                }
            }
        }
        try desc.flush()
        try data.flush()
        // The size formula and the writer share nothing but the layout; the
        // estimate test holds them equal on every guest it writes.
        assert(data.position == plan.fileSize, "kdump writer and size formula disagree")
        try f.commit()
        return plan
    }

    func descriptor(offset: UInt64, size: UInt64, flags: UInt32) -> [UInt8] {
        var w = ByteWriter()
        w.u64(offset); w.u32(UInt32(size)); w.u32(flags); w.u64(0)
        return w.bytes
    }

    /// `struct disk_dump_header` (464 bytes on x86-64).
    func header() -> [UInt8] {
        var w = ByteWriter()
        w.raw(Array("KDUMP   ".utf8))
        w.u32(6)                                   // header_version
        w.zeros(6 * 65)                            // utsname: only filled from init_uts_ns with debug info
        w.zeros(6)                                 // padding to the timeval
        w.u64(UInt64(bitPattern: crashTime)); w.u64(0)   // tv_sec = CRASHTIME, tv_usec = 0
        w.u32(compressor.kind.rawValue)            // status
        w.u32(UInt32(Self.blockSize))
        w.u32(UInt32(subHeaderBlocks))
        w.u32(UInt32(2 * bitmapBlocksOne))
        w.u32(UInt32(min(image.maxMapnr, UInt64(UInt32.max))))
        w.u32(0); w.u32(0); w.u32(0); w.u32(0)     // total_ram_blocks, device_blocks, written_blocks, current_cpu
        w.u32(UInt32(image.cpus))                  // nr_cpus: CORE notes
        return w.bytes
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
        let before = ELFVmcore.notes(cpus: image.cpus, vmcoreinfo: nil).count
        let nameSize = alignUp(UInt64("VMCOREINFO".utf8.count + 1), 4)
        return (Self.blockSize + 104 + UInt64(before) + 12 + nameSize, UInt64(v.utf8.count))
    }

    var crashTime: Int64 {
        guard let v = image.vmcoreinfo, let line = v.split(separator: "\n").first(where: { $0.hasPrefix("CRASHTIME=") }) else { return 0 }
        return Int64(line.dropFirst("CRASHTIME=".count)) ?? 0
    }

    func vmcoreinfoNumber(_ name: String) -> UInt64? {
        guard let v = image.vmcoreinfo else { return nil }
        let key = "NUMBER(\(name))="
        guard let line = v.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
        return Int64(line.dropFirst(key.count)).map { UInt64(bitPattern: $0) }
    }

    /// Both bitmaps: 1 for every PFN inside a PT_LOAD. With only zero pages
    /// excludable (found at write time) the second equals the first.
    func writeBitmaps(_ f: AtomicFile) throws {
        let oneBitmapBytes = bitmapBlocksOne * Self.blockSize
        let base1 = (1 + subHeaderBlocks) * Self.blockSize
        let chunkBytes: UInt64 = 1 << 20
        var start: UInt64 = 0
        while start < oneBitmapBytes {
            let len = min(chunkBytes, oneBitmapBytes - start)
            var buf = [UInt8](repeating: 0, count: Int(len))
            let pfnLo = start * 8, pfnHi = (start + len) * 8
            for l in image.loads {
                let a = max(l.start >> 12, pfnLo), b = min(l.end >> 12, pfnHi)
                if a < b { setBits(&buf, (a - pfnLo)..<(b - pfnLo)) }
            }
            try f.write(buf, at: base1 + start)
            try f.write(buf, at: base1 + oneBitmapBytes + start)
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
    static let flushBytes = 4 << 20

    init(file: AtomicFile, offset: UInt64) {
        self.file = file
        position = offset
        bufferStart = offset
        buffer.reserveCapacity(Self.flushBytes + 8192)
    }

    mutating func append(_ bytes: [UInt8]) throws {
        buffer += bytes
        position += UInt64(bytes.count)
        if buffer.count >= Self.flushBytes { try flush() }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try file.write(buffer, at: bufferStart)
        bufferStart += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }
}
