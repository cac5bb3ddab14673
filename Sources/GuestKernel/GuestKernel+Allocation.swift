public import CoCoGuest
public import CostModel
import Firmware
import MemoryModel

/// Where allocated pages go: anonymous memory, the page cache, or the
/// kernel itself (kexec's source copies and the like).
public enum PageUse: Sendable { case anonymous, pageCache, kernel, hugetlb }

extension GuestKernel {
    /// `try_to_accept_memory_one()` / `__accept_page()` for `n` blocks of zone `zi`.
    ///
    /// What other vCPUs are doing at the same virtual time is felt through
    /// the phase's shared timelines (`acceptListedBlock`). With one vCPU
    /// nothing else is ever on `zone->lock` or the accepting list, so a run
    /// of blocks is accepted in bulk (`acceptBlocks` replays its uniform
    /// stretches) with the same virtual times; with several, each block is
    /// its own `accept_memory()` call on the timelines, as the kernel makes
    /// one call per block. The shared write bandwidth bounds the phase as a
    /// whole (`PhaseClock.seconds`), not each run.
    func acceptFromList(zone zi: Int, blocks n: UInt64, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        for run in zones[zi].takeUnaccepted(n) {
            // zone->lock is one take per run on its timeline: the least-loaded
            // loop hands vCPUs out of virtual-time order, and a FIFO timeline
            // would queue a vCPU behind another's later per-block takes.
            let hold = costs.vcpuPicoseconds[Op.kernelZoneLockSection.index]
            clock.spin(vcpu: vcpu, until: clock.shared.acquireZoneLock(zi, at: clock.vcpuPicoseconds[vcpu], hold: hold))
            if let u = unaccepted {
                if clock.vcpus == 1 {
                    let o = u.acceptBlocks(firstBlockAddress: run.first.address.value, count: run.count, vcpu: vcpu, clock: &clock)
                    if o != .ok { return o }
                } else {
                    var waits = ListWaits()
                    for b in 0..<run.count {
                        let o = Self.acceptListedBlock(run.first.address.value + b * (4 << 20), memory: u, vcpu: vcpu,
                                                       clock: &clock, waits: &waits)
                        if o != .ok { return o }
                    }
                    acceptingListWaits += waits.calls
                    acceptingListWaitPicoseconds += waits.picoseconds
                }
            }
            clock.charge(.kernelZoneLockSection, run.count, vcpu: vcpu, costs: costs)
            zones[zi].freePages += run.count * 1024  // __free_pages_ok(MAX_PAGE_ORDER)
        }
        return .ok
    }

    /// Accepting-list (or, before 50e782a86c98, lock) waits of a caller's
    /// `accept_memory()` calls.
    struct ListWaits: Equatable {
        /// Calls that started later than they arrived.
        var calls: UInt64 = 0
        var picoseconds: UInt64 = 0
    }

    /// One `accept_memory(block, 4 MiB)` on `vcpu` for the block at
    /// `address`, on the phase's shared timelines: its `accepting_list`
    /// entry covers the block's unit window (its units and the guard unit
    /// after it, so a neighbouring block's call spins until this one leaves
    /// the list) for the time of its accept; before 50e782a86c98
    /// (6.5.0–6.5.8) `unaccepted_memory_lock` is held across the accept
    /// instead, so every other accepter waits, overlapping or not. One entry
    /// per call, as the kernel adds one per `accept_memory()`
    /// (`try_to_accept_memory_one()` makes one per block): a neighbour
    /// waits for the block it shares a guard unit with, not for the rest of
    /// the run. A vCPU's call never waits for its own earlier calls: they
    /// ended before its clock.
    /// - Complexity: O(entries on the list) plus the accept.
    static func acceptListedBlock(_ address: UInt64, memory u: UnacceptedMemory, vcpu: Int,
                                  clock: inout PhaseClock, waits: inout ListWaits) -> AcceptOutcome {
        let arrival = clock.vcpuPicoseconds[vcpu]
        let o = u.acceptBlocks(firstBlockAddress: address, count: 1, vcpu: vcpu, clock: &clock)
        if o != .ok { return o }
        let cpu = clock.vcpuPicoseconds[vcpu] - arrival
        if let w = u.unitWindow(start: address, size: 4 << 20) {
            let start = u.locking == .lockHeldAcrossAccept
                ? clock.shared.unacceptedMemoryLock.acquire(at: arrival, hold: cpu)
                : clock.shared.acceptingList.place(w.lowerBound.value..<w.upperBound.value, arrival: arrival, duration: cpu)
            if start > arrival { waits.calls += 1; waits.picoseconds += start - arrival }
            clock.spin(vcpu: vcpu, until: start + cpu)
        }
        return .ok
    }

