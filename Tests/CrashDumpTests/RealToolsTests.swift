import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// cocomem's files checked by the real tools, installed by scripts/test.sh
/// from Debian: makedumpfile 1.7.2, python3-libkdumpfile 0.5.1, crash.
@Suite(.serialized) struct RealToolsTests {
    static let makedumpfile = ["/usr/sbin/makedumpfile", "/usr/bin/makedumpfile"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/makedumpfile"
    static let python = "/usr/bin/python3"
    static let crash = "/usr/bin/crash"

    func requireTool(_ path: String) -> Bool {
        if FileManager.default.isExecutableFile(atPath: path) { return true }
        Issue.record("\(path) is missing: run scripts/test.sh, which installs it")
        return false
    }

    /// makedumpfile 1.7.2 on cocomem's ELF vmcore, walking the generated
    /// page tables, mem_section and struct pages through VMCOREINFO, writes
    /// a file byte-identical to cocomem's own output with the 1.7.2 filter,
    /// at every level and with zlib, lzo and none; on a 6.12 guest (unaccepted
    /// blocks kept as zero pages) and a 6.16 guest (mostly buddy-free).
    @Test(arguments: [(1, DumpCompression.zlib, KernelVersion.v6_12), (0, .none, .v6_12), (1, .none, .v6_12), (31, .zlib, .v6_12),
                      (31, .lzo, .v6_12), (1, .lzo, .v6_16), (31, .zlib, .v6_16), (11, .zlib, .v6_16), (16, .none, .v6_16)])
    func makedumpfileWritesTheSameBytes(level: Int, compression: DumpCompression, kernel: KernelVersion) throws {
        guard requireTool(Self.makedumpfile) else { return }
        let img = try smallGuestImage(memory: 512 << 20, kernel: kernel, workload: .touch(48 << 20))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: level, compression: compression, makedumpfile: .v1_7_2)).write(to: dir + "/cocomem")
        var args = ["-d", String(level)]
        if compression != .none { args.append(compression.flag) }
        let (rc, out) = try run(Self.makedumpfile, args + [dir + "/vmcore", dir + "/makedumpfile"])
        #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
        let mine = try Data(contentsOf: URL(fileURLWithPath: dir + "/cocomem"))
        let theirs = try Data(contentsOf: URL(fileURLWithPath: dir + "/makedumpfile"))
        #expect(mine.count == theirs.count)
        #expect(mine == theirs)
    }

    /// 2 MiB folios (THP anonymous memory, a hugetlb pool): makedumpfile
    /// 1.7.2 walks their heads and tails and writes the same bytes as
    /// cocomem's 1.7.2 profile, kdump-compressed and `-E`.
    @Test(arguments: [(Workload.touch(48 << 20), true, 31), (.touch(48 << 20), true, 8), (.hugetlb(32 << 20), false, 31)])
    func hugePagesMatchMakedumpfile(workload: Workload, thp: Bool, level: Int) throws {
        guard requireTool(Self.makedumpfile) else { return }
        let img = try smallGuestImage(memory: 512 << 20, kernel: .v6_16, workload: workload, thp: thp)
        // The guest really has 2 MiB folios for the tools to walk.
        #expect(img.kernel!.roles.measure(in: Range(start: .lowest, count: img.maxMapnr)) { $0 == .transparentHuge || $0 == .hugetlb } >= 8 * 512)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: level, compression: .zlib, makedumpfile: .v1_7_2)).write(to: dir + "/cocomem")
        try ELFDumpWriter(image: img, options: DumpOptions(dumpLevel: level, compression: .none, makedumpfile: .v1_7_2)).write(to: dir + "/cocomem.elf")
        for (args, mine) in [(["-c"], "cocomem"), (["-E"], "cocomem.elf")] {
            let (rc, out) = try run(Self.makedumpfile, args + ["-d", String(level), dir + "/vmcore", dir + "/theirs"])
            #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + mine)) == (try Data(contentsOf: URL(fileURLWithPath: dir + "/theirs"))), "\(args)")
            try? FileManager.default.removeItem(atPath: dir + "/theirs")
        }
    }

    /// Linux 7.1 names the tail field `page.compound_info` (d50569612c29).
    /// makedumpfile 1.7.2, like every release before f50c015, finds no
    /// `OFFSET(page.compound_head)`, so no page is a tail to it and its
    /// chain runs on every tail: it drops the first tail of each free
    /// hugetlb folio (its head, not detected as hugetlb by 1.7.2, stays) and
    /// of each slab folio at bit 8. It writes the same bytes as cocomem's
    /// 1.7.2 profile on the 7.1 guest, and they differ from what it would
    /// write if the field kept its old name (so the case is not vacuous).
    @Test(arguments: [(Workload.hugetlb(32 << 20), UInt64(0), 31), (.hugetlb(32 << 20), 0, 8), (.pageCache(24 << 20), 2, 31)])
    func makedumpfileOn71MatchesItsProfile(workload: Workload, slabOrder: UInt64, level: Int) throws {
        guard requireTool(Self.makedumpfile) else { return }
        let img = try smallGuestImage(memory: 512 << 20, kernel: KernelVersion(KernelRelease(7, 1)), workload: workload, slabOrder: slabOrder)
        let text = try #require(img.vmcoreinfo)
        let renamed = MakedumpfileFilter(version: .v1_7_2, dumpLevel: level,
                                         vmcoreinfo: text.replacingOccurrences(of: "OFFSET(page.compound_info)", with: "OFFSET(page.compound_head)"))
        let now = img.filter(MakedumpfileFilter(version: .v1_7_2, dumpLevel: level, vmcoreinfo: text))
        #expect(now.dumpableCount < img.filter(renamed).dumpableCount)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: level, compression: .zlib, makedumpfile: .v1_7_2)).write(to: dir + "/cocomem")
        let (rc, out) = try run(Self.makedumpfile, ["-c", "-d", String(level), dir + "/vmcore", dir + "/theirs"])
        #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/cocomem")) == (try Data(contentsOf: URL(fileURLWithPath: dir + "/theirs"))))
    }

    /// Converting an ELF vmcore (`cocomem dump --input`) gives the file
    /// makedumpfile 1.7.2 writes from the same ELF, byte for byte, at the
    /// levels conversion supports, and the file cocomem writes from the
    /// model; whatever the thread count.
    /// Levels above 1 walk the struct pages in the file (mem_section and
    /// the page tables from VMCOREINFO), as makedumpfile does.
    @Test(arguments: [(1, DumpCompression.zlib), (1, .lzo), (0, .snappy), (31, .zlib), (8, .lzo)])
    func convertingAnELFGivesMakedumpfilesBytes(level: Int, compression: DumpCompression) throws {
        guard requireTool(Self.makedumpfile) else { return }
        let img = try smallGuestImage(memory: 256 << 20, kernel: .v6_16, workload: .touch(48 << 20))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let input = GuestMemoryImage(input: try ELFInput(path: dir + "/vmcore"))
        #expect(input.cpus == img.cpus && input.vmcoreinfo == img.vmcoreinfo && input.loads == img.loads)
        for threads in [1, 3] {
            let o = DumpOptions(dumpLevel: level, compression: compression, makedumpfile: .v1_7_2, threads: threads)
            try KdumpCompressedWriter(image: input, options: o).write(to: dir + "/converted\(threads)")
        }
        try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: level, compression: compression, makedumpfile: .v1_7_2)).write(to: dir + "/model")
        let converted = try Data(contentsOf: URL(fileURLWithPath: dir + "/converted1"))
        #expect(converted == (try Data(contentsOf: URL(fileURLWithPath: dir + "/converted3"))))
        #expect(converted == (try Data(contentsOf: URL(fileURLWithPath: dir + "/model"))))
        if compression != .snappy {  // Debian's makedumpfile 1.7.2 is built without snappy
            var args = ["-d", String(level)]
            if compression != .none { args.append(compression.flag) }
            let (rc, out) = try run(Self.makedumpfile, args + [dir + "/vmcore", dir + "/makedumpfile"])
            #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
            #expect(converted == (try Data(contentsOf: URL(fileURLWithPath: dir + "/makedumpfile"))))
        }
    }

    /// Re-filtering: an `-E` dump, whose PT_LOADs leave their excluded runs
    /// out of `p_filesz`, converted again by makedumpfile 1.7.2 and by
    /// `cocomem dump --input` gives the same bytes, kdump-compressed and
    /// `-E`, at levels that keep what the first pass left out:
    /// `exclude_nodata_pages()` takes the unstored pages out of the 2nd
    /// bitmap, uncounted (before, cocomem dumped them as zero pages).
    @Test(arguments: [0, 1, 31])
    func refilteringAnELFDumpGivesMakedumpfilesBytes(level: Int) throws {
        guard requireTool(Self.makedumpfile) else { return }
        let img = try smallGuestImage(memory: 512 << 20, kernel: .v6_16, workload: .touch(48 << 20))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFDumpWriter(image: img, options: DumpOptions(dumpLevel: 31, compression: .none, makedumpfile: .v1_7_2)).write(to: dir + "/first.elf")
        let first = try ELFInput(path: dir + "/first.elf")
        #expect(first.segments.contains { $0.filesz < $0.memsz }, "the first pass leaves runs out of the file")
        let input = GuestMemoryImage(input: first)
        for (flags, compression) in [(["-c"], DumpCompression.zlib), (["-E"], .none)] {
            let options = DumpOptions(dumpLevel: level, compression: compression, makedumpfile: .v1_7_2, threads: 2)
            if compression == .none {
                try ELFDumpWriter(image: input, options: options).write(to: dir + "/cocomem")
            } else {
                try KdumpCompressedWriter(image: input, options: options).write(to: dir + "/cocomem")
            }
            let (rc, out) = try run(Self.makedumpfile, flags + ["-d", String(level), dir + "/first.elf", dir + "/makedumpfile"])
            #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/cocomem")) == Data(contentsOf: URL(fileURLWithPath: dir + "/makedumpfile")),
                    "\(flags) -d \(level)")
            try? FileManager.default.removeItem(atPath: dir + "/makedumpfile")
        }
    }

    /// `-E`: makedumpfile 1.7.2 on cocomem's ELF vmcore writes an ELF dump
    /// byte-identical to cocomem's (PT_LOADs cut around runs of 256 or more
    /// excluded pages, zero pages taken out first), and converting the ELF
    /// file with `--input` gives the same bytes. The layout's size is the
    /// written size.
    @Test(arguments: [(31, KernelVersion.v6_12), (0, .v6_12), (1, .v6_16), (16, .v6_16)])
    func elfDumpIsMakedumpfilesBytes(level: Int, kernel: KernelVersion) throws {
        guard requireTool(Self.makedumpfile) else { return }
        let img = try smallGuestImage(memory: 512 << 20, kernel: kernel, workload: .touch(48 << 20))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let options = DumpOptions(dumpLevel: level, compression: .none, makedumpfile: .v1_7_2, threads: 2)
        let writer = try ELFDumpWriter(image: img, options: options)
        let report = try writer.write(to: dir + "/cocomem")
        let (rc, out) = try run(Self.makedumpfile, ["-E", "-d", String(level), dir + "/vmcore", dir + "/makedumpfile"])
        #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
        let mine = try Data(contentsOf: URL(fileURLWithPath: dir + "/cocomem"))
        #expect(mine == (try Data(contentsOf: URL(fileURLWithPath: dir + "/makedumpfile"))))
        #expect(UInt64(mine.count) == report.fileSize && writer.estimate() == report)
        let input = GuestMemoryImage(input: try ELFInput(path: dir + "/vmcore"))
        try ELFDumpWriter(image: input, options: options).write(to: dir + "/converted")
        #expect(mine == (try Data(contentsOf: URL(fileURLWithPath: dir + "/converted"))))
    }

    /// libkdumpfile opens the three files (kdump-compressed, the ELF vmcore, the `-E` dump); every page it reads equals the guest's
    /// page; PFNs outside the PT_LOADs raise its no-data error in the kdump
    /// file (in the ELF file it reads holes as zeros).
    @Test func libkdumpfileReadsBackEveryPage() throws {
        guard requireTool(Self.python) else { return }
        let img = try smallGuestImage(memory: 512 << 20, workload: .touch(48 << 20))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let w = try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 31, compression: .zlib))
        try w.write(to: dir + "/kdump")
        try ELFDumpWriter(image: img, options: DumpOptions(dumpLevel: 31, compression: .none)).write(to: dir + "/elfdump")
        // Expected content: a digest per sampled PFN, from the image itself;
        // PFNs the filter excluded must raise no-data in the kdump file.
        var expected = ""
        var pfn: UInt64 = 0
        var inRAM = Set<UInt64>()
        for l in img.loads { for p in stride(from: l.start >> 12, to: l.end >> 12, by: 1) where p % 61 == 0 { inRAM.insert(p) } }
        let kept = w.filtered.dumpable
        var excludedSeen = 0
        while pfn < img.maxMapnr {
            let bytes = inRAM.contains(pfn) ? img.page(GuestFrameNumber(pfn)).reduce(into: UInt64(1469598103934665603)) { $0 = ($0 ^ UInt64($1)) &* 1099511628211 } : 0
            let dumpable = kept.contains { $0.contains(pfn) }
            if inRAM.contains(pfn) && !dumpable { excludedSeen += 1 }
            expected += "\(pfn) \(inRAM.contains(pfn) ? String(bytes) : "nodata") \(dumpable ? "kept" : "excluded")\n"
            pfn += 61
        }
        #expect(excludedSeen > 100)
        try expected.write(toFile: dir + "/expected", atomically: true, encoding: .utf8)
        let script = """
        import kdumpfile, sys
        def fnv(b):
            h = 1469598103934665603
            for x in b: h = ((h ^ x) * 1099511628211) & 0xffffffffffffffff
            return h
        bad = 0
        zero = str(fnv(bytes(4096)))
        for path, fmt in ((sys.argv[1], 'diskdump'), (sys.argv[2], 'elf'), (sys.argv[4], 'elfdump')):
            k = kdumpfile.kdumpfile(path)
            assert k.attr['file.format'] == ('elf' if fmt == 'elfdump' else fmt), k.attr['file.format']
            for line in open(sys.argv[3]):
                pfn, want, kept = line.split()
                # makedumpfile -E: every page the filter kept reads back; an excluded one may read
                # as its bytes (runs under 256 pages), as zeros or as no data.
                if fmt == 'elfdump' and kept == 'excluded': continue
                if fmt == 'diskdump' and kept == 'excluded': want = 'nodata'
                if fmt == 'elf' and want == 'nodata' and kept == 'excluded': continue
                try:
                    got = str(fnv(k.read(kdumpfile.KDUMP_MACHPHYSADDR, int(pfn) * 4096, 4096)))
                except kdumpfile.exceptions.NoDataException:
                    got = 'nodata'
                # libkdumpfile 0.5.1 reads holes between an ELF's PT_LOADs as zeros.
                if fmt == 'elf' and want == 'nodata' and got == zero:
                    continue
                # -E leaves zero pages out first (they read as no data where cut out).
                if fmt == 'elfdump' and want == zero and got == 'nodata':
                    continue
                if got != want:
                    bad += 1
                    if bad < 5: print('mismatch', fmt, pfn, got, want)
        print('bad', bad)
        """
        let (rc, out) = try run(Self.python, ["-c", script, dir + "/kdump", dir + "/vmcore", dir + "/expected", dir + "/elfdump"])
        #expect(rc == 0, "\(out.suffix(800))")
        #expect(out.contains("bad 0"), "\(out.suffix(800))")
    }

    /// crash reads the release from VMCOREINFO in both formats.
    @Test func crashPrintsTheReleaseFromVmcoreinfo() throws {
        guard requireTool(Self.crash) else { return }
        let img = try smallGuestImage(memory: 512 << 20, kernel: .v6_16)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 1, compression: .zlib)).write(to: dir + "/kdump")
        try ELFDumpWriter(image: img, options: DumpOptions(dumpLevel: 31, compression: .none)).write(to: dir + "/elfdump")
        for f in ["vmcore", "kdump", "elfdump"] {
            let (_, out) = try run(Self.crash, ["--osrelease", dir + "/" + f])
            #expect(out.contains("6.16.0-cocomem"), "\(f): \(out)")
        }
    }
}
