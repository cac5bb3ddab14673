import CostModel
import MemoryModel

/// The reclaim counters of `/proc/vmstat` the model keeps (mm/vmstat.c's
/// `vmstat_text[]` names). Every page the model reclaims is a clean,
/// unmapped page-cache page that `shrink_folio_list()` frees on the first
/// scan, so each scanned page is a stolen page: `pgscan_*` equals
/// `pgsteal_*` here (the kernel scans more than it steals when pages are
/// referenced, dirty or mapped; the model has none such).
public struct ReclaimCounters: Sendable, Equatable {
    /// `pgscan_kswapd` / `pgsteal_kswapd`: pages kswapd scanned and reclaimed.
    public var pgscanKswapd: UInt64 = 0, pgstealKswapd: UInt64 = 0
    /// `pgscan_direct` / `pgsteal_direct`: pages allocating tasks reclaimed themselves.
    public var pgscanDirect: UInt64 = 0, pgstealDirect: UInt64 = 0
    /// `allocstall_normal` / `allocstall_movable`: entries into direct
    /// reclaim (`__perform_reclaim()`, one a `try_to_free_pages()` call of
    /// SWAP_CLUSTER_MAX pages), by the allocation's highest zone.
    public var allocstallNormal: UInt64 = 0, allocstallMovable: UInt64 = 0
    /// `pageoutrun`: `balance_pgdat()` runs (kswapd woken and not balanced).
    public var pageoutrun: UInt64 = 0
    public init() {}

    /// The `/proc/vmstat` lines, in `vmstat_text[]`'s order.
    public var rows: [(String, UInt64)] {
        [("allocstall_normal", allocstallNormal), ("allocstall_movable", allocstallMovable),
         ("pgsteal_kswapd", pgstealKswapd), ("pgsteal_direct", pgstealDirect),
         ("pgscan_kswapd", pgscanKswapd), ("pgscan_direct", pgscanDirect),
         ("pageoutrun", pageoutrun)]
    }
}

/// What a woken kswapd found on a kernel before 807174a93d24 when its node
/// could not be balanced only because `__zone_watermark_unusable_free()`
/// counts NR_UNACCEPTED as unusable (mainline 6.5 to 6.10, 6.6.y before
/// 6.6.48, 6.10.y before 6.10.7).
public struct EndlessReclaim: Sendable, Equatable, CustomStringConvertible {
    public let node: Int
    /// The zone whose high watermark the fixed kernel would find met.
    public let zone: ZoneKind
    /// `high_wmark_pages()` plus `lowmem_reserve[highest_zoneidx]`.
    public let mark: UInt64
    /// NR_FREE_PAGES and NR_UNACCEPTED of that zone.
    public let free: UInt64, unaccepted: UInt64
    /// Reclaimable page cache of the node's zones up to highest_zoneidx.
    public let reclaimable: UInt64
    /// True when kswapd has some page cache to take each pass (the working
    /// set refaulting): `kswapd_failures` is reset by every pass that frees
    /// something, so kswapd never sleeps. False: nothing to reclaim, kswapd
    /// gives up after MAX_RECLAIM_RETRIES passes without progress.
    public var endless: Bool { reclaimable > 0 }

    public var description: String {
        let where_ = "node \(node) zone \(zone.rawValue): high watermark plus lowmem_reserve \(mark) pages, free \(free) of which \(unaccepted) unaccepted, so \(free - unaccepted) count for __zone_watermark_ok()"
        if endless {
            return "stalled: endless reclaim: kswapd\(node), once woken (a watermark boost, a THP or zone-restricted allocation, NUMA balancing), cannot balance \(where_); \(reclaimable) pages of page cache are all it can reclaim, each pass frees some, so kswapd_failures never reaches MAX_RECLAIM_RETRIES (fixed by 807174a93d24, 6.11; 6.6.48, 6.10.7)"
        }
        return "kswapd\(node), once woken, cannot balance \(where_) and has no page cache to reclaim: \(GuestKernel.maxReclaimRetries) balance_pgdat() passes without progress, then it stops (kswapd_failures; fixed by 807174a93d24, 6.11; 6.6.48, 6.10.7)"
    }
}

extension GuestKernel {
    /// MAX_RECLAIM_RETRIES (mm/internal.h).
    public static let maxReclaimRetries: UInt64 = 16
    /// SWAP_CLUSTER_MAX: pages one direct-reclaim call asks for (`sc.nr_to_reclaim`).
    public static let swapClusterMax: UInt64 = 32

    /// `__zone_watermark_unusable_free()` for an order-0 allocation without
    /// reserves: NR_UNACCEPTED before 807174a93d24, nothing after (no CMA,
    /// no high-atomic reserve in the model).
    func unusableFree(zone zi: Int) -> UInt64 {
        config.version.unacceptedIsUnusableForWatermarks ? zones[zi].unacceptedPages : 0
    }

    /// `__zone_watermark_ok()` for order 0 and no alloc flags (as
    /// `zone_watermark_ok_safe()` calls it): free pages minus the unusable
    /// ones above `mark` plus `lowmem_reserve[highest]`.
    func zoneWatermarkOK(zone zi: Int, mark: UInt64, highest: Int) -> Bool {
        let usable = Int64(zones[zi].freePages) - Int64(unusableFree(zone: zi))
        return usable > Int64(mark + zones[zi].lowmemReserve[highest])
    }