    /// Blocks `cond_accept_memory()` (or, before 6.11, the failed-watermark
    /// `try_to_accept_memory()`) accepts for an order-0 allocation now.
    func blocksToAccept(zone z: Zone) -> UInt64 {
        guard z.hasUnaccepted else { return 0 }
        let v = config.version
        let free = z.acceptedFree
        if v.unacceptedIsUnusableForWatermarks {
            // zone_watermark_ok(): free - unusable > low; else accept to high (do/while: at least one).
            if free > z.watermarkLow { return 0 }
            let toAccept = Int64(z.watermarkHigh) - Int64(free)
            return max(1, UInt64(max(0, toAccept) + 1023) / 1024)
        }
        let target = v.targetsPromoWatermark ? z.watermarkPromo : z.watermarkHigh
        if target == 0 {
            return v.acceptsOneBlockWhileWatermarksZero ? 1 : 0
        }
        guard free < target else { return 0 }
        return (target - free + 1023) / 1024
    }

    /// Allocates `pages` order-0 pages on behalf of a workload, each call to
    /// the allocator accepting what the kernel version's policy asks for.
    /// Consecutive allocations that trigger no acceptance are charged in bulk.
    /// Returns pages allocated (short on OOM) and the outcome.
    /// `onVCPU` pins the work to one vCPU (the BSP during early boot);
    /// otherwise each allocation runs on the least-loaded vCPU (of `node`'s,
    /// when it has any).
    ///
    /// The zones are tried in the zonelist of `node` (the allocating task's
    /// preferred node; by default the pinned vCPU's node, else node 0):
    /// `get_page_from_freelist()` walks `node_zonelist(nid, gfp)`, the local
    /// node's zones from the highest down, then each other node's by
    /// distance (`build_zonelists()`), calling `cond_accept_memory()` on
    /// each zone it reaches, so acceptance happens in the zone that gives
    /// the page, on its node.
    @discardableResult
    public func allocate(pages n: UInt64, use: PageUse, touch: Bool, clock: inout PhaseClock,
                         fullyAcceptedAt: inout Double?, onVCPU: Int? = nil, node preferred: Int? = nil) -> (UInt64, AcceptOutcome) {
        var left = n
        let nodeCPUs = preferred.map { numa.cpusOfNode[$0] } ?? []
        let cpus: [Int]? = onVCPU.map { [$0] } ?? (nodeCPUs.isEmpty ? nil : nodeCPUs)
        let order = zonelist(node: preferred ?? onVCPU.map { numa.cpuNode[$0] } ?? 0)
        // gfp_zone(): ZONE_MOVABLE for user pages, ZONE_NORMAL for the kernel's.
        let highest = use == .kernel ? ZoneKind.allCases.firstIndex(of: .normal)! : ZoneKind.movableIndex
        var kswapdWoken = false
        while left > 0 {
            var progressed = false
            for zi in order {
                let vcpu = cpus.map { Self.leastLoaded($0, clock) } ?? clock.leastLoadedVCPU
                let k = blocksToAccept(zone: zones[zi])
                if k > 0 {
                    let before = clock.vcpuPicoseconds[vcpu]
                    let o = acceptFromList(zone: zi, blocks: k, vcpu: vcpu, clock: &clock)
                    if o != .ok { return (n - left, o) }
                    // The allocation that found the zone short paid the accept on its own vCPU.
                    allocationStalls.stall(picoseconds: clock.vcpuPicoseconds[vcpu] - before)
                    onAcceptBatch?(clock)
                    if fullyAcceptedAt == nil, zones.allSatisfy({ !$0.hasUnaccepted }) { fullyAcceptedAt = clock.seconds(costs) }
                }
                // __zone_watermark_ok(): min plus lowmem_reserve[highest_zoneidx]
                // (ZONE_MOVABLE for user pages, ZONE_NORMAL for the kernel's), so
                // falling back into DMA32 and DMA leaves their reserve alone.
                let floor = watermarksReady ? zones[zi].watermarkMin + zones[zi].lowmemReserve[highest] : 0
                // The watermark failed and there was nothing to accept: the
                // zone grows by a section if it still has deferred pages.
                if zones[zi].acceptedFree <= floor, !zones[zi].hasUnaccepted, isDeferredZone(zi),
                   let o = growDeferredZone(node: zones[zi].node, vcpu: vcpu, clock: &clock) {
                    if o != .ok { return (n - left, o) }
                    progressed = true
                    break
                }
                guard zones[zi].acceptedFree > floor else { continue }
                let take = min(left, pagesUntilAccept(zone: zi, floor: floor))
                let o = handOut(take, zone: zi, use: use, touch: touch, vcpu: vcpu, clock: &clock)
                if o != .ok { return (n - left, o) }
                left -= take
                progressed = true
                kswapdWoken = false
                break
            }
            // __alloc_pages_slowpath(): no zone could give a page. Wake the
            // kswapds of the zonelist's nodes (each reclaims its node back to
            // the high watermark, so a streaming reader is served by kswapd,
            // one wake per high-min stretch); if they freed nothing since the
            // last page given, reclaim directly while that makes progress;
            // only then the OOM killer. The model's allocations run to the min
            // watermark, so kswapd is woken there rather than at low: the
            // pages it reclaims to reach high are the same.
            if !progressed, watermarksReady {
                if !kswapdWoken {
                    kswapdWoken = true
                    let before = reclaim.pgstealKswapd
                    wakeAllKswapds(zonelist: order, highest: highest, streaming: use == .pageCache ? left : 0, clock: &clock)
                    if reclaim.pgstealKswapd > before { continue }
                }
                let vcpu = cpus.map { Self.leastLoaded($0, clock) } ?? clock.leastLoadedVCPU
                if directReclaim(zonelist: order, wanted: left, highest: highest, vcpu: vcpu, clock: &clock) > 0 { continue }
            }
            if !progressed {
                events.append("page allocation failure: out of memory with \(left) pages still wanted")
                return (n - left, .ok)
            }
        }
        // The last allocations may have left every zone under its low
        // watermark: the next allocation's fast path would fail there and
        // wake kswapd, which rebalances the node while the workload goes on.
        if watermarksReady, fastPathFails(zonelist: order, highest: highest) {
            wakeAllKswapds(zonelist: order, highest: highest, clock: &clock)
        }
        return (n, .ok)
    }

