import Foundation
public import MemoryModel

/// An ELF64 vmcore read from a file: `/proc/vmcore` as a capture kernel
/// exports it, or a copy, or what `cocomem dump --elf` wrote. Parsed the
/// way makedumpfile does before it converts one (`check_elf_format()`,
/// `get_elf64_phdr_memory()`, `get_pt_note()`, `get_vmcoreinfo()`): the
/// PT_LOADs by physical address, the one PT_NOTE copied verbatim into the
/// output, the `CORE` notes counted as CPUs and the `VMCOREINFO` text.
///
/// Every malformed, truncated or foreign file is rejected with an error
/// that names what is wrong. Pages are read from a private read-only mapping
/// of the whole file (`FileMapping`, as makedumpfile's `read_with_mmap()`)
/// where it can be made and the file has not shrunk, else with `pread`;
/// either way threads may read at once.
public final class ELFInput: @unchecked Sendable {
    /// One PT_LOAD: `memsz` bytes of physical memory from `paddr`, of which
    /// the first `filesz` are in the file at `offset` (the rest read as zeros).
    public struct Load: Sendable, Equatable {
        public var paddr: UInt64, memsz: UInt64, offset: UInt64, filesz: UInt64
    }

    public let path: String
    public let fileSize: UInt64
    /// The 64-byte ELF header and every program header, as in the file
    /// (`makedumpfile -E` copies them).
    public let elfHeader: [UInt8]
    public let programHeaders: [ELFProgramHeader]
    public let segments: [Load]
    /// The PT_NOTE contents.
    public let notes: [UInt8]
    /// `CORE`/NT_PRSTATUS notes.
    public let cpus: Int
    public let vmcoreinfo: String?
    /// Offset of the VMCOREINFO text inside `notes`.
    public let vmcoreinfoOffset: UInt64?
    /// Physical memory the PT_LOADs cover, page-granular, merged and sorted
    /// (makedumpfile's 1st bitmap: `paddr >> PAGE_SHIFT ..< (paddr + memsz) >> PAGE_SHIFT`).
    public let ranges: [AddressRange]
    /// Which PT_LOAD serves each byte: disjoint pieces sorted by address,
    /// each owned by the first PT_LOAD (in file order) covering it, so a read
    /// finds its PT_LOAD by binary search however many there are.
    let pieces: [(start: UInt64, end: UInt64, load: Int)]
    let fd: Int32
    /// The whole file mapped read-only, or nil (then every read is a `pread`).
    let mapping: FileMapping?
    private let lock = NSLock()
    private var readError: String? = nil


    /// The smallest bitmap limit: whatever the file's size, PT_LOADs may
    /// reach 8 TiB of physical address space (a 256 MiB bitmap, one bit per
    /// 4 KiB page). See `maximumBitmapBytes(fileSize:)`.
    public static let minimumBitmapLimit: UInt64 = 256 << 20

    /// The largest bitmap (one bit per PFN up to the highest PT_LOAD page,
    /// makedumpfile's `max_mapnr`) a file of `fileSize` bytes may ask for:
    /// its own size, or 256 MiB if that is more. A dump's two bitmaps, and
    /// the memory its filter uses, are then bounded by the input file: a
    /// 4 KiB PT_LOAD at 64 TiB in a small file is refused instead of taking
    /// 2 GiB of memory, and a flipped `p_memsz` cannot turn a 100 MB vmcore
    /// into a 9 GB output. A real `/proc/vmcore` or a copy holds every page
    /// it maps (its bitmap is 1/32768 of it); a `makedumpfile -E` file of a
    /// guest up to 8 TiB is always read.
    public static func maximumBitmapBytes(fileSize: UInt64) -> UInt64 { max(fileSize, minimumBitmapLimit) }

    /// The fewest pages the PT_LOADs of any file may describe: 2^24 (64 GiB).
    /// See `maximumPages(fileSize:)`.
    public static let minimumPageLimit: UInt64 = 1 << 24