    /// The indices of node `nid`'s populated zones up to `highest`.
    func nodeZones(_ nid: Int, upTo highest: Int) -> [Int] {
        let k = ZoneKind.allCases.count
        return (0..<min(k, highest + 1)).map { nid * k + $0 }.filter { zones[$0].managed > 0 }
    }

    /// `pgdat_balanced()`: the node is balanced when any managed zone up to
    /// `highest` meets its high watermark (checked bottom-up); a node with
    /// no managed zone there needs no balancing.
    public func pgdatBalanced(node nid: Int, highest: Int) -> Bool {
        let zs = nodeZones(nid, upTo: highest)
        return zs.isEmpty || zs.contains { zoneWatermarkOK(zone: $0, mark: zones[$0].watermarkHigh, highest: highest) }
    }

    /// Pages to reclaim from the node's file LRU so that, the pages freed
    /// landing in each zone in proportion to its file pages (the LRU is the
    /// node's, not a zone's, since 4.8), some zone of `zs` passes `need(z)`:
    /// the least such count, or nil when reclaiming everything would not do.
    /// - Complexity: O(zones).
    func pagesToReclaim(_ zs: [Int], need: (Int) -> Int64) -> UInt64? {
        let total = zs.reduce(0) { $0 + zones[$1].filePages }
        var best: UInt64? = nil
        for z in zs {
            let n = need(z)
            if n <= 0 { return 0 }
            let f = zones[z].filePages
            guard f > 0 else { continue }
            // Zone z gains floor(r * f / total); the least r with that >= n.
            let r = UInt64(n) > f ? UInt64.max : divRoundUp(UInt64(n) * total, f)
            if r <= total { best = min(best ?? r, r) }
        }
        return best
    }

    /// Takes `r` pages off the file LRU of zones `zs`, in proportion to each
    /// zone's file pages (remainders to the zones in order), back to the
    /// buddy allocator: Cached, MemFree and MemAvailable move as in
    /// `/proc/meminfo`.
    func reclaimProportionally(_ r: UInt64, from zs: [Int]) {
        let total = zs.reduce(0) { $0 + zones[$1].filePages }
        guard r > 0, total > 0 else { return }
        var shares = zs.map { r * zones[$0].filePages / total }
        var rest = r - shares.reduce(0, +)
        for i in zs.indices where rest > 0 && shares[i] < zones[zs[i]].filePages { shares[i] += 1; rest -= 1 }
        for (i, z) in zs.enumerated() {
            let n = min(shares[i], zones[z].filePages)
            zones[z].filePages -= n
            zones[z].freePages += n
            pageCachePages -= n
            allocatedPages -= n
            nodeUsage[zones[z].node].pageCache -= n
            nodeUsage[zones[z].node].allocated -= n
        }
    }

    /// kswapd of node `nid`, woken for `highest` (`wakeup_kswapd()` from
    /// `wake_all_kswapds()`), running `balance_pgdat()` to completion in
    /// one step: it reclaims page cache until `pgdat_balanced()` holds at
    /// the high watermark, or all of it when that is not enough. On a
    /// kernel before 807174a93d24 the check counts NR_UNACCEPTED as
    /// unusable and kswapd cannot accept: a node whose free memory is
    /// unaccepted stays unbalanced (`endlessReclaim`). kswapd's time goes
    /// to the least-loaded vCPU of the node.
    ///
    /// `streaming` pages still wanted by a page-cache reader: kswapd keeps
    /// pace with it, one high-to-min stretch after another, reclaiming the
    /// older page cache the reader replaces; at the model's grain those
    /// runs are taken as one, reclaiming what reaching high needs plus
    /// what the reader will take (capped at the page cache there is), so a
    /// reader far larger than the guest costs O(its size / the guest's
    /// page cache) steps, not O(its size / the watermark gap).
    func kswapd(node nid: Int, highest: Int, streaming: UInt64 = 0, clock: inout PhaseClock) {
        guard !pgdatBalanced(node: nid, highest: highest) else { return }
        reclaim.pageoutrun += 1
        let zs = nodeZones(nid, upTo: highest)
        let all = zs.reduce(0) { $0 + zones[$1].filePages }
        let toHigh = pagesToReclaim(zs) { z in
            Int64(self.zones[z].watermarkHigh + self.zones[z].lowmemReserve[highest] + 1)
                - (Int64(self.zones[z].freePages) - Int64(self.unusableFree(zone: z)))
        } ?? all
        let r = min(all, toHigh + streaming)
        reclaimProportionally(r, from: zs)
        reclaim.pgscanKswapd += r
        reclaim.pgstealKswapd += r
        let cpus = numa.cpusOfNode[nid]
        let vcpu = cpus.isEmpty ? clock.leastLoadedVCPU : Self.leastLoaded(cpus, clock)
        clock.charge(.kernelReclaimPage, r, vcpu: vcpu, costs: costs)
        if endlessReclaim == nil, let e = endlessReclaimCondition(node: nid, highest: highest) { endlessReclaim = e }
    }