    /// Pages zone `zi` can give above `floor` before the next allocation
    /// would find it short again and accept (at least 1): down to one page
    /// under the trigger of the kernel's policy (`blocksToAccept`).
    /// - Complexity: O(1).
    func pagesUntilAccept(zone zi: Int, floor: UInt64) -> UInt64 {
        let z = zones[zi]
        var step = z.acceptedFree - floor
        if z.hasUnaccepted {
            let v = config.version
            let trigger = v.unacceptedIsUnusableForWatermarks ? z.watermarkLow
                : (v.targetsPromoWatermark ? z.watermarkPromo : z.watermarkHigh)
            if trigger == 0 { step = 1 } else if z.acceptedFree >= trigger { step = min(step, z.acceptedFree - trigger + 1) }
            else { step = 1 }
        }
        return step
    }

    /// `rmqueue()` of `take` order-0 pages from zone `zi` for `use` on
    /// `vcpu` (hot-added pages first, as the buddy lists hold them), and
    /// their first touch.
    /// - Complexity: O(1) plus the hot-added ranges handed out.
    func handOut(_ take: UInt64, zone zi: Int, use: PageUse, touch: Bool, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        if zi == Self.hotplugZone, !unacceptedInBuddy.isEmpty {
            let o = handOutHotplugged(take, zone: zones[zi], touch: touch, vcpu: vcpu, clock: &clock)
            if o != .ok { return o }
        }
        zones[zi].freePages -= take
        allocationTally?[zi, default: 0] += take
        allocatedPages += take
        nodeUsage[zones[zi].node].add(take, use)
        if use == .pageCache { pageCachePages += take; zones[zi].filePages += take }
        if use == .kernel { kernelPages += take }
        if use == .hugetlb { hugetlbPages += take }
        if touch { clock.charge(.kernelTouchPage, take, vcpu: vcpu, costs: costs) }
        allocationStalls.allocations += take
        return .ok
    }

