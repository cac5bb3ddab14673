@testable import CrashDump
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

@Suite struct KernelStructuresTests {
    /// Every generated memmap page is the 64 struct pages of its PFNs, each
    /// built on its own by `structPage(_:)`: the run-at-a-time fill (tails
    /// copied, only block heads built) changes no byte. The guests have
    /// page cache, anonymous and slab pages, buddy blocks of every order
    /// and unaccepted blocks, on the kernel without and with `PGTY_unaccepted`.
    @Test(arguments: [(KernelVersion.v6_12, Workload.pageCache(24 << 20), false), (.v6_16, .touch(40 << 20), false),
                      (.v6_16, .touch(64 << 20), true), (.v6_16, .hugetlb(32 << 20), false)])
    func memmapPagesAreTheirStructPages(kernel: KernelVersion, workload: Workload, thp: Bool) throws {
        let img = try smallGuestImage(memory: 2 << 30, kernel: kernel, workload: workload, thp: thp)
        let k = try #require(img.kernel)
        var roles: Set<PageRole> = []
        for (q, pfn) in k.memmapPFNs.enumerated() {
            let page = k.generatedPage(pfn)
            let first = k.presentSections[q / 512] * X86Layout.pagesPerSection + UInt64(q % 512) * 64
            var expected: [UInt8] = []
            for p in first..<(first + 64) {
                roles.insert(k.roles.value(at: GuestFrameNumber(p)))
                var bytes = [UInt8](repeating: 0, count: 64)
                bytes.withUnsafeMutableBytes { k.structPage(p).store(to: $0.baseAddress!) }
                expected += bytes
            }
            guard page == expected else {
                Issue.record("memmap page \(q) (PFNs from \(hex(first))) differs from its struct pages")
                return
            }
        }
        #expect(roles.isSuperset(of: [.reserved, .free, .unacceptedBlock]))
        if thp { #expect(roles.contains(.transparentHuge)) }
        if case .hugetlb = workload { #expect(roles.contains(.hugetlb)) }
    }
}
