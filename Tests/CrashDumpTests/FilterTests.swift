@testable import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

@Suite struct FilterTests {
    /// The per-range filter equals makedumpfile's page-by-page walk over
    /// the generated memmap bytes, for every modelled version and the
    /// levels that exercise each branch of the chain.
    /// Also with 2 MiB folios: THP anonymous memory and a hugetlb pool.
    @Test(arguments: [(KernelVersion.v6_12, Workload.touch(40 << 20), false), (.v6_16, .touch(40 << 20), false),
                      (.v6_16, .touch(64 << 20), true), (.v6_12, .hugetlb(64 << 20), false), (.v6_16, .hugetlb(32 << 20), false)])
    func rangeFilterEqualsPageByPageWalk(kernel: KernelVersion, workload: Workload, thp: Bool) throws {
        let img = try smallGuestImage(memory: 768 << 20, kernel: kernel, workload: workload, thp: thp)
        for v in MakedumpfileVersion.allCases {
            for level in [0, 1, 2, 4, 8, 16, 31] {
                let f = MakedumpfileFilter(version: v, dumpLevel: level, vmcoreinfo: img.vmcoreinfo!)
                #expect(img.filter(f) == img.filterStepByStep(f), "\(kernel.rawValue) \(v.rawValue) -d \(level)")
            }
        }
    }