    /// The zone indices of node `nid`'s fallback zonelist
    /// (`build_zonelists_in_node_order()`): for each node in
    /// `NUMATopology.nodeOrder`, its Normal, DMA32 and DMA zones.
    /// One node: Normal, DMA32, DMA.
    public func zonelist(node nid: Int) -> [Int] {
        let kinds = ZoneKind.allCases.count
        return numa.nodeOrder[nid].flatMap { n in (0..<kinds).reversed().map { n * kinds + $0 } }
    }

    /// Allocates `pages` for a workload phase that runs on the guest's
    /// vCPUs: on one node (`node`, like `numactl --cpunodebind=N
    /// --preferred=N`: that node's CPUs, its zonelist), or, by default, on
    /// every vCPU, each node's CPUs allocating their share (pages in
    /// proportion to the node's vCPUs) from their local zonelist. A node
    /// without vCPUs (QEMU's default mapping puts every vCPU of a one-socket
    /// guest on node 0) is reached only through the fallback. One node:
    /// `allocate()` unchanged.
    @discardableResult
    public func allocateOnNodes(pages n: UInt64, use: PageUse, touch: Bool, clock: inout PhaseClock,
                                fullyAcceptedAt: inout Double?, node: Int? = nil, workload: Bool = false) -> (UInt64, AcceptOutcome) {
        // A workload phase's allocations may run as actors (`allocateWorkload`).
        func run(_ pages: UInt64, _ nid: Int?) -> (UInt64, AcceptOutcome) {
            workload ? allocateWorkload(pages: pages, use: use, touch: touch, clock: &clock, fullyAcceptedAt: &fullyAcceptedAt, node: nid)
                : allocate(pages: pages, use: use, touch: touch, clock: &clock, fullyAcceptedAt: &fullyAcceptedAt, node: nid)
        }
        if let node { return run(n, node) }
        guard !numa.isSingleNode else { return run(n, nil) }
        var got: UInt64 = 0
        for (nid, share) in Self.shares(n, cpusOfNode: numa.cpusOfNode.map(\.count)) where share > 0 {
            let (g, o) = run(share, nid)
            got += g
            if o != .ok { return (got, o) }
        }
        return (got, .ok)
    }

    /// `n` split over the nodes in proportion to their vCPUs, the remainder
    /// one page each to the first nodes with vCPUs.
    static func shares(_ n: UInt64, cpusOfNode: [Int]) -> [(node: Int, pages: UInt64)] {
        let total = UInt64(cpusOfNode.reduce(0, +))
        guard total > 0 else { return [(0, n)] }
        var out = cpusOfNode.enumerated().map { ($0.offset, n / total * UInt64($0.element) + (n % total) * UInt64($0.element) / total) }
        var rest = n - out.reduce(0) { $0 + $1.1 }
        for i in out.indices where rest > 0 && cpusOfNode[i] > 0 { out[i].1 += 1; rest -= 1 }
        return out.map { (node: $0.0, pages: $0.1) }
    }