    /// The state a woken kswapd meets on a kernel before 807174a93d24 when
    /// its node is unbalanced only because unaccepted memory is not counted
    /// as free: some zone would pass the high watermark counting it (as
    /// 807174a93d24 does), none passes without it, and the page cache left
    /// cannot make up the difference. Nil on fixed kernels, or when the
    /// node is balanced or reclaim can balance it.
    public func endlessReclaimCondition(node nid: Int, highest: Int) -> EndlessReclaim? {
        guard config.version.unacceptedIsUnusableForWatermarks, watermarksReady,
              !pgdatBalanced(node: nid, highest: highest) else { return nil }
        let zs = nodeZones(nid, upTo: highest)
        let needs: (Int) -> Int64 = { z in
            Int64(self.zones[z].watermarkHigh + self.zones[z].lowmemReserve[highest] + 1)
                - (Int64(self.zones[z].freePages) - Int64(self.zones[z].unacceptedPages))
        }
        guard pagesToReclaim(zs, need: needs) == nil else { return nil }
        let fixedOK = zs.filter { z in Int64(zones[z].freePages) > Int64(zones[z].watermarkHigh + zones[z].lowmemReserve[highest]) && zones[z].hasUnaccepted }
        guard let z = fixedOK.first else { return nil }
        return EndlessReclaim(node: nid, zone: zones[z].kind, mark: zones[z].watermarkHigh + zones[z].lowmemReserve[highest],
                              free: zones[z].freePages, unaccepted: zones[z].unacceptedPages,
                              reclaimable: zs.reduce(0) { $0 + zones[$1].filePages })
    }

    /// The endless-reclaim state of the first node a woken kswapd would
    /// meet it on (for a user-page wake, highest zone Movable), if any: the
    /// model's own order-0 allocations never wake kswapd while a zone they
    /// reach holds unaccepted memory (before 807174a93d24 the fast path's
    /// failed watermark calls `try_to_accept_memory()` and allocates), so
    /// the wakers that matter here are the kernel's others.
    public func endlessReclaimOnWake() -> EndlessReclaim? {
        endlessReclaim ?? (0..<numa.nodeCount).lazy.compactMap { self.endlessReclaimCondition(node: $0, highest: ZoneKind.movableIndex) }.first
    }

    /// Whether `get_page_from_freelist()` at ALLOC_WMARK_LOW fails on every
    /// zone of the zonelist, so `__alloc_pages_slowpath()` wakes kswapd: no
    /// zone has accepted free pages above low plus `lowmem_reserve[highest]`,
    /// and none has unaccepted memory to accept instead.
    func fastPathFails(zonelist order: [Int], highest: Int) -> Bool {
        order.allSatisfy { zi in
            let z = zones[zi]
            return z.managed == 0 || (!z.hasUnaccepted && z.acceptedFree <= z.watermarkLow + z.lowmemReserve[highest])
        }
    }

    /// `wake_all_kswapds()` for an allocation whose zonelist is `order`:
    /// each node in it once.
    func wakeAllKswapds(zonelist order: [Int], highest: Int, streaming: UInt64 = 0, clock: inout PhaseClock) {
        var seen: Set<Int> = []
        for zi in order where seen.insert(zones[zi].node).inserted {
            // The reader's pages come from the first node of its zonelist.
            kswapd(node: zones[zi].node, highest: highest, streaming: seen.count == 1 ? streaming : 0, clock: &clock)
        }
    }

    /// `__alloc_pages_direct_reclaim()` → `try_to_free_pages()`, repeated
    /// while `should_reclaim_retry()` sees progress, at the grain of one
    /// step: the allocating task reclaims, from each node of its zonelist,
    /// page cache of the zones up to `highest`, enough for `wanted` pages
    /// above the first zone's min watermark and reserve (or all there is).
    /// One allocstall per SWAP_CLUSTER_MAX pages asked. Returns the pages
    /// reclaimed (0: no progress, the OOM killer's turn).
    func directReclaim(zonelist order: [Int], wanted: UInt64, highest: Int, vcpu: Int, clock: inout PhaseClock) -> UInt64 {
        let zs = order.filter { $0 % ZoneKind.allCases.count <= highest && zones[$0].managed > 0 }
        let all = zs.reduce(0) { $0 + zones[$1].filePages }
        guard all > 0 else { return 0 }
        let r = pagesToReclaim(zs) { z in
            Int64(self.zones[z].watermarkMin + self.zones[z].lowmemReserve[highest] + wanted)
                - Int64(self.zones[z].acceptedFree)
        } ?? all
        let got = max(1, r)
        reclaimProportionally(got, from: zs)
        reclaim.pgscanDirect += got
        reclaim.pgstealDirect += got
        let stalls = divRoundUp(got, Self.swapClusterMax)
        if highest == ZoneKind.movableIndex { reclaim.allocstallMovable += stalls } else { reclaim.allocstallNormal += stalls }
        clock.charge(.kernelReclaimPage, got, vcpu: vcpu, costs: costs)
        return got
    }
}
