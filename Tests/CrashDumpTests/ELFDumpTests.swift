@testable import CrashDump
import MemoryModel
import TestSupport
import Testing

@Suite struct ELFDumpTests {
    /// `write_elf_pages_cyclic()` page by page, as makedumpfile walks one
    /// PT_LOAD: the reference the run-at-a-time split is held to.
    static func referenceSplit(_ phdr: ELFProgramHeader, dumpable: (UInt64) -> Bool, offset: inout UInt64)
        -> (segments: [ELFProgramHeader], elfExcluded: UInt64) {
        let page: UInt64 = 4096
        var pfnStart = phdr.paddr / page, pfnEnd = (phdr.paddr + phdr.memsz) / page
        let fracHead = page - phdr.paddr % page, fracTail = (phdr.paddr + phdr.memsz) % page
        var memsz: UInt64 = 0, filesz: UInt64 = 0, excluded: UInt64 = 0, elfExcluded: UInt64 = 0
        if fracHead != 0 && fracHead != page { memsz = fracHead; filesz = fracHead; pfnStart += 1 }
        if fracTail != 0 { pfnEnd += 1 }
        var load = phdr, out: [ELFProgramHeader] = []
        var pfn = pfnStart
        while pfn < pfnEnd {
            defer { pfn += 1 }
            let last = pfn == pfnEnd - 1 && fracTail != 0
            if !dumpable(pfn) { excluded += 1; memsz += last ? fracTail : page; continue }
            if excluded == 0 {
                memsz += last ? fracTail : page; filesz += last ? fracTail : page
                continue
            } else if excluded < 256 {
                memsz += last ? fracTail : page; filesz += page * excluded + (last ? fracTail : page)
                excluded = 0
                continue
            }
            elfExcluded += excluded
            load.memsz = memsz; load.filesz = filesz
            load.offset = filesz != 0 ? offset : ELFDumpWriter.noDataOffset
            out.append(load)
            load.paddr += load.memsz; load.vaddr &+= load.memsz
            offset += load.filesz
            excluded = 0; memsz = page; filesz = page
        }
        elfExcluded += excluded
        load.memsz = memsz; load.filesz = filesz; load.offset = offset
        out.append(load)
        offset += filesz
        return (out, elfExcluded)
    }

    /// The run-at-a-time split equals the page-by-page walk on random
    /// PT_LOADs (page-aligned or not) and random dumpable runs whose lengths
    /// cluster around the 256-page threshold.
    @Test func splitEqualsPageByPageWalk() {
        var rng = SplitMix64(seed: 0xe1f)
        for trial in 0..<300 {
            let base = (rng.next() % 4096) * 4096 + (trial % 3 == 0 ? rng.next() % 4096 : 0)
            let memsz = (rng.next() % 6000 + 1) * 4096 + (trial % 5 == 0 ? rng.next() % 4096 : 0)
            let phdr = ELFProgramHeader(type: ELFProgramHeader.load, flags: 7, offset: 0x2000, vaddr: 0xffff_8880_0000_0000 &+ base,
                                        paddr: base, filesz: memsz, memsz: memsz, align: 0)
            var kept: [Range<UInt64>] = [], pfn = base / 4096 - min(base / 4096, rng.next() % 300), isKept = rng.next() % 2 == 0
            let endPFN = (base + memsz) / 4096 + 300
            while pfn < endPFN {
                let choices: [UInt64] = [1, 2, 255, 256, 257, 300, 700]
                let n = rng.next() % 3 == 0 ? choices[Int(rng.next() % UInt64(choices.count))] : rng.next() % 400 + 1
                if isKept { kept.append(pfn..<(pfn + n)) }
                pfn += n; isKept.toggle()
            }
            var o1: UInt64 = 0, o2: UInt64 = 0
            let fast = ELFDumpWriter.splitLoad(phdr, kept: kept, offset: &o1)
            let slow = Self.referenceSplit(phdr, dumpable: { p in kept.contains { $0.contains(p) } }, offset: &o2)
            #expect(fast.segments == slow.segments, "trial \(trial)")
            #expect(fast.elfExcluded == slow.elfExcluded && o1 == o2, "trial \(trial)")
        }
    }

    /// Past PN_XNUM program headers, the ELF header says PN_XNUM and points
    /// at a section header 0 whose `sh_info` holds the real count.
    @Test func extendedNumberingPastPNXNum() throws {
        let img = try smallGuestImage(memory: 256 << 20)
        let w = try ELFDumpWriter(image: img, options: DumpOptions(dumpLevel: 0, compression: .none))
        var l = w.layout()
        #expect(!l.extendedNumbering)
        #expect(w.elfHeader(l)[56] == UInt8(l.programHeaders.count))
        l.programHeaders = Array(repeating: l.programHeaders[1], count: 70_000)
        #expect(l.extendedNumbering)
        let h = w.elfHeader(l), s = w.sectionHeaderZero(l)
        func u(_ b: [UInt8], _ o: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
        #expect(u(h, 56, 2) == 0xffff && u(h, 40, 8) == 64 + 56 * 70_000 && u(h, 58, 2) == 64 && u(h, 60, 2) == 1)
        #expect(s.count == 64 && u(s, 32, 8) == 1 && u(s, 44, 4) == 70_000)
    }
}