    /// Page allocations before watermarks exist: each may accept a block
    /// (the Mar 2025 `if (!wmark)` path), the rest come from accepted memory.
    /// In `kernel_init_freeable()`'s order, all on the BSP: the calls
    /// before `smp_init()` (`preSMPAllocations`), `idle_threads_init()`'s
    /// idle forks for every AP, then each AP's bring-up (`SMPBringup`),
    /// after which the AP is online and idle, taking the periodic tick
    /// (`hz`) as one HLT exit each until the watermarks are set.
    public func earlyAllocations(clock: inout PhaseClock) -> AcceptOutcome {
        let accepted0 = unaccepted?.acceptedBytes ?? 0, pages0 = earlyAllocationPages
        defer {
            let mib = ((unaccepted?.acceptedBytes ?? 0) - accepted0) >> 20
            events.append("smp_init(): \(vcpus - 1) APs brought up; \(earlyAllocationPages - pages0) page allocations before init_per_zone_wmark_min() accepted \(mib) MiB on the BSP; idle APs took \(idleTickExits) ticks (HLT exits) at HZ=\(config.hz)"
                          + (deferredGrownSections > 0 ? "; deferred_grow_zone() initialised \(deferredGrownSections) sections" : ""))
        }
        // A recorder samples once per AP brought up, not per block: O(vCPUs) rows.
        let sample = onAcceptBatch
        onAcceptBatch = nil
        defer { onAcceptBatch = sample }
        var o = pageAllocatorCalls(config.preSMPAllocations, clock: &clock)
        sample?(clock)
        let aps = UInt64(max(0, vcpus - 1))
        let forksPerAP = UInt64(SMPBringup.threadsPerAP.count)
        // idle_threads_init(): one fork_idle() per AP before any comes up.
        if o == .ok { o = pageAllocatorCalls(SMPBringup.pageAllocatorCalls(forksBefore: 0, forks: aps), clock: &clock) }
        var online: [UInt64] = [0]
        var forks = aps
        for _ in 0..<aps where o == .ok {
            let calls = SMPBringup.pageAllocatorCalls(forksBefore: forks, forks: forksPerAP - 1)
            forks += forksPerAP - 1
            o = pageAllocatorCalls(calls, clock: &clock)
            online.append(clock.vcpuPicoseconds[0])
            // Up, the AP finds nothing to run and halts in `do_idle()`.
            idleVCPUs([online.count - 1])
            sample?(clock)
        }
        guard o == .ok else { return o }
        // Each AP idles from when it came up until the phase ends with the
        // BSP, halted between ticks (with idle=poll it spins: no HLT exits).
        let end = clock.vcpuPicoseconds[0]
        for ap in 1..<online.count where !config.idlePoll {
            let ticks = (end - online[ap]) / (1_000_000_000_000 / max(1, config.hz))
            clock.charge(.kernelIdleTickExit, ticks, vcpu: ap, costs: costs)
            idleTickExits += ticks
        }
        return .ok
    }

    /// `n` page-allocator calls on the BSP before watermarks exist.
    func pageAllocatorCalls(_ n: UInt64, clock: inout PhaseClock) -> AcceptOutcome {
        var never: Double? = nil
        var done: UInt64 = 0
        while done < n {
            // Without acceptance in play the allocations are plain; charge them in bulk.
            let accepting = zones.contains { $0.hasUnaccepted } && config.version.acceptsOneBlockWhileWatermarksZero
            let batch = accepting ? 1 : n - done
            // Which node gave them (several nodes only: the zonelist may fall back).
            let before = nodeUsage.count > 1 ? nodeUsage.map(\.allocated) : []
            let (got, o) = allocate(pages: batch, use: .anonymous, touch: false, clock: &clock, fullyAcceptedAt: &never, onVCPU: 0)
            if before.isEmpty { nodeUsage[0].kernelOwn += got } else {
                for n in nodeUsage.indices { nodeUsage[n].kernelOwn += nodeUsage[n].allocated - before[n] }
            }
            if o != .ok { return o }
            earlyAllocationPages += got
            if got < batch { break }
            done += batch
        }
        return .ok
    }

