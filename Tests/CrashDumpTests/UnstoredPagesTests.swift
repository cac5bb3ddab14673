@testable import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import Testing
import TestSupport

/// Issue 15: pages an ELF vmcore describes but does not store (`p_memsz`
/// past `p_filesz`) cost nothing per page. makedumpfile's
/// `exclude_nodata_pages()` takes them out of the 2nd bitmap, so no level
/// reads, checks or writes them; the struct-page walk takes a run of struct
/// pages the file does not store as one step.
@Suite struct UnstoredPagesTests {
    /// A one-PT_LOAD ET_CORE file: `filesz` bytes of 0x11 at `paddr`, zero-filled to `memsz`.
    static func zeroTailFile(in dir: String, paddr: UInt64, filesz: Int, memsz: UInt64) throws -> String {
        var b: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        func u16(_ v: UInt16) { b += withUnsafeBytes(of: v.littleEndian, Array.init) }
        func u32(_ v: UInt32) { b += withUnsafeBytes(of: v.littleEndian, Array.init) }
        func u64(_ v: UInt64) { b += withUnsafeBytes(of: v.littleEndian, Array.init) }
        u16(4); u16(62); u32(1); u64(0); u64(64); u64(0); u32(0); u16(64); u16(56); u16(1); u16(0); u16(0); u16(0)
        u32(1); u32(7); u64(120); u64(0); u64(paddr); u64(UInt64(filesz)); u64(memsz); u64(0)
        b += [UInt8](repeating: 0x11, count: filesz)
        let path = dir + "/zero-tail.vmcore"
        try Data(b).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A 220-byte file whose PT_LOAD is zero-filled to 64 GiB (2^24 pages,
    /// the most a small file may describe) is converted without touching
    /// those pages: at `-d 0` and `-d 1` only the page holding its 100 bytes
    /// of data is dumpable (1.7.7 and later, `roundup()`), or none (1.7.2,
    /// which clears the page holding the end of the data too). The report
    /// still counts all 2^24 pages, as makedumpfile's does; the estimate is
    /// the written size. Before, each page was read and zero-checked (over
    /// 120 s in a debug build).
    @Test func unstoredPagesAreNotDumped() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try Self.zeroTailFile(in: dir, paddr: 1 << 20, filesz: 100, memsz: 64 << 30)
        let image = GuestMemoryImage(input: try ELFInput(path: path))
        for (version, dumpable) in [(MakedumpfileVersion.v1_7_2, UInt64(0)), (.v1_7_7, 1), (.v1_7_8, 1)] {
            for level in [0, 1] {
                let w = try KdumpCompressedWriter(image: image, options: DumpOptions(dumpLevel: level, makedumpfile: version))
                #expect(w.filtered.dumpableCount == dumpable, "\(version.rawValue) -d \(level)")
                #expect(w.filtered.counts == ExclusionCounts())
                let estimate = try w.estimate()
                let written = try w.write(to: dir + "/out")
                #expect(written.totalPages == 1 << 24 && written.dumpablePages == dumpable)
                #expect(estimate.fileSize == written.fileSize)
                let size = try FileManager.default.attributesOfItem(atPath: dir + "/out")[.size] as? UInt64
                #expect(size == written.fileSize && written.fileSize < 5 << 20)
            }
        }
    }

    /// `FilterResult.clear` against a PFN-by-PFN reference, on seeded random
    /// dumpable ranges and overlapping cuts.
    @Test func clearingCutsEqualsPageByPage() {
        var rng = SplitMix64(seed: 0x15_0d)
        for _ in 0..<300 {
            var dumpable = FilterResult(), reference = Set<UInt64>()
            var a: UInt64 = rng.next() % 8
            for _ in 0..<(rng.next() % 6) {
                let n = 1 + rng.next() % 20
                dumpable.keep(a..<(a + n))
                for p in a..<(a + n) { reference.insert(p) }
                a += n + rng.next() % 10
            }
            let cuts = (0..<(rng.next() % 6)).map { _ -> Range<UInt64> in
                let s = rng.next() % (a + 10)
                return s..<(s + rng.next() % 30)
            }.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
            for c in cuts { for p in c { reference.remove(p) } }
            dumpable.clear(cuts)
            var expected = FilterResult()
            for p in reference.sorted() { expected.keep(p..<(p + 1)) }
            #expect(dumpable.dumpable == expected.dumpable, "cuts \(cuts)")
        }
    }

    /// The walk taking runs of unstored (all-zero) struct pages as one step
    /// equals the walk reading every struct page, on a vmcore whose PT_LOAD
    /// holding the memmap is cut short at a seeded random point (the struct
    /// pages past it read as zeros), with VMCOREINFO edited at random so that
    /// a zero struct page is kept, excluded a page at a time (a buddy or
    /// offline value of 0) or in blocks (an unaccepted value of 0, 1.7.8):
    /// the same 2nd bitmap and counts, or the same error.
    @Test func zeroStructPageRunsEqualThePageWalk() throws {
        let img = try smallGuestImage(memory: 256 << 20, kernel: .v6_16, workload: .touch(48 << 20))
        let k = try #require(img.kernel)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/vmcore"
        try ELFVmcore.write(img, to: path)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)).prefix(1 << 16))
        let memmap = k.memmapPFNs.lowerBound * 4096..<k.memmapPFNs.upperBound * 4096
        let phnum = Int(ELFInput.le16(original, 56)), phoff = Int(ELFInput.le64(original, 32))
        let holder = try #require((0..<phnum).first { i in
            let paddr = ELFInput.le64(original, phoff + i * 56 + 24), memsz = ELFInput.le64(original, phoff + i * 56 + 40)
            return ELFInput.le32(original, phoff + i * 56) == 1 && paddr <= memmap.lowerBound && memmap.upperBound <= paddr + memsz
        })
        let fileszAt = phoff + holder * 56 + 32, paddr = ELFInput.le64(original, phoff + holder * 56 + 24)
        // The direct-map page tables may lie above the memmap in the same PT_LOAD
        // (memblock allocates them first, top-down, and the first 1M and the EFI
        // boot services reservations decide which RAM range that is). A cut would
        // lose them and no walk could start, so the last PT_LOAD (the highest RAM,
        // which holds nothing a walk needs) is pointed at them instead: they stay
        // stored, in address order, and only the struct pages past the cut are unstored
        // (the holder's p_memsz then ends at the tables: PT_LOADs must not overlap).
        let tables = k.input.pageTablesArea
        let holderOffset = ELFInput.le64(original, phoff + holder * 56 + 8)
        let last = phnum - 1, lastAt = phoff + last * 56
        let tablesAboveMemmap = tables.start >= memmap.upperBound && tables.end <= paddr + ELFInput.le64(original, phoff + holder * 56 + 40)
        if tablesAboveMemmap {
            try #require(last != holder && ELFInput.le32(original, lastAt) == 1 && ELFInput.le64(original, lastAt + 24) >= tables.end)
        }
        var rng = SplitMix64(seed: 15)
        var outcomes: [String] = []
        for round in 0..<10 {
            var b = original
            // Cut the holder's data somewhere in the memmap, page-aligned or not.
            var cut = memmap.lowerBound + rng.next() % UInt64(memmap.count)
            if rng.next() % 2 == 0 { cut &= ~4095 }
            HostileInputTests.put64(&b, fileszAt, cut - paddr)
            if tablesAboveMemmap {
                // The holder now ends where the tables start (p_memsz > p_filesz still zero-fills the rest).
                HostileInputTests.put64(&b, phoff + holder * 56 + 40, tables.start - paddr)
                for (field, value) in [(8, holderOffset + (tables.start - paddr)), (16, ELFInput.le64(original, phoff + holder * 56 + 16) &+ (tables.start - paddr)),
                                       (24, tables.start), (32, tables.size), (40, tables.size)] {
                    HostileInputTests.put64(&b, lastAt + field, value)
                }
            }
            let edits = ["NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=", "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=", "NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)="]
            let edit = edits[Int(rng.next() % 4) % edits.count]
            if round % 4 != 0, let at = find(Array(edit.utf8), in: b) {
                var v = at + edit.utf8.count
                while b[v] != 0x0a { b[v] = 0x30; v += 1 }   // the value, same length, all '0': 0
            }
            let fd = open(path, O_WRONLY)
            _ = b.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
            close(fd)
            let image = GuestMemoryImage(input: try ELFInput(path: path))
            for v in [MakedumpfileVersion.v1_7_2, .v1_7_8] {
                for level in [2, 16, 31] {
                    let f = MakedumpfileFilter(version: v, dumpLevel: level, vmcoreinfo: try #require(image.vmcoreinfo))
                    let byRuns = Outcome { try image.walkInput(f) }, byPages = Outcome { try image.walkInput(f, byRuns: false) }
                    if case .result(let r) = byRuns { outcomes.append(r.counts.offline > 0 ? "offline" : "kept") }
                    #expect(byRuns == byPages, "round \(round), cut \(hex(cut)), \(edit), \(v.rawValue) -d \(level)")
                }
            }
        }
        // The rounds reach both cases: zero struct pages kept, and excluded
        // as offline pages (none of the guest's are).
        #expect(outcomes.contains("kept") && outcomes.contains("offline"), "\(outcomes)")
    }

    func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        return (0...(hay.count - needle.count)).first { hay[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

/// A walk's 2nd bitmap and counts, or its error's text.
enum Outcome: Equatable {
    case result(FilterResult), error(String)
    init(_ body: () throws -> FilterResult) {
        do { self = .result(try body()) } catch { self = .error("\(error)") }
    }
}

/// VMCOREINFO read a byte at a time (all-ASCII text, the dump's fast path)
/// gives the same numbers as `splitLines()` and `Character`s, on seeded
/// random texts with CRLF, lone CRs, empty values and malformed keys.
@Suite struct VmcoreinfoParsingTests {
    @Test func bytewiseEqualsCharacters() {
        let keys = ["SYMBOL(mem_section)", "NUMBER(PG_lru)", "LENGTH(mem_section)", "OFFSET(page.flags)", "SIZE(page)", "NUMBER(",
                    "SYMBOL()", "NUMBER()", "junk", "", "OFFSET(page._mapcount)", "CRASHTIME", "NUMBER(phys_base) "]
        let values = ["5", "-1", "0x1f", "ffffffff81000000", "", "12abc", "0x", "-268435456", "=7", " 3", "99999999999999999999"]
        let ends = ["\n", "\r\n", "\r", "\r\r\n", "\n\r", ""]
        var rng = SplitMix64(seed: 0xc0de)
        for _ in 0..<500 {
            var text = ""
            for _ in 0..<(rng.next() % 12) {
                if rng.next() % 5 == 0 { text += "\r" }
                text += keys[Int(rng.next() % UInt64(keys.count))]
                if rng.next() % 6 != 0 { text += "=" }
                text += values[Int(rng.next() % UInt64(values.count))]
                text += ends[Int(rng.next() % UInt64(ends.count))]
            }
            #expect(VmcoreinfoNumbers(text: text, bytewise: true) == VmcoreinfoNumbers(text: text, bytewise: false), "\(text.debugDescription)")
        }
    }

    /// Lines with other bytes than ASCII (a mutated note: combining marks
    /// that join a `=` or `)` into another `Character`, replaced invalid
    /// UTF-8, letters) beside ASCII ones: the line-by-line reading, bytes
    /// for ASCII lines and `Character`s for the others, gives what the
    /// whole text read by `Character`s gives.
    @Test func nonASCIILinesEqualCharacters() {
        let keys = ["SYMBOL(mem_section)", "NUMBER(PG_lru)", "LENGTH(mem_section)", "SIZE(page)", "NUMBER(PG_lru\u{301})",
                    "SYMBOL(mem_section)\u{301}", "\u{301}NUMBER(phys_base)", "OFFSET(pagé.flags)", "NUMBER(\u{FFFD})", "é", "\u{1F600}",
                    // a `=` joined into one Character with a mark after it, or a prepended mark before it
                    "NUMBER(a=\u{301}b)", "LENGTH(x\u{600}=y)"]
        let values = ["5", "\u{301}5", "0x1f\u{301}", "ffffffff81000000", "", "é", "-1", "\u{FFFD}"]
        let seps = ["=", "=\u{301}", "\u{301}=", "="]
        let ends = ["\n", "\r\n", "\r", "\r\u{301}\n", "\n\u{301}", ""]
        var rng = SplitMix64(seed: 0xc0de15)
        for _ in 0..<500 {
            var bytes: [UInt8] = []
            for _ in 0..<(rng.next() % 12) {
                if rng.next() % 5 == 0 { bytes += [0x0d] }
                bytes += Array(keys[Int(rng.next() % UInt64(keys.count))].utf8)
                if rng.next() % 6 != 0 { bytes += Array(seps[Int(rng.next() % UInt64(seps.count))].utf8) }
                if rng.next() % 7 == 0 { bytes += [0xff] }   // invalid UTF-8, read as U+FFFD
                bytes += Array(values[Int(rng.next() % UInt64(values.count))].utf8)
                bytes += Array(ends[Int(rng.next() % UInt64(ends.count))].utf8)
            }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(VmcoreinfoNumbers(text: text, bytewise: true) == VmcoreinfoNumbers(text: text, bytewise: false), "\(text.debugDescription)")
        }
    }
}
