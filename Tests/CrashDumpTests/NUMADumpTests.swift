@testable import CrashDump
import Firmware
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// Issue 16 §3 in dumps: the vmcore of a two-node guest. Expectations come
/// from the kernel's rules (cited) and QEMU's layout, not from the model's
/// helpers: each node's struct pages in a buffer on that node
/// (`sparse_init_nid()`), the node in `page->flags` (`set_page_node()`,
/// NODES_PGSHIFT 54), each node's pages in its own memory; and makedumpfile
/// and libkdumpfile read the result.
@Suite(.serialized) struct NUMADumpTests {
    static let G: UInt64 = 1 << 30

    /// 4 GiB on q35: [0, 2 GiB) below the PCI hole and [4 GiB, 6 GiB) above
    /// it; QEMU's equal nodes put node 0 on the first and node 1 on the
    /// second; a socket per node puts vCPU 1 on node 1.
    func twoNodes(_ workload: Workload = .pageCache(256 << 20)) throws -> (BootResult, GuestMemoryImage) {
        let r = try bootResult { s in
            s.memory = 4 * Self.G; s.vcpus = 2; s.sockets = 2; s.numaNodeSizes = [2 * Self.G, 2 * Self.G]
            s.firmware = .tdvf2022; s.kernel.version = .v6_16; s.kernel.crashKernelBytes = 64 << 20
            s.workload = workload; s.bootAllocationBytes = 32 << 20; s.record = false
        }
        return (r, try CaptureView.image(from: r, seed: 7))
    }

    /// Each node's struct pages are in that node's memmap buffer (2 MiB per
    /// 128 MiB section, 16 sections a node), and a struct page carries its
    /// page's node and zone: node 1's pages above 4 GiB are node 1, Normal.
    @Test func memmapAndPageFlagsPerNode() throws {
        let (r, img) = try twoNodes()
        let k = try #require(img.kernel)
        let reserved = r.kernel!.reservations.filter { $0.kind == .memmap }.map { $0.range.lowerAddress.frame.value..<$0.range.upperAddress.frame.value }
        #expect(reserved.count == 2)
        #expect(k.memmapPFNRanges == reserved.map { $0.lowerBound..<($0.lowerBound + 16 * 512) })
        #expect(k.memmapPFNRanges[0].upperBound <= (2 * Self.G) >> 12)
        #expect(k.memmapPFNRanges[1].lowerBound >= (4 * Self.G) >> 12)
        for (pfn, node, zone) in [((1 * Self.G) >> 12, UInt64(0), UInt64(1)), ((5 * Self.G) >> 12, 1, 2), ((6 * Self.G) >> 12 - 1, 1, 2), (4096, 0, 1)] {
            let flags = k.structPage(pfn).flags
            #expect(flags >> 54 == node, "pfn \(pfn)")
            #expect((flags >> 51) & 7 == zone, "pfn \(pfn)")
        }
        // The vmemmap maps section s's 2 MiB of struct pages from its node's buffer.
        let memMap = try FileMemMapProbe(img)
        #expect(memMap.physical(ofStructPage: (5 * Self.G) >> 12) == (k.memmapPFNRanges[1].lowerBound + 8 * 512) << 12)
        #expect(memMap.physical(ofStructPage: (1 * Self.G) >> 12) == (k.memmapPFNRanges[0].lowerBound + 8 * 512) << 12)
    }

    /// The allocator's pages lie in the memory of the node whose zones gave
    /// them: each node's page cache equals what its zones handed out.
    @Test func pagesAreLaidOutByNode() throws {
        let (r, img) = try twoNodes()
        let k = try #require(r.kernel)
        for n in 0..<2 {
            let mine = k.numa.memory.filter { $0.node == n }.map(\.range)
            var cache: UInt64 = 0
            for m in mine {
                img.classes.forEachRun(in: m.lowerAddress.frame..<m.upperAddress.frame) { f, c in if c == .pageCache { cache += f.length } }
            }
            #expect(cache == k.nodeUsage[n].pageCache, "node \(n)")
            #expect(cache > 0, "node \(n)")
        }
    }