    // MARK: /proc views

    public var totalUnacceptedPages: UInt64 { zones.reduce(0) { $0 + $1.unacceptedPages } }
    public var totalFreePages: UInt64 { zones.reduce(0) { $0 + $1.freePages } }
    public var totalManagedPages: UInt64 { zones.reduce(0) { $0 + $1.managed } }

    /// `si_mem_available()`: free minus `totalreserve_pages` (each zone's
    /// high watermark and largest lowmem_reserve, capped at its managed
    /// pages), plus the page cache but the smaller of its half and the sum
    /// of the low watermarks (the empty Movable zone's low watermark counts
    /// too). Reclaimable slab is not modelled.
    public var memAvailablePages: UInt64 {
        let reserve = totalReservePages
        // for_each_zone(): every node's empty Movable zone adds its low watermark.
        let lowSum = zones.reduce(0) { $0 + $1.watermarkLow } + (watermarksReady ? emptyMovableZoneWatermark * UInt64(numa.nodeCount) : 0)
        var avail = Int64(totalFreePages) - Int64(reserve)
        avail += Int64(pageCachePages) - Int64(min(pageCachePages / 2, lowSum))
        return UInt64(max(0, avail))
    }

    /// The kernel's meminfo values in kB, keyed by their /proc/meminfo names.
    /// In `meminfo_proc_show()`'s order: ..., Cached, ..., AnonPages, ...,
    /// Unaccepted, Balloon (6.15+; no balloon driver runs in the model, so
    /// 0), then `hugetlb_report_meminfo()`'s block ending in Hugetlb.
    public var meminfo: [(String, UInt64)] {
        var rows: [(String, UInt64)] = [
            ("MemTotal", totalManagedPages * 4), ("MemFree", totalFreePages * 4), ("MemAvailable", memAvailablePages * 4),
            ("Cached", pageCachePages * 4), ("AnonPages", (allocatedPages - pageCachePages - hugetlbPages) * 4),
            ("Unaccepted", totalUnacceptedPages * 4)]
        if config.version.printsBalloonInMeminfo { rows.append(("Balloon", 0)) }
        rows.append(("Hugetlb", hugetlbPages * 4))
        return rows
    }

    /// `/proc/meminfo` lines (`show_val_kb()`: `%-16s%8lu kB` with the colon in the name).
    public var procMeminfo: String {
        meminfo.map { name, kb in
            let label = (name + ":").rightPadded(16)
            return label + String(kb).leftPadded(8) + " kB"
        }.joined(separator: "\n") + "\n"
    }

    /// `/sys/devices/system/node/node0/meminfo` (single node).
    public var nodeMeminfo: String {
        let rows: [(String, UInt64)] = [("MemTotal", totalManagedPages * 4), ("MemFree", totalFreePages * 4),
                                        ("Unaccepted", totalUnacceptedPages * 4)]
        var out = ""
        for (name, kb) in rows {
            let label: String = (name + ":").rightPadded(16)
            out += "Node 0 " + label + String(kb).leftPadded(8) + " kB\n"
        }
        return out
    }

    /// The zones of node `nid`.
    public func zones(ofNode nid: Int) -> ArraySlice<Zone> {
        let k = ZoneKind.allCases.count
        return zones[(nid * k)..<((nid + 1) * k)]
    }

    /// `node_read_meminfo()`'s lines the model keeps for node `nid`, in kB,
    /// in the kernel's order: MemTotal (`si_meminfo_node()`: the node's
    /// managed pages), MemFree (its zones' NR_FREE_PAGES), MemUsed, then
    /// FilePages, AnonPages and Unaccepted (`sum_zone_node_page_state(nid,
    /// NR_UNACCEPTED)`). AnonPages counts, as the global line does, every
    /// allocated page that is neither page cache nor hugetlb (`nodeUsage`:
    /// what `allocate()` took from the node's zones).
    /// - Complexity: O(zones).
    public func nodeMeminfoRows(node nid: Int) -> [(String, UInt64)] {
        let z = zones(ofNode: nid)
        let total = z.reduce(0) { $0 + $1.managed }, free = z.reduce(0) { $0 + $1.freePages }
        let u = nodeUsage[nid]
        return [("MemTotal", total * 4), ("MemFree", free * 4), ("MemUsed", (total - free) * 4),
                ("FilePages", u.pageCache * 4), ("AnonPages", (u.allocated - u.pageCache - u.hugetlb) * 4),
                ("Unaccepted", z.reduce(0) { $0 + $1.unacceptedPages } * 4)]
    }