    /// Seed 000's mechanism: on 6.16, 1.7.8 drops every page of the
    /// unaccepted blocks from the 2nd bitmap, so the file shrinks by exactly
    /// 24 bytes (one descriptor of the shared zero page) per such page. On
    /// 6.12 the heads are typed but VMCOREINFO has no number: no change.
    @Test func unacceptedBlocksCostADescriptorEachBefore178() throws {
        for (kernel, expectSaving) in [(KernelVersion.v6_16, true), (.v6_12, false)] {
            let img = try smallGuestImage(memory: 2 << 30, kernel: kernel)
            let blocks = img.kernel!.input.unacceptedBlocks.reduce(0) { $0 + UInt64($1.count) }
            #expect(blocks > 0)
            let before = try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 31, makedumpfile: .v1_7_7)).estimate()
            let after = try KdumpCompressedWriter(image: img, options: DumpOptions(dumpLevel: 31, makedumpfile: .v1_7_8)).estimate()
            if expectSaving {
                #expect(before.fileSize - after.fileSize == 24 * blocks)
                #expect(after.freePages - before.freePages == blocks)
                #expect(before.zeroPages - after.zeroPages == blocks)
            } else {
                #expect(before == after)
            }
        }
    }

    /// 2 MiB folios by makedumpfile version, at `-d 8`: 1.7.7 reads the
    /// order from the first tail and drops a THP or hugetlb folio whole;
    /// 1.7.2 has no order on 6.x kernels, so a THP loses only its head (the
    /// tails are skipped as tails and dumped) and a hugetlb folio, whose head
    /// is not anonymous, stays.
    @Test func hugePagesFollowEachVersionsChain() throws {
        let thp = try smallGuestImage(memory: 768 << 20, kernel: .v6_16, workload: .touch(64 << 20), thp: true)
        let folios = thp.kernel!.roles.measure(in: Range(start: .lowest, count: thp.maxMapnr)) { $0 == .transparentHuge } / 512
        #expect(folios >= 16)
        func user(_ img: GuestMemoryImage, _ v: MakedumpfileVersion) -> UInt64 {
            img.filter(MakedumpfileFilter(version: v, dumpLevel: 8, vmcoreinfo: img.vmcoreinfo!)).counts.user
        }
        #expect(user(thp, .v1_7_7) - user(thp, .v1_7_2) == 511 * folios)
        let pool = try smallGuestImage(memory: 768 << 20, kernel: .v6_16, workload: .hugetlb(32 << 20))
        let poolPages = pool.kernel!.roles.measure(in: Range(start: .lowest, count: pool.maxMapnr)) { $0 == .hugetlb }
        #expect(poolPages == (32 << 20) >> 12)
        #expect(user(pool, .v1_7_7) - user(pool, .v1_7_2) == poolPages)
    }

    /// The filter on an ELF vmcore file, which finds the struct pages
    /// through the file's VMCOREINFO, `mem_section` and page tables, equals
    /// the filter on the simulated guest it was written from, for every
    /// profile and level, with 2 MiB folios present.
    @Test func fileFilterEqualsModelFilter() throws {
        let img = try smallGuestImage(memory: 768 << 20, kernel: .v6_16, workload: .touch(64 << 20), thp: true)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let file = GuestMemoryImage(input: try ELFInput(path: dir + "/vmcore"))
        for v in MakedumpfileVersion.allCases {
            for level in [2, 8, 16, 31] {
                let f = MakedumpfileFilter(version: v, dumpLevel: level, vmcoreinfo: img.vmcoreinfo!)
                #expect(try file.filterInput(f, version: v) == img.filter(f), "\(v.rawValue) -d \(level)")
            }
        }
        // Without SYMBOL(mem_section) the walk cannot start: a clear error.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/vmcore"))
        let key = Data("SYMBOL(mem_section)".utf8)
        let at = try #require(bytes.range(of: key))
        bytes.replaceSubrange(at, with: Data("SYMBOL(mem_sectioX)".utf8))
        try bytes.write(to: URL(fileURLWithPath: dir + "/broken"))
        let broken = GuestMemoryImage(input: try ELFInput(path: dir + "/broken"))
        #expect(throws: CocomemError.self) { try KdumpCompressedWriter(image: broken, options: DumpOptions(dumpLevel: 31)) }
        do { _ = try KdumpCompressedWriter(image: broken, options: DumpOptions(dumpLevel: 31)) } catch {
            #expect("\(error)".contains("SYMBOL(mem_section)"))
        }
    }

    /// The chain's quirks, on hand-made struct pages.
    @Test func chainQuirks() throws {
        let info = try smallGuestImage(memory: 512 << 20, kernel: .v6_16).vmcoreinfo!
        let f8 = MakedumpfileFilter(version: .v1_7_8, dumpLevel: 31, vmcoreinfo: info)
        let f2 = MakedumpfileFilter(version: .v1_7_2, dumpLevel: 31, vmcoreinfo: info)
        // A THP head (order 9 in the first tail's flags): 1.7.8 drops 512 pages, 1.7.2 only the head.
        var head = StructPage(); head.flags = 1 << 6 | 1 << 5; head.mapping = 0xffff_8880_1234_5001; head.mapcount = 0xffff_ffff
        var tail = StructPage(); tail.flags = 9; tail.word1 = StructPage.address(of: 512) | 1
        #expect(f8.decide(head, next: tail, pfn: 512) == .exclude(.user, pages: 512))
        #expect(f2.decide(head, next: tail, pfn: 512) == .exclude(.user, pages: 1))
        #expect(f8.decide(tail, next: tail, pfn: 513) == .tail)
        // A head in the last slot of a 512-page read batch is not seen as compound.
        #expect(f8.decide(head, next: tail, pfn: 511) == .exclude(.user, pages: 1))
        // A slab page whose mapping has bit 0 set: anon for 1.7.2, not for 1.7.7+.
        var slab = StructPage(); slab.mapping = 0x1001; slab.mapcount = PageType.slab.word
        #expect(f2.decide(slab, next: nil, pfn: 7) == .exclude(.user, pages: 1))
        #expect(f8.decide(slab, next: nil, pfn: 7) == .keep)
        // test_bit() builds an int mask: bit 31 also matches bit 63, bit 37 reads bit 5.
        #expect(MakedumpfileFilter.testBit(31, 1 << 63))
        #expect(MakedumpfileFilter.testBit(37, 1 << 5))
        // A buddy order beyond LENGTH(zone.free_area) is skipped with a warning, not excluded.
        var bad = StructPage(); bad.mapcount = PageType.buddy.word; bad.privateValue = 11
        #expect(f8.decide(bad, next: nil, pfn: 0) == .keep)
    }
}