    /// makedumpfile's walk over the two buffers: the per-range filter equals
    /// the page-by-page one, and the walk through an ELF file's page tables
    /// equals both.
    @Test func theFilterWalksBothNodes() throws {
        let (_, img) = try twoNodes(.touch(256 << 20))
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let file = GuestMemoryImage(input: try ELFInput(path: dir + "/vmcore"))
        for v in [MakedumpfileVersion.v1_7_2, .v1_7_8] {
            let f = MakedumpfileFilter(version: v, dumpLevel: 31, vmcoreinfo: img.vmcoreinfo!)
            let model = img.filter(f)
            #expect(model == img.filterStepByStep(f), "\(v.rawValue)")
            #expect(try file.filterInput(f, version: v) == model, "\(v.rawValue)")
        }
    }

    /// makedumpfile 1.7.2 converts the two-node guest's ELF vmcore to the
    /// bytes cocomem writes, at `-d 31` with lzo and `-d 1` with zlib; libkdumpfile
    /// reads node 1's pages back from the kdump file.
    @Test func makedumpfileAndLibkdumpfileReadTheTwoNodeVmcore() throws {
        let makedumpfile = RealToolsTests.makedumpfile
        guard FileManager.default.isExecutableFile(atPath: makedumpfile) else {
            Issue.record("\(makedumpfile) is missing: run scripts/test.sh, which installs it"); return
        }
        let (_, img) = try twoNodes()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        for (level, compression) in [(31, DumpCompression.lzo), (1, .zlib)] {
            try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: level, compression: compression, makedumpfile: .v1_7_2)).write(to: dir + "/cocomem")
            let (rc, out) = try run(makedumpfile, ["-d", String(level), compression.flag, dir + "/vmcore", dir + "/theirs"])
            #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/cocomem")) == Data(contentsOf: URL(fileURLWithPath: dir + "/theirs")), "-d \(level) \(compression.flag)")
            try? FileManager.default.removeItem(atPath: dir + "/theirs")
        }
        guard FileManager.default.isExecutableFile(atPath: RealToolsTests.python) else { return }
        try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 1, compression: .zlib)).write(to: dir + "/kdump")
        // Node 1's first pages, a page cache page on each node and a struct page of node 1's buffer.
        let k = img.kernel!
        var pfns: [UInt64] = [(4 * Self.G) >> 12, (4 * Self.G) >> 12 + 1, k.memmapPFNRanges[1].lowerBound + 8 * 512]
        img.forEachRun { f, c in if c == .pageCache, pfns.count < 5, f.lowerBound.value >= (pfns.count == 3 ? 0 : (4 * Self.G) >> 12) { pfns.append(f.lowerBound.value) } }
        var expected = ""
        for p in pfns { expected += "\(p) \(img.page(GuestFrameNumber(p)).map { String(format: "%02x", $0) }.joined())\n" }
        try expected.write(toFile: dir + "/expected", atomically: true, encoding: .utf8)
        let script = """
        import kdumpfile, sys
        k = kdumpfile.kdumpfile(sys.argv[1])
        bad = 0
        for line in open(sys.argv[2]):
            pfn, want = line.split()
            got = k.read(kdumpfile.KDUMP_MACHPHYSADDR, int(pfn) * 4096, 4096).hex()
            if got != want:
                bad += 1
                print('mismatch', pfn)
        print('bad', bad)
        """
        let (rc, out) = try run(RealToolsTests.python, ["-c", script, dir + "/kdump", dir + "/expected"])
        #expect(rc == 0, "\(out.suffix(800))")
        #expect(out.contains("bad 0"), "\(out.suffix(800))")
        #expect(pfns.count == 5)
    }
}

