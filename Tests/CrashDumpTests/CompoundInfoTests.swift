@testable import CrashDump
import Foundation
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// Linux 7.1 renamed `page.compound_head` to `page.compound_info`
/// (d50569612c29), in VMCOREINFO too. makedumpfile up to 1.7.9 reads only
/// `OFFSET(page.compound_head)`, so on 7.1 its `compound_head` stays 0 and
/// the chain runs on every tail page; f50c015 (the development branch,
/// `--makedumpfile dev`) reads the new name.
@Suite struct CompoundInfoTests {
    static let v7_1 = KernelVersion(KernelRelease(7, 1))

    func vmcoreinfo(_ img: GuestMemoryImage) throws -> String { try #require(img.vmcoreinfo) }

    /// The filter as a release that reads the tail field under the old name
    /// would run it: the same VMCOREINFO with `compound_head` back.
    func withOldName(_ v: MakedumpfileVersion, _ level: Int, _ img: GuestMemoryImage) throws -> MakedumpfileFilter {
        let text = try vmcoreinfo(img).replacingOccurrences(of: "OFFSET(page.compound_info)", with: "OFFSET(page.compound_head)")
        return MakedumpfileFilter(version: v, dumpLevel: level, vmcoreinfo: text)
    }

    @Test func vmcoreinfoNamesTheFieldFrom71() throws {
        let old = try smallGuestImage(memory: 512 << 20, kernel: .v7_0, workload: .touch(16 << 20))
        let new = try smallGuestImage(memory: 512 << 20, kernel: Self.v7_1, workload: .touch(16 << 20))
        #expect(try vmcoreinfo(old).contains("OFFSET(page.compound_head)=8\n"))
        #expect(try !vmcoreinfo(old).contains("compound_info"))
        #expect(try vmcoreinfo(new).contains("OFFSET(page.compound_info)=8\n"))
        #expect(try !vmcoreinfo(new).contains("compound_head"))
        #expect(!MakedumpfileFilter(version: .v1_7_9, dumpLevel: 31, vmcoreinfo: try vmcoreinfo(new)).recognisesTails)
        #expect(MakedumpfileFilter(version: .dev, dumpLevel: 31, vmcoreinfo: try vmcoreinfo(new)).recognisesTails)
        #expect(MakedumpfileFilter(version: .v1_7_9, dumpLevel: 31, vmcoreinfo: try vmcoreinfo(old)).recognisesTails)
    }

    /// `set_compound_head()`: before 7.1 the head's address | 1; from 7.1
    /// `GENMASK(63, order + 6) | 1` (a 64-byte struct page). The first tail
    /// holds 6.15's folio fields: a PMD-mapped THP's `_entire_mapcount` is
    /// 0, an unmapped folio's -1, which makedumpfile reads as `mapping`.
    @Test func tailsHoldTheMaskAndPage1HoldsTheMapcounts() throws {
        let thp = try smallGuestImage(memory: 768 << 20, kernel: Self.v7_1, workload: .touch(64 << 20), thp: true)
        let k = try #require(thp.kernel)
        let head = try #require(k.roles.runs(in: Range(start: .lowest, count: thp.maxMapnr)).first { $0.1 == .transparentHuge }?.0.lowerBound.value)
        #expect(head % 512 == 0)
        for t in [head + 1, head + 2, head + 5, head + 511] { #expect(k.structPage(t).word1 == 0xffff_ffff_ffff_8001) }
        #expect(k.structPage(head + 1).mapping == 0)
        #expect(k.structPage(head + 1).flags & 0xff == 9)
        let pool = try smallGuestImage(memory: 768 << 20, kernel: Self.v7_1, workload: .hugetlb(16 << 20))
        let pk = try #require(pool.kernel)
        let ph = try #require(pk.roles.runs(in: Range(start: .lowest, count: pool.maxMapnr)).first { $0.1 == .hugetlb }?.0.lowerBound.value)
        #expect(pk.structPage(ph + 1).mapping == 0x0000_0000_ffff_ffff)
        let before = try smallGuestImage(memory: 768 << 20, kernel: .v7_0, workload: .touch(64 << 20), thp: true)
        let bh = try #require(before.kernel!.roles.runs(in: Range(start: .lowest, count: before.maxMapnr)).first { $0.1 == .transparentHuge }?.0.lowerBound.value)
        #expect(before.kernel!.structPage(bh + 5).word1 == StructPage.address(of: bh) | 1)
    }

    /// The per-range filter equals the page-by-page walk over the generated
    /// memmap on 7.1 guests (THP, a hugetlb pool, slab folios of order 1 and
    /// 3), for every version and level: the walk reads tails one by one.
    @Test(arguments: [(Workload.touch(64 << 20), true, UInt64(0)), (.hugetlb(32 << 20), false, 0), (.touch(16 << 20), false, 1),
                      (.pageCache(24 << 20), false, 3)])
    func rangeFilterEqualsPageByPageWalkOn71(workload: Workload, thp: Bool, slabOrder: UInt64) throws {
        let img = try smallGuestImage(memory: 768 << 20, kernel: Self.v7_1, workload: workload, thp: thp, slabOrder: slabOrder)
        for v in MakedumpfileVersion.allCases {
            for level in [0, 1, 2, 8, 16, 24, 31] {
                let f = MakedumpfileFilter(version: v, dumpLevel: level, vmcoreinfo: try vmcoreinfo(img))
                #expect(img.filter(f) == img.filterStepByStep(f), "\(v.rawValue) -d \(level) slub order \(slabOrder)")
            }
        }
    }

    /// Slab folios whose naturally aligned block lies wholly in a slab run,
    /// counted from the roles (the reference).
    func slabFolios(_ img: GuestMemoryImage, order: UInt64) -> UInt64 {
        var n: UInt64 = 0
        for (run, role) in img.kernel!.roles.runs(in: Range(start: .lowest, count: img.maxMapnr)) where role == .slab {
            let r = run.raw
            let first = alignUp(r.lowerBound, 1 << order), last = alignDown(r.upperBound, 1 << order)
            if last > first { n += (last - first) >> order }
        }
        return n
    }

    /// What 1.7.9 gets wrong on 7.1 with slab folios: at every level with
    /// bit 8 (user data) it excludes the first tail of each slab folio, whose
    /// `_entire_mapcount` of -1 reads as an anonymous `mapping` (bit 0 set);
    /// the head is a slab page and stays, so the tail is slab memory a dump
    /// needs. Without bit 8 nothing differs. dev filters exactly as a
    /// release reading `compound_head` would, and 1.7.9 does on 7.0.
    @Test(arguments: [UInt64(1), 2, 3])
    func release179DropsTheFirstTailOfEverySlabFolioAtUserLevels(order: UInt64) throws {
        let img = try smallGuestImage(memory: 768 << 20, kernel: Self.v7_1, workload: .pageCache(24 << 20), slabOrder: order)
        let folios = slabFolios(img, order: order)
        #expect(folios >= 16, "the guest has slab folios")
        for level in [1, 2, 4, 8, 9, 16, 24, 31] {
            let dev = img.filter(MakedumpfileFilter(version: .dev, dumpLevel: level, vmcoreinfo: try vmcoreinfo(img)))
            let old = img.filter(MakedumpfileFilter(version: .v1_7_9, dumpLevel: level, vmcoreinfo: try vmcoreinfo(img)))
            #expect(dev == img.filter(try withOldName(.v1_7_9, level, img)), "-d \(level)")
            if level & 8 == 0 {
                #expect(old == dev, "-d \(level)")
            } else {
                #expect(dev.dumpableCount - old.dumpableCount == folios, "-d \(level)")
                #expect(old.counts.user - dev.counts.user == folios, "-d \(level)")
            }
        }
    }

    /// On the model's 2 MiB folios 1.7.9 writes what dev writes: a THP is
    /// mapped (`_entire_mapcount` 0, so its first tail is not anonymous), and
    /// a free hugetlb folio is dropped whole at bit 8 from its head, which
    /// skips the tails. 1.7.2, which has no hugetlb detection on 6.x,
    /// keeps the hugetlb head and so, on 7.1, drops each folio's first tail
    /// at bit 8: one page per folio more than on a kernel naming
    /// `compound_head`.
    @Test func twoMiBFolios() throws {
        let thp = try smallGuestImage(memory: 768 << 20, kernel: Self.v7_1, workload: .touch(64 << 20), thp: true)
        let pool = try smallGuestImage(memory: 768 << 20, kernel: Self.v7_1, workload: .hugetlb(32 << 20))
        for img in [thp, pool] {
            for level in [1, 8, 16, 31] {
                let dev = img.filter(MakedumpfileFilter(version: .dev, dumpLevel: level, vmcoreinfo: try vmcoreinfo(img)))
                #expect(img.filter(MakedumpfileFilter(version: .v1_7_9, dumpLevel: level, vmcoreinfo: try vmcoreinfo(img))) == dev, "-d \(level)")
            }
        }
        let folios = pool.kernel!.roles.measure(in: Range(start: .lowest, count: pool.maxMapnr)) { $0 == .hugetlb } / 512
        #expect(folios == 16)
        for level in [8, 31] {
            let now = pool.filter(MakedumpfileFilter(version: .v1_7_2, dumpLevel: level, vmcoreinfo: try vmcoreinfo(pool)))
            let named = pool.filter(try withOldName(.v1_7_2, level, pool))
            #expect(now.counts.user - named.counts.user == folios, "-d \(level)")
        }
    }

    /// A 7.1 ELF vmcore read back: the walk over the file's struct pages
    /// (through its VMCOREINFO, `mem_section` and page tables) filters as the
    /// model does, for the releases that miss the tail field and for dev.
    @Test func fileFilterEqualsModelFilterOn71() throws {
        let img = try smallGuestImage(memory: 512 << 20, kernel: Self.v7_1, workload: .hugetlb(16 << 20), slabOrder: 2)
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ELFVmcore.write(img, to: dir + "/vmcore")
        let file = GuestMemoryImage(input: try ELFInput(path: dir + "/vmcore"))
        for v in [MakedumpfileVersion.v1_7_2, .v1_7_9, .dev] {
            for level in [8, 31] {
                let f = MakedumpfileFilter(version: v, dumpLevel: level, vmcoreinfo: try vmcoreinfo(img))
                #expect(try file.filterInput(f, version: v) == img.filter(f), "\(v.rawValue) -d \(level)")
            }
        }
    }

    /// Slab folios need 6.15's page[1]; older kernels are refused.
    @Test func slubOrderNeeds615() throws {
        #expect(throws: CocomemError.self) { try smallGuestImage(memory: 512 << 20, kernel: .v6_12, slabOrder: 1) }
        _ = try smallGuestImage(memory: 512 << 20, kernel: .v6_16, slabOrder: 1)
    }
}
