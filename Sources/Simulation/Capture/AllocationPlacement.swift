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
    ///
    /// With several nodes each node's pages go into its own memory
    /// (`numa.split`), by what its zones gave (`nodeUsage`: the allocator
    /// takes from the zonelist of the allocating vCPU's node, so a node's
    /// pages are the ones its zones handed out), by the same rule inside the node.
    static func place<Class: Equatable>(_ k: GuestKernel, in ranges: [AddressRange], classes: inout IntervalMap<GuestFrameNumber, Class>,
                                        free: Class, hugetlb hugetlbClass: Class, kernel: Class, pageCache: Class, anonymous: Class) {
        guard !k.numa.isSingleNode else {
            let kernelOwn = k.earlyAllocationPages + k.kernelPages
            let anon = k.allocatedPages - k.pageCachePages - kernelOwn - k.hugetlbPages
            place(hugetlbPages: k.hugetlbPages, kernelPages: kernelOwn, cachePages: k.pageCachePages, anonymousPages: anon, in: ranges,
                  classes: &classes, free: free, hugetlb: hugetlbClass, kernel: kernel, pageCache: pageCache, anonymous: anonymous)
            return
        }
        for n in 0..<k.numa.nodeCount {
            let u = k.nodeUsage[n]
            let mine = ranges.flatMap { r in k.numa.split(r).filter { $0.node == n }.map(\.range) }
            let named = u.pageCache + u.kernelOwn + u.hugetlb
            place(hugetlbPages: u.hugetlb, kernelPages: u.kernelOwn, cachePages: u.pageCache,
                  anonymousPages: u.allocated > named ? u.allocated - named : 0, in: mine,
                  classes: &classes, free: free, hugetlb: hugetlbClass, kernel: kernel, pageCache: pageCache, anonymous: anonymous)
        }
    }

    /// Lays the given page counts into the free runs of `ranges`: hugetlb
    /// folios first, then the kernel's pages, the page cache and anonymous
    /// memory, above 4 GiB before below.
    /// - Complexity: O(runs of `classes` in `ranges`).
    static func place<Class: Equatable>(hugetlbPages: UInt64, kernelPages kernelOwn: UInt64, cachePages: UInt64, anonymousPages anon: UInt64,
                                        in ranges: [AddressRange], classes: inout IntervalMap<GuestFrameNumber, Class>,
                                        free: Class, hugetlb hugetlbClass: Class, kernel: Class, pageCache: Class, anonymous: Class) {
        let high = ranges.filter { $0.start >= 1 << 32 }, low = ranges.filter { $0.start < 1 << 32 }
        func freeRuns(_ r: AddressRange) -> [Range<GuestFrameNumber>] {
            var runs: [Range<GuestFrameNumber>] = []
            classes.forEachRun(in: r.lowerAddress.frame..<r.upperAddress.frame) { f, c in if c == free { runs.append(f) } }
            return runs
        }
        let folio = PageLevel.size2M.pages
        var hugetlb = hugetlbPages / folio
        for r in high + low where hugetlb > 0 {
            for f in freeRuns(r) where hugetlb > 0 {
                let a = f.lowerBound.isAligned(to: .size2M) ? f.lowerBound : f.lowerBound.alignedDown(to: .size2M) + folio
                let n = min(hugetlb, a < f.upperBound ? (f.upperBound - a) / folio : 0)
                if n > 0 { classes.assign(Range(start: a, count: n * folio), hugetlbClass); hugetlb -= n }
            }
        }
        var wanted: [(Class, UInt64)] = [(kernel, kernelOwn), (pageCache, cachePages), (anonymous, anon)]
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
