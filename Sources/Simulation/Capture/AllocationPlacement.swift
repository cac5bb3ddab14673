import GuestKernel
import MemoryModel

/// Where the pages the allocator handed out lie. The kernel model counts
/// allocated pages by use but does not place them; the vmcore
/// (`CaptureView`) and the memory snapshots (`Recorder`) both lay them out
/// by this one stated rule, so a snapshot's page classes are the dump's:
/// the hugetlb pool first, as 2 MiB-aligned order-9 folios, then the kernel's
/// own allocations, the page cache and anonymous memory, each filling the
/// free runs of memory above 4 GiB before those below (the buddy allocator
/// hands out the top zones first).
enum AllocationPlacement {
    /// Assigns `hugetlb`, `kernel`, `pageCache` and `anonymous` to the runs
    /// of `classes` that are `free` inside `ranges`.
    /// - Complexity: O(runs of `classes` in `ranges`), never O(pages).
    static func place<Class: Equatable>(_ k: GuestKernel, in ranges: [AddressRange], classes: inout IntervalMap<GuestFrameNumber, Class>,
                                        free: Class, hugetlb hugetlbClass: Class, kernel: Class, pageCache: Class, anonymous: Class) {
        let high = ranges.filter { $0.start >= 1 << 32 }, low = ranges.filter { $0.start < 1 << 32 }
        func freeRuns(_ r: AddressRange) -> [Range<GuestFrameNumber>] {
            var runs: [Range<GuestFrameNumber>] = []
            classes.forEachRun(in: r.lowerAddress.frame..<r.upperAddress.frame) { f, c in if c == free { runs.append(f) } }
            return runs
        }
        let folio = PageLevel.size2M.pages
        var hugetlb = k.hugetlbPages / folio
        for r in high + low where hugetlb > 0 {
            for f in freeRuns(r) where hugetlb > 0 {
                let a = f.lowerBound.isAligned(to: .size2M) ? f.lowerBound : f.lowerBound.alignedDown(to: .size2M) + folio
                let n = min(hugetlb, a < f.upperBound ? (f.upperBound - a) / folio : 0)
                if n > 0 { classes.assign(Range(start: a, count: n * folio), hugetlbClass); hugetlb -= n }
            }
        }
        let kernelOwn = k.earlyAllocationPages + k.kernelPages
        let anon = k.allocatedPages - k.pageCachePages - kernelOwn - k.hugetlbPages
        var wanted: [(Class, UInt64)] = [(kernel, kernelOwn), (pageCache, k.pageCachePages), (anonymous, anon)]
        for r in high + low {
            for var f in freeRuns(r) {
                while !f.isEmpty, let i = wanted.firstIndex(where: { $0.1 > 0 }) {
                    let n = min(f.length, wanted[i].1)
                    classes.assign(Range(start: f.lowerBound, count: n), wanted[i].0)
                    wanted[i].1 -= n
                    f = (f.lowerBound + n)..<f.upperBound
                }
            }
        }
    }
}