extension NUMADumpTests {
    /// The VMCOREINFO keys of a key prefix, parsed as the tools do (`read_vmcoreinfo_symbol()`: hex; others decimal).
    static func vmcoreinfo(_ text: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            out[kv[0]] = kv[0].hasPrefix("SYMBOL(") ? UInt64(kv[1], radix: 16) : UInt64(kv[1])
        }
        return out
    }

    /// What a CONFIG_NUMA x86 kernel writes (`crash_save_vmcoreinfo_init()`,
    /// `arch_crash_save_vmcoreinfo()`): `node_online_map` with one bit per
    /// online node, `node_data[]` pointing at each node's `pglist_data`, whose
    /// `node_id`, `node_start_pfn`, spans and `nr_zones` are the node's as
    /// QEMU laid it out. Read through the vmcore's own page tables as
    /// makedumpfile's `readmem(VADDR, ...)` does. Expected figures from the
    /// layout: node 0 starts at 4 KiB (e820's first page is reserved,
    /// `trim_bios_range()`) and ends where DMA32 does, its present pages and
    /// zone spans /proc/zoneinfo's; node 1 is [4 GiB, 6 GiB), all Normal.
    @Test func vmcoreinfoNamesTheNodesAndTheirPglistData() throws {
        let (r, img) = try twoNodes()
        // Node 0's zones as /proc/zoneinfo prints them (its RAM has the firmware's holes).
        let zi = try #require(r.kernel).zoneinfo.filter { $0.node == 0 }
        #expect(zi.count == 5)
        let info = Self.vmcoreinfo(try #require(img.vmcoreinfo))
        let probe = try FileMemMapProbe(img)
        func read(_ va: UInt64, _ n: Int) throws -> [UInt8] {
            let pa = try #require(probe.memMap.translate(va), "\(String(va, radix: 16)) is not mapped")
            let page = img.page(GuestFrameNumber(pa >> 12))
            return Array(page[Int(pa & 0xfff)..<Int(pa & 0xfff) + n])
        }
        func u64(_ b: [UInt8]) -> UInt64 { b.prefix(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func u32(_ b: [UInt8]) -> UInt64 { b.prefix(4).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        #expect(info["LENGTH(node_data)"] == 1024 && info["SIZE(nodemask_t)"] == 128)
        let mask = try read(try #require(info["SYMBOL(node_online_map)"]), 128)
        #expect(mask[0] == 0b11 && mask.dropFirst().allSatisfy { $0 == 0 }, "two nodes online")
        let nodeData = try #require(info["SYMBOL(node_data)"])
        func off(_ k: String) throws -> UInt64 { try #require(info["OFFSET(pglist_data.\(k))"]) }
        let zoneSize = try #require(info["SIZE(zone)"]), spannedOff = try #require(info["OFFSET(zone.spanned_pages)"])
        let node0Present = zi.reduce(UInt64(0)) { $0 + $1.present }
        let expected: [(start: UInt64, spanned: UInt64, present: UInt64, zones: [UInt64], nrZones: UInt64)] = [
            (1, 4096 + zi[1].spanned - 1, node0Present, zi.map(\.spanned), 2),
            ((4 * Self.G) >> 12, (2 * Self.G) >> 12, (2 * Self.G) >> 12, [0, 0, (2 * Self.G) >> 12, 0, 0], 3),
        ]
        for (n, e) in expected.enumerated() {
            let pgdat = u64(try read(nodeData + UInt64(n) * 8, 8))
            #expect(pgdat >= X86Layout.pageOffset, "node_data[\(n)] is a direct-map address")
            #expect(u32(try read(pgdat + off("node_id"), 4)) == UInt64(n))
            #expect(u64(try read(pgdat + off("node_start_pfn"), 8)) == e.start, "node \(n) start")
            #expect(u64(try read(pgdat + off("node_spanned_pages"), 8)) == e.spanned, "node \(n) spanned")
            #expect(u64(try read(pgdat + off("node_spanned_pages") - 8, 8)) == e.present, "node \(n) present")
            #expect(u32(try read(pgdat + off("nr_zones"), 4)) == e.nrZones, "node \(n) nr_zones")
            for (z, spanned) in e.zones.enumerated() {
                #expect(u64(try read(pgdat + off("node_zones") + UInt64(z) * zoneSize + spannedOff, 8)) == spanned, "node \(n) zone \(z)")
            }
        }
        #expect(u64(try read(nodeData + 16, 8)) == 0, "node_data[2] is NULL")
    }

    /// A one-node guest (a NUMA kernel on a machine without SRAT: one dummy
    /// node, `dummy_numa_init()`) has node 0 online and its pglist_data.
    @Test func aOneNodeGuestHasNodeZeroOnline() throws {
        let r = try bootResult { s in
            s.memory = 1 << 30; s.firmware = .tdvf2022; s.kernel.version = .v6_16; s.kernel.crashKernelBytes = 64 << 20
            s.bootAllocationBytes = 32 << 20; s.record = false
        }
        let img = try CaptureView.image(from: r, seed: 7)
        let info = Self.vmcoreinfo(try #require(img.vmcoreinfo))
        let probe = try FileMemMapProbe(img)
        let symbol = try #require(info["SYMBOL(node_online_map)"])
        let pa = try #require(probe.memMap.translate(symbol))
        #expect(img.page(GuestFrameNumber(pa >> 12))[Int(pa & 0xfff)] == 1)
        #expect(info["SYMBOL(node_data)"] != nil && info["OFFSET(pglist_data.node_id)"] != nil)
    }

    /// makedumpfile counts the nodes from `node_online_map`
    /// (`get_numnodes()` → `get_nodes_online()`, printed with -D as "num of
    /// NODEs"), and libkdumpfile reads the mask and node 1's `pglist_data`
    /// through the vmcore's page tables.
    @Test func makedumpfileAndLibkdumpfileCountTheNodes() throws {
        let makedumpfile = RealToolsTests.makedumpfile
        guard FileManager.default.isExecutableFile(atPath: makedumpfile) else {
            Issue.record("\(makedumpfile) is missing: run scripts/test.sh, which installs it"); return
        }
        let (_, img) = try twoNodes()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let (rc, out) = try run(makedumpfile, ["-D", "-d", "31", "-l", dir + "/vmcore", dir + "/theirs"])
        #expect(rc == 0, "makedumpfile failed: \(out.suffix(500))")
        #expect(out.contains("num of NODEs : 2"), "\(out.prefix(3000))")
        guard FileManager.default.isExecutableFile(atPath: RealToolsTests.python) else { return }
        let script = """
        import kdumpfile, sys
        k = kdumpfile.kdumpfile(sys.argv[1])
        k.attr['addrxlat.ostype'] = 'linux'
        raw = bytes(k.attr['linux.vmcoreinfo.raw']).decode()
        info = dict(l.split('=', 1) for l in raw.splitlines() if '=' in l)
        mask = k.read(kdumpfile.KDUMP_KVADDR, int(info['SYMBOL(node_online_map)'], 16), 128)
        print('online', bin(int.from_bytes(mask, 'little')).count('1'))
        pgdat = int.from_bytes(k.read(kdumpfile.KDUMP_KVADDR, int(info['SYMBOL(node_data)'], 16) + 8, 8), 'little')
        nid = int.from_bytes(k.read(kdumpfile.KDUMP_KVADDR, pgdat + int(info['OFFSET(pglist_data.node_id)']), 4), 'little')
        start = int.from_bytes(k.read(kdumpfile.KDUMP_KVADDR, pgdat + int(info['OFFSET(pglist_data.node_start_pfn)']), 8), 'little')
        print('node', nid, 'start', hex(start))
        """
        let (prc, pout) = try run(RealToolsTests.python, ["-c", script, dir + "/vmcore"])
        #expect(prc == 0, "\(pout.suffix(800))")
        #expect(pout.contains("online 2") && pout.contains("node 1 start 0x100000"), "\(pout.suffix(800))")
    }
}

/// The struct page of a PFN as makedumpfile finds it in an ELF vmcore
/// (`FileMemMap`: mem_section, then the kernel's page tables), from an image
/// written to a file.
struct FileMemMapProbe {
    let memMap: FileMemMap
    let sections: [UInt64: UInt64]
    let dir: String

    init(_ img: GuestMemoryImage) throws {
        dir = try tempDir()
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let file = try ELFInput(path: dir + "/vmcore")
        let f = MakedumpfileFilter(version: .v1_7_8, dumpLevel: 31, vmcoreinfo: img.vmcoreinfo!)
        memMap = try FileMemMap(file: file, vmcoreinfo: f.n, maxMapnr: img.maxMapnr)
        sections = Dictionary(uniqueKeysWithValues: memMap.sections.map { ($0.number, $0.memMap) })
        // The open file keeps its bytes.
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The physical address of `pfn`'s struct page: vmemmap through the page tables.
    func physical(ofStructPage pfn: UInt64) -> UInt64? {
        guard let m = sections[pfn / X86Layout.pagesPerSection] else { return nil }
        return memMap.translate(m &+ (pfn % X86Layout.pagesPerSection) * 64)
    }
}