    /// The most pages (4 KiB, overlaps counted once) the PT_LOADs of a file
    /// of `fileSize` bytes may describe, zero-filled parts (`p_memsz -
    /// p_filesz`) included: 512 bytes of memory per byte of file, or 64 GiB
    /// if that is more. Every dump reads each described page (the filter,
    /// zero-page detection, one page descriptor per page), so this bounds a
    /// dump's time and output by the file, as the bitmap limit bounds its
    /// memory: one PT_LOAD of a 200 KB file zero-filled to 1 TiB took minutes
    /// at `-d 31` and asked for a 6 GiB output. A real vmcore holds at least
    /// the memmap of the memory it describes (64 bytes of struct page per 4
    /// KiB page, kernel data no dump level excludes): `/proc/vmcore` and its
    /// copies hold every page; a `makedumpfile -E` file, whose excluded runs
    /// are zero-filled, still holds the memmap, 1/64 of the memory, well
    /// inside 1/512.
    public static func maximumPages(fileSize: UInt64) -> UInt64 { max(fileSize / 8, minimumPageLimit) }

    /// Opens `path` without blocking (a FIFO or a device never hangs the
    /// open) and refuses anything but a regular file.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw CocomemError(.io, "cannot read '\(path)': \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw CocomemError(.io, "cannot read '\(path)': \(e)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw CocomemError(.io, "cannot read '\(path)': \(OutputPaths.kind(st.st_mode)), not a regular file (a vmcore is read at offsets its headers give, so it must be a file)")
        }
        fileSize = UInt64(st.st_size)
        do {
            let parsed = try Self.parse(fd: fd, fileSize: fileSize, path: path)
            segments = parsed.loads
            elfHeader = parsed.elfHeader
            programHeaders = parsed.programHeaders
            notes = parsed.notes
            cpus = parsed.cpus
            vmcoreinfo = parsed.vmcoreinfo
            vmcoreinfoOffset = parsed.vmcoreinfoOffset
            ranges = parsed.ranges
            pieces = Self.pieces(parsed.loads)
            mapping = FileMapping(fd: fd, length: fileSize)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        mapping?.unmap()
        close(fd)
    }

    struct Parsed {
        var loads: [Load] = [], notes: [UInt8] = [], cpus = 0
        var vmcoreinfo: String? = nil, vmcoreinfoOffset: UInt64? = nil, ranges: [AddressRange] = []
        var elfHeader: [UInt8] = [], programHeaders: [ELFProgramHeader] = []
    }

    static func bad(_ path: String, _ why: String) -> CocomemError { CocomemError(.invalidArgument, "'\(path)' is not a usable ELF vmcore: \(why)") }

    /// `check_elf_format()` and the program header walk.
    static func parse(fd: Int32, fileSize: UInt64, path: String) throws -> Parsed {
        guard fileSize >= 64 else { throw bad(path, "only \(fileSize) bytes, shorter than an ELF header") }
        let eh = try readExactly(fd: fd, at: 0, count: 64, path: path)
        guard eh[0..<4] == [0x7f, 0x45, 0x4c, 0x46] else { throw bad(path, "no ELF magic (not an ELF file)") }
        guard eh[4] == 2 else { throw bad(path, "ELFCLASS\(eh[4] == 1 ? "32" : "(\(eh[4]))"): only 64-bit vmcores are read") }
        guard eh[5] == 1 else { throw bad(path, "big-endian or unknown data encoding \(eh[5]): only x86-64 little-endian vmcores are read") }
        let type = le16(eh, 16), machine = le16(eh, 18)
        guard type == 4 else { throw bad(path, "e_type \(type) is not ET_CORE (4)") }
        guard machine == 62 else { throw bad(path, "e_machine \(machine) is not EM_X86_64 (62)") }
        let phoff = le64(eh, 32), phentsize = UInt64(le16(eh, 54)), phnum = UInt64(le16(eh, 56))
        guard phentsize == 56 else { throw bad(path, "e_phentsize \(phentsize) is not 56") }
        guard phnum > 0, phnum < 0xffff else { throw bad(path, "e_phnum \(phnum) (PN_XNUM and empty tables are not read)") }
        guard phoff <= fileSize, phnum * 56 <= fileSize - phoff else {
            throw bad(path, "truncated: the \(phnum) program headers at offset \(phoff) end past the file's \(fileSize) bytes")
        }
        let ph = try readExactly(fd: fd, at: phoff, count: Int(phnum * 56), path: path)
        var out = Parsed()
        out.elfHeader = eh
        out.programHeaders = (0..<Int(phnum)).map { ELFProgramHeader(ph, at: $0 * 56) }
        var noteSeen = false
        for i in 0..<Int(phnum) {
            let b = i * 56
            let pType = le32(ph, b), offset = le64(ph, b + 8), paddr = le64(ph, b + 24)
            let filesz = le64(ph, b + 32), memsz = le64(ph, b + 40)
            guard offset <= fileSize, filesz <= fileSize - offset else {
                throw bad(path, "truncated: program header \(i) (\(pType == ELFProgramHeader.load ? "PT_LOAD" : "type \(pType)")) needs bytes up to \(offset &+ filesz), the file has \(fileSize)")
            }
            switch pType {
            case ELFProgramHeader.load:
                guard filesz <= memsz else { throw bad(path, "PT_LOAD \(i) has p_filesz \(filesz) > p_memsz \(memsz)") }
                // makedumpfile reads p_memsz - p_filesz as zeros; the end is bounded below with max_mapnr.
                guard paddr <= UInt64.max - memsz else { throw bad(path, "PT_LOAD \(i): p_paddr \(hex(paddr)) + p_memsz \(hex(memsz)) wraps the physical address space") }
                out.loads.append(Load(paddr: paddr, memsz: memsz, offset: offset, filesz: filesz))
            case ELFProgramHeader.note where !noteSeen:
                noteSeen = true
                guard filesz <= 64 << 20 else { throw bad(path, "PT_NOTE of \(filesz) bytes") }
                out.notes = try readExactly(fd: fd, at: offset, count: Int(filesz), path: path)
            default:
                continue
            }
        }
        guard !out.loads.isEmpty else { throw bad(path, "no PT_LOAD program header") }
        // The highest PFN sizes every bitmap: bound it by the file before anything is allocated.
        let limit = maximumBitmapBytes(fileSize: fileSize)
        if let (i, top) = out.loads.enumerated().map({ ($0.offset, $0.element.paddr + $0.element.memsz) }).max(by: { $0.1 < $1.1 }),
           (top / 4096 + 1) / 8 > limit {
            throw bad(path, "PT_LOAD \(i) ends at physical address \(hex(top)) (p_memsz \(out.loads[i].memsz)): its bitmaps, one bit per 4 KiB page up to there, would need \(top / 4096 / 8 / (1 << 20)) MiB; a \(fileSize)-byte file may address at most \(limit * 8 * 4096 / (1 << 40)) TiB (bitmaps up to the larger of the file's size and 256 MiB)")
        }
        out.ranges = mergedRanges(out.loads)
        let pages = out.ranges.reduce(0) { $0 + $1.size / 4096 }, pageLimit = maximumPages(fileSize: fileSize)
        guard pages <= pageLimit else {
            throw bad(path, "its PT_LOADs describe \(pages) pages (\(ByteCount(pages &* 4096)), zero-filled p_memsz included), more than the \(pageLimit) a \(fileSize)-byte file may (512 bytes of memory per byte of file, at least 64 GiB): a real vmcore holds at least its memmap, 1/64 of the memory it describes")
        }
        try parseNotes(&out, path: path)
        return out
    }

    /// Walks the note section: `CORE` NT_PRSTATUS notes are CPUs; the
    /// `VMCOREINFO` note's text is kept with its offset.
    static func parseNotes(_ out: inout Parsed, path: String) throws {
        let n = out.notes
        var at = 0
        while at + 12 <= n.count {
            let namesz = Int(le32(n, at)), descsz = Int(le32(n, at + 4)), type = le32(n, at + 8)
            if namesz == 0 && descsz == 0 && type == 0 { break }  // padding after the last note
            let nameStart = at + 12
            let descStart = nameStart + ((namesz + 3) & ~3)
            let next = descStart + ((descsz + 3) & ~3)
            guard namesz <= 4096, descsz <= n.count, next <= n.count else {
                throw bad(path, "corrupt PT_NOTE: the note at offset \(at) (namesz \(namesz), descsz \(descsz)) runs past the \(n.count)-byte note section")
            }
            let name = String(decoding: n[nameStart..<(nameStart + namesz)].prefix { $0 != 0 }, as: UTF8.self)
            if name == "CORE" && type == 1 { out.cpus += 1 }
            if name == "VMCOREINFO" {
                out.vmcoreinfo = String(decoding: n[descStart..<(descStart + descsz)], as: UTF8.self)
                out.vmcoreinfoOffset = UInt64(descStart)
            }
            at = next
        }
    }

    /// PT_LOAD pages, merged where PT_LOADs touch or overlap (a real
    /// `/proc/vmcore` also maps the kernel text a second time).
    static func mergedRanges(_ loads: [Load]) -> [AddressRange] {
        let rs = loads.map { AddressRange(frames: GuestPhysicalAddress($0.paddr).frame..<GuestPhysicalAddress($0.paddr + $0.memsz).frame) }
            .filter { !$0.isEmpty }.sorted { $0.start < $1.start }
        var out: [AddressRange] = []
        for r in rs {
            if let l = out.last, l.end >= r.start { out[out.count - 1] = AddressRange(start: l.start, end: max(l.end, r.end)) } else { out.append(r) }
        }
        return out
    }

    /// The pieces of `loads`: a sweep over their start and end addresses
    /// with a min-heap of the file indices of the PT_LOADs covering the
    /// current address (the smallest owns it).
    /// - Complexity: O(n log n) in the number of PT_LOADs.
    static func pieces(_ loads: [Load]) -> [(start: UInt64, end: UInt64, load: Int)] {
        let order = loads.indices.filter { loads[$0].memsz > 0 }.sorted { loads[$0].paddr < loads[$1].paddr }
        var bounds = Array(Set(order.flatMap { [loads[$0].paddr, loads[$0].paddr + loads[$0].memsz] })).sorted()
        if bounds.isEmpty { bounds = [0] }
        var heap: [Int] = []   // file indices, a binary min-heap
        func push(_ i: Int) {
            heap.append(i)
            var c = heap.count - 1
            while c > 0, heap[(c - 1) / 2] > heap[c] { heap.swapAt(c, (c - 1) / 2); c = (c - 1) / 2 }
        }
        func pop() {
            heap.swapAt(0, heap.count - 1); heap.removeLast()
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < heap.count, heap[l] < heap[m] { m = l }
                if r < heap.count, heap[r] < heap[m] { m = r }
                if m == p { break }
                heap.swapAt(p, m); p = m
            }
        }
        var out: [(start: UInt64, end: UInt64, load: Int)] = []
        var next = 0
        for (k, b) in bounds.enumerated().dropLast() {
            while next < order.count, loads[order[next]].paddr <= b { push(order[next]); next += 1 }
            while let top = heap.first, loads[top].paddr + loads[top].memsz <= b { pop() }
            guard let owner = heap.first else { continue }
            let e = bounds[k + 1]
            if let last = out.last, last.load == owner, last.end == b { out[out.count - 1].end = e } else { out.append((b, e, owner)) }
        }
        return out
    }

    /// Reads physical `[paddr, paddr + buffer.count)` into `buffer`, from the
    /// first PT_LOAD holding each byte (as makedumpfile's `readmem()` picks
    /// one); bytes past a PT_LOAD's `filesz` or in no PT_LOAD read as zeros.
    /// Only those bytes are zeroed: the rest is written once, by the read.
    /// A failed read zero-fills and is reported by `checkReads()`.
    /// - Complexity: O(log PT_LOADs) per piece read.
    public func read(paddr: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        // An address from the file's own data (a page table, VMCOREINFO) may be anything: past the top, nothing is there.
        let (end, wraps) = paddr.addingReportingOverflow(UInt64(buffer.count))
        guard !wraps else { buffer.initializeMemory(as: UInt8.self, repeating: 0); return }
        func zero(_ from: UInt64, _ to: UInt64) {
            if from < to { (base + Int(from - paddr)).initializeMemory(as: UInt8.self, repeating: 0, count: Int(to - from)) }
        }
        // A page or less (page tables, struct pages, VMCOREINFO) is copied
        // from the mapping without the `fstat`: the SIGBUS guard answers a
        // truncation under it, and the walk's ~3 reads per memmap page made
        // the `fstat`s most of a `-d 31` conversion's system time.
        let whole = mapping != nil && (buffer.count <= 4096 || stillWhole())
        var a = paddr
        while a < end {
            // The first piece ending after a.
            var lo = 0, hi = pieces.count
            while lo < hi { let mid = (lo + hi) / 2; if pieces[mid].end <= a { lo = mid + 1 } else { hi = mid } }
            guard lo < pieces.count else { break }
            let piece = pieces[lo]
            guard piece.start <= a else { zero(a, min(piece.start, end)); a = min(piece.start, end); continue }   // a hole
            let l = segments[piece.load]
            let stop = min(end, piece.end)
            let inFile = min(stop, max(a, l.paddr + l.filesz))
            if a < inFile {
                let n = Int(inFile - a), at = l.offset + (a - l.paddr)
                let dst = base + Int(a - paddr)
                if whole, let m = mapping {
                    dst.copyMemory(from: m.base + Int(at), byteCount: n)
                    // A batch read across PT_LOAD pieces: its source pages are not kept mapped either.
                    if n > 4096 { doneWith(UnsafeRawBufferPointer(start: m.base + Int(at), count: n)) }
                } else {
                    let got = Self.pread(fd: fd, dst, count: n, at: at)
                    if got != n { noteReadError(at: at + UInt64(got)); zero(a + UInt64(got), inFile) }
                }
            }
            zero(inFile, stop)
            a = stop
        }
        zero(a, end)
    }

    /// Where the bytes of physical `[paddr, paddr + count)` come from, in
    /// order, as `read` would take them: `.file` extents of the input (one
    /// PT_LOAD piece's data each) and `.zeros` (holes, zero-filled tails).
    /// A writer copies the file extents without bringing them into its own
    /// memory (`AtomicFile.copy`).
    enum Extent: Equatable {
        case file(offset: UInt64, count: UInt64)
        case zeros(UInt64)
    }

    /// Calls `body` with the extents of `[paddr, paddr + count)` (see `Extent`).
    /// - Complexity: O(log PT_LOADs + pieces crossed).
    func forEachExtent(paddr: UInt64, count: UInt64, _ body: (Extent) throws -> Void) rethrows {
        let (end, wraps) = paddr.addingReportingOverflow(count)
        guard !wraps else { try body(.zeros(count)); return }
        var a = paddr
        var i = firstPiece(endingAfter: a)
        while a < end {
            guard i < pieces.count else { break }
            let piece = pieces[i]
            guard piece.start <= a else { let b = min(piece.start, end); try body(.zeros(b - a)); a = b; continue }   // a hole
            let l = segments[piece.load]
            let stop = min(end, piece.end)
            let inFile = min(stop, max(a, l.paddr + l.filesz))
            if a < inFile { try body(.file(offset: l.offset + (a - l.paddr), count: inFile - a)) }
            if inFile < stop { try body(.zeros(stop - inFile)) }
            a = stop
            i += 1
        }
        if a < end { try body(.zeros(end - a)) }
    }

    /// The PFNs makedumpfile's `exclude_nodata_pages()` clears from the 2nd
    /// bitmap: for each PT_LOAD in file order, the pages of `p_memsz` past
    /// `p_filesz` (commit 1cdabcd, "Mark unstored ELF pages as filtered"),
    /// which are then neither read nor dumped at any level, nor counted as
    /// excluded. The first page is `roundup(p_paddr + p_filesz)` when
    /// `roundsUp` (f2c5f76, makedumpfile 1.7.6 and later), else the page
    /// holding `p_paddr + p_filesz`, so 1.7.2 also clears a page whose data
    /// ends inside it. Every other PT_LOAD's data at those pages does not
    /// keep them. Sorted by start, possibly overlapping.
    /// - Complexity: O(n log n) in the number of PT_LOADs.
    public func nodataFrames(roundsUp: Bool) -> [Range<UInt64>] {
        segments.compactMap { l -> Range<UInt64>? in
            let dataEnd = l.paddr + l.filesz
            let first = roundsUp ? divRoundUp(dataEnd, 4096) : dataEnd / 4096
            let end = divRoundUp(l.paddr + l.memsz, 4096)
            return first < end ? first..<end : nil
        }.sorted { $0.lowerBound < $1.lowerBound }
    }

    /// How many bytes from `paddr` (at most `count`) read as zeros by
    /// construction, without looking at the file: bytes in no PT_LOAD, or
    /// past the `p_filesz` of the PT_LOAD that serves them (`read`).
    /// - Complexity: O(log PT_LOADs + pieces crossed).
    public func zeroPrefix(paddr: UInt64, count: UInt64) -> UInt64 {
        let end = paddr.addingReportingOverflow(count).overflow ? UInt64.max : paddr + count
        var a = paddr
        var i = firstPiece(endingAfter: a)
        while a < end {
            guard i < pieces.count else { return end - paddr }   // past the top: nothing is there
            let piece = pieces[i]
            if a < piece.start { a = min(piece.start, end); continue }   // a hole
            let l = segments[piece.load]
            guard a >= l.paddr + l.filesz else { break }   // file data
            a = min(piece.end, end)
            i += 1
        }
        return a - paddr
    }

    /// How many bytes from `paddr` (at most `count`) are read from the
    /// file: the complement of `zeroPrefix`.
    /// - Complexity: O(log PT_LOADs + pieces crossed).
    public func dataPrefix(paddr: UInt64, count: UInt64) -> UInt64 {
        let end = paddr.addingReportingOverflow(count).overflow ? UInt64.max : paddr + count
        var a = paddr
        var i = firstPiece(endingAfter: a)
        while a < end, i < pieces.count {
            let piece = pieces[i]
            guard piece.start <= a else { break }   // a hole
            let dataEnd = segments[piece.load].paddr + segments[piece.load].filesz
            guard a < dataEnd else { break }
            a = min(piece.end, dataEnd, end)
            guard a == piece.end else { break }
            i += 1
        }
        return a - paddr
    }

    /// The index of the first piece ending after `a` (`pieces.count` if none).
    func firstPiece(endingAfter a: UInt64) -> Int {
        var lo = 0, hi = pieces.count
        while lo < hi { let mid = (lo + hi) / 2; if pieces[mid].end <= a { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    /// Physical `[paddr, paddr + count)` as bytes of the mapped file, without
    /// a copy, when all of it is file data of one PT_LOAD (the piece that
    /// `read` would use) and the file has not shrunk since it was opened;
    /// nil otherwise (a hole, a zero-filled tail, another PT_LOAD's bytes, no
    /// mapping), and the caller reads into its own buffer.
    /// - Complexity: O(log PT_LOADs), plus one `fstat`.
    public func mapped(paddr: UInt64, count: Int) -> UnsafeRawBufferPointer? {
        guard let m = mapping, count > 0 else { return nil }
        let (end, wraps) = paddr.addingReportingOverflow(UInt64(count))
        guard !wraps else { return nil }
        var lo = 0, hi = pieces.count
        while lo < hi { let mid = (lo + hi) / 2; if pieces[mid].end <= paddr { lo = mid + 1 } else { hi = mid } }
        guard lo < pieces.count, pieces[lo].start <= paddr, end <= pieces[lo].end else { return nil }
        let l = segments[pieces[lo].load]
        guard end <= l.paddr + l.filesz else { return nil }
        let at = l.offset + (paddr - l.paddr)
        guard at + UInt64(count) <= UInt64(m.length), stillWhole() else { return nil }
        return UnsafeRawBufferPointer(start: m.base + Int(at), count: count)
    }

    /// `madvise(MADV_POPULATE_READ)` (include/uapi/asm-generic/mman-common.h,
    /// Linux 5.14), spelt as its number so that an older C library's headers
    /// do not matter; an older kernel answers EINVAL and the pages fault in.
    static let madvPopulateRead: Int32 = 22
    /// The kernel's fault-around window in pages (`fault_around_bytes`, 64 KiB
    /// by default, mm/memory.c `do_fault_around()`): what one read fault on a
    /// file mapping maps of the page cache.
    package static let faultAroundPages = 16

    /// Maps the page table entries of mapped `bytes` in one call before they
    /// are read (`madvise(MADV_POPULATE_READ)`: `madvise_populate()` faults
    /// the range in kernel space), instead of a page fault per fault-around
    /// window, each also mapping up to 15 neighbours the range may not use.
    /// Only ranges longer than one window are populated: a shorter one costs
    /// one or two faults, about what the call costs. A part of the file
    /// truncated under the mapping is not mapped: the call stops there with
    /// EFAULT instead of raising SIGBUS (madvise(2)), and the access then
    /// meets the SIGBUS guard (`FileMapping`) as an unpopulated one would.
    /// Returns whether the whole range was populated (false: too short, not
    /// in the mapping, an older kernel, or a truncated file).
    /// - Complexity: one system call; O(pages) of page-table work in the kernel.
    @discardableResult
    public func populate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count > Self.faultAroundPages * 4096, let m = mapping, let p = bytes.baseAddress,
              p >= m.base, p + bytes.count <= m.base + m.length else { return false }
        let lo = UInt(bitPattern: p) & ~UInt(4095), hi = (UInt(bitPattern: p + bytes.count) + 4095) & ~UInt(4095)
        return madvise(UnsafeMutableRawPointer(bitPattern: lo), Int(hi - lo), Self.madvPopulateRead) == 0
    }

    /// Drops the page table entries of mapped `bytes` once they have been
    /// used (`MADV_DONTNEED`; the page cache keeps the data), so the
    /// process's resident set does not grow with the file, as makedumpfile
    /// keeps it small by mapping a window at a time. The range is widened
    /// to whole fault-around windows (`faultAroundPages`, aligned as
    /// `do_fault_around()` aligns them): a short range that faulted in
    /// (one not populated) also mapped up to 15 neighbours, which would
    /// otherwise stay mapped when no later range covers them (at `-d 31`
    /// the kept runs are short and scattered). A neighbour another thread
    /// is reading faults in again: the mapping is read-only, never written.
    /// - Complexity: one system call.
    public func doneWith(_ bytes: UnsafeRawBufferPointer) {
        guard let m = mapping, let p = bytes.baseAddress, p >= m.base, p + bytes.count <= m.base + m.length, bytes.count > 0 else { return }
        let window = UInt(Self.faultAroundPages * 4096)
        let base = UInt(bitPattern: m.base), top = base + (UInt(m.length) + 4095) & ~UInt(4095)
        let lo = max(base, UInt(bitPattern: p) & ~(window - 1))
        let hi = min(top, (UInt(bitPattern: p + bytes.count) + window - 1) & ~(window - 1))
        if lo < hi { _ = madvise(UnsafeMutableRawPointer(bitPattern: lo), Int(hi - lo), MADV_DONTNEED) }
    }

    /// The offset in the file of physical `paddr`'s byte, when `read` takes
    /// it from the file (the PT_LOAD piece serving it stores it); nil in a
    /// hole or a zero-filled tail. Looks nothing up in the file.
    /// - Complexity: O(log PT_LOADs).
    func fileOffset(paddr: UInt64) -> UInt64? {
        let i = firstPiece(endingAfter: paddr)
        guard i < pieces.count, pieces[i].start <= paddr else { return nil }
        let l = segments[pieces[i].load]
        guard paddr < l.paddr + l.filesz else { return nil }
        return l.offset + (paddr - l.paddr)
    }

    /// Drops this process's page table entries for the file bytes
    /// `[from, to)` of the mapping, whole pages rounded outwards
    /// (`madvise(MADV_DONTNEED)`: the page cache keeps the data, a later read
    /// faults the page in again), as makedumpfile unmaps each window of
    /// `/proc/vmcore` it has read before it maps the next
    /// (`read_with_mmap()`, `update_mmap_range()`). For reads nothing else
    /// is using (the walk's memmap pages); a batch's own pages go back
    /// through `doneWith`, which rounds inwards.
    /// - Complexity: one system call.
    func release(fileBytes from: UInt64, _ to: UInt64) {
        guard let m = mapping, from < to, from < UInt64(m.length) else { return }
        let lo = Int(from) & ~4095, hi = min(m.length, (Int(min(to, UInt64(m.length))) + 4095) & ~4095)
        if lo < hi { _ = madvise(UnsafeMutableRawPointer(mutating: m.base + lo), hi - lo, MADV_DONTNEED) }
    }

    /// Drops every page table entry of the mapping (the page tables and
    /// `mem_section` roots the walk read, fault-around neighbours): after
    /// the walk nothing of the file stays in the process's resident set.
    /// - Complexity: one system call; the kernel walks only the populated part.
    func releaseAll() {
        guard let m = mapping else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: m.base), (m.length + 4095) & ~4095, MADV_DONTNEED)
    }

    /// Bytes of the input mapping in this process's resident set: the
    /// `Rss:` of its VMA in `/proc/self/smaps` (page-cache pages the process
    /// maps, which `getrusage()`'s and `time`'s maximum RSS count); nil
    /// without a mapping or where smaps cannot be read. For tests and
    /// measurements: it reads the whole smaps file.
    /// - Complexity: O(size of /proc/self/smaps).
    package func mappedResidentBytes() -> UInt64? {
        // procfs files report size 0: read to the end.
        let fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC)
        guard let m = mapping, fd >= 0 else { if fd >= 0 { close(fd) }; return nil }
        defer { close(fd) }
        var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let start = String(UInt(bitPattern: m.base), radix: 16) + "-"
        var inside = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let first = line.split(separator: " ", maxSplits: 1).first else { continue }
            // A VMA's header ("start-end perms offset dev inode path"); its fields are "Name: value kB".
            if !first.hasSuffix(":") { inside = line.hasPrefix(start); continue }
            if inside, first == "Rss:" {
                return line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) }.map { $0 * 1024 }
            }
        }
        return nil
    }

    /// Whether the file is still at least as long as when it was opened:
    /// the mapping is used only then (a truncated file's mapping faults).
    func stillWhole() -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && UInt64(st.st_size) >= fileSize
    }

    /// `pread` until `count` bytes, end of file or an error; returns the bytes read.
    static func pread(fd: Int32, _ dst: UnsafeMutableRawPointer, count: Int, at offset: UInt64) -> Int {
        var done = 0
        while done < count {
            let n = Foundation.pread(fd, dst + done, count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        return done
    }

    private func noteReadError(at offset: UInt64) {
        lock.lock(); defer { lock.unlock() }
        if readError == nil { readError = "reading '\(path)' at offset \(offset) failed: \(String(cString: strerror(errno)))" }
    }

    /// Throws if any read since opening failed (the file shrank, an I/O error).
    public func checkReads() throws {
        lock.lock(); defer { lock.unlock() }
        if let e = readError { throw CocomemError(.io, e) }
        if let m = mapping, m.damaged {
            throw CocomemError(.io, "reading '\(path)' failed: the file was truncated while it was read (its mapping faulted past the new end)")
        }
    }

    static func readExactly(fd: Int32, at offset: UInt64, count: Int, path: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let got = count == 0 ? 0 : out.withUnsafeMutableBytes { pread(fd: fd, $0.baseAddress!, count: count, at: offset) }
        guard got == count else { throw bad(path, "truncated: \(count) bytes wanted at offset \(offset), \(got) read") }
        return out
    }

    static func le16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
    static func le64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
}