    /// `/sys/devices/system/node/nodeN/meminfo` for every node: `Node %d
    /// MemTotal:       %8lu kB`.
    public var nodesMeminfo: String {
        var out = ""
        for nid in 0..<numa.nodeCount {
            for (name, v) in nodeMeminfoRows(node: nid) {
                out += "Node \(nid) " + (name + ":").rightPadded(16) + String(v).leftPadded(8) + " kB\n"
            }
        }
        return out
    }

    /// `/proc/vmstat` lines for the counters cocomem models.
    public var procVmstat: String {
        vmstat.map { "\($0.0) \($0.1)\n" }.joined()
    }

    /// The `/proc/vmstat` counters the model keeps, in `vmstat_text[]`'s
    /// order: the zone counters, then the reclaim events.
    public var vmstat: [(String, UInt64)] {
        [("nr_free_pages", totalFreePages), ("nr_unaccepted", totalUnacceptedPages)] + reclaim.rows
    }
}


/// Pages `allocate()` took from one node's zones, by use.
public struct NodeUsage: Sendable, Equatable {
    public var allocated: UInt64 = 0, pageCache: UInt64 = 0, hugetlb: UInt64 = 0
    /// The kernel's own pages on the node: `use: .kernel` allocations and
    /// the early page-allocator calls before watermarks exist
    /// (`pageAllocatorCalls`), as the global count is `kernelPages +
    /// earlyAllocationPages`. Where a vmcore lays them out (`AllocationPlacement`).
    public var kernelOwn: UInt64 = 0
    public init() {}
    mutating func add(_ pages: UInt64, _ use: PageUse) {
        allocated += pages
        if use == .pageCache { pageCache += pages }
        if use == .hugetlb { hugetlb += pages }
        if use == .kernel { kernelOwn += pages }
    }
}

/// The extra latency order-0 allocations paid accepting memory, kept per
/// event rather than per page: `allocations` counts every page `allocate()`
/// handed out; `stalls` holds, for each allocation that had to accept first
/// (the one that found `zone_watermark_ok()`'s check short and called
/// `cond_accept_memory()` / `try_to_accept_memory()`), the CPU time its vCPU
/// spent in `accept_page()` → `arch_accept_memory()`, in picoseconds. Every
/// other allocation paid nothing extra. O(acceptance events), never O(pages).
public struct AllocationStalls: Sendable, Equatable {
    /// Order-0 allocations made.
    public var allocations: UInt64 = 0
    /// Extra picoseconds of each allocation that accepted, in order.
    public private(set) var stalls: [UInt64] = []
    public init() {}
    /// A measurement as given (tests of the distribution built from it).
    package init(allocations: UInt64, stalls: [UInt64]) { self.allocations = allocations; self.stalls = stalls }
    mutating func stall(picoseconds: UInt64) { stalls.append(picoseconds) }
    /// The longest stall of any workload phase so far: kept whether or not a
    /// recorder takes the phases' distributions, so a figure built on it is
    /// the same with the record on or off. `foldWorkloadPhase()` adds the
    /// running phase's stalls.
    public private(set) var workloadMaxPicoseconds: UInt64 = 0
    public mutating func foldWorkloadPhase() { workloadMaxPicoseconds = max(workloadMaxPicoseconds, stalls.max() ?? 0) }
    /// Starts a new measurement (a new workload phase).
    public mutating func reset() { allocations = 0; stalls = [] }
}
