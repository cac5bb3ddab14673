import CostModel
import MemoryModel
import TDXModule

/// Context-dependent host-page events, recorded while a chunk is stepped so
/// that bulk replay can re-run them in the same order.
enum PoolEvent: Hashable {
    case septPage(viaSplitCache: Bool)
    /// A page for a PD or PDPT linked above the chunk (`link_external_spt`
    /// at the 1G or 512G level): context work, done only by the first
    /// chunk of a region without the table.
    case upperTablePage
    case splitTopup
    case dequeueGuestPair

    /// A pool page taken outside the split path: its only effect is the
    /// pool's count (and a PAMT.ADD when it opens a 2M range), so any
    /// number of them can be taken at once.
    var isPlainPage: Bool {
        switch self {
        case .septPage(let via): !via
        case .upperTablePage: true
        case .splitTopup, .dequeueGuestPair: false
        }
    }
}

/// The TDX glue of KVM (`arch/x86/kvm/vmx/tdx.c`) and the host kernel's
/// TDX helpers (`arch/x86/virt/vmx/tdx/tdx.c`) that the MMU hooks call:
/// the SEAMCALL wrappers, the S-EPT page pool with `tdx_pamt_get/put`,
/// the split cache, and the S-EPT side of split and zap. Their state is
/// `KVMTDX`; these run as part of the VM's flows, counting operations.
extension TDXVM {
    // MARK: SEAMCALL helpers

    /// What the fault path makes of the status of a SEAMCALL that maps
    /// (`tdx_mem_page_aug()`, `tdx_sept_link_private_spt()`): nil on
    /// success; TDX_OPERAND_BUSY is -EBUSY, which `kvm_tdp_mmu_map()` turns
    /// into RET_PF_RETRY; any other status is `TDX_BUG_ON_2()`: the VM is
    /// bugged (`kvm_vm_bugged()`, every later ioctl returns -EIO) and the
    /// fault fails with -EIO.
    func mappingFailure(_ s: TDXStatus, _ leaf: String, at gfn: GuestFrameNumber) -> FaultResult? {
        switch s {
        case .success: return nil
        case .operandBusy: return .retry
        default:
            kill(.vmBugged("TDX_BUG_ON: \(leaf) \(s) at \(gfn.address)"))
            return .failed("EIO: \(leaf) \(s)")
        }
    }

    /// `tdh_do_no_vcpus()`: on TDX_OPERAND_BUSY, block TDH.VP.ENTER, kick
    /// every vCPU out of the guest, and call once more ("guaranteed to
    /// succeed, absent KVM and/or TDX-Module bugs").
    func doNoVCPUs(_ f: () -> TDXStatus) -> TDXStatus {
        let s = f()
        guard s == .operandBusy else { return s }
        counters.bump(.noVCPURetries)
        kick()
        return f()
    }

    /// `kvm_make_all_cpus_request(KVM_REQ_OUTSIDE_GUEST_MODE)`: an IPI to,
    /// and a wait for, each vCPU in guest mode; halted vCPUs (`halt(vcpu:)`)
    /// are outside guest mode and get none.
    func kick() {
        let n = module.kickAll()
        kickCalls += 1
        addKicks(UInt64(n))
    }

    /// `n` kicks, tallied as context work: how many vCPUs a kick reaches
    /// depends on the vCPUs' modes, not on the chunk being worked on, so a
    /// memoised step keeps its `kick()` calls and replay counts the kicks
    /// with the vCPUs in guest mode then (`ChunkMemo.kickCalls`).
    func addKicks(_ n: UInt64) {
        guard n > 0 else { return }
        counters.bump(.vcpuKicks, n); contextCounters.bump(.vcpuKicks, n)
        ops.add(.kvmVCPUKick, n); contextOps.add(.kvmVCPUKick, n)
    }

    /// `tdx_track()`: TRACK (retried with no vCPUs in the guest), then kick
    /// every vCPU in guest mode so none stays in the old epoch.
    func tdxTrack() -> TDXStatus {
        let s = doNoVCPUs { module.track() }
        ops.add(.tdxTrack)
        if s == .success { kick() }
        return s
    }

    /// Arms the module-level conditions an injected fault stands for.
    func armModuleFaults(for leaf: SEAMCALLLeaf, gfn: GuestFrameNumber, level: PageLevel) {
        switch leaf {
        case .memPageDemote:
            if faults.fire(.demoteBusy) { module.hold(.guestEntry(gfn: gfn, level: level), vcpu: 0) }
            if faults.fire(.demoteInterrupt) { module.raiseHostInterrupt() }
        case .memRangeBlock:
            if faults.fire(.blockBusy) { module.hold(.treeLock, vcpu: 0) }
        case .memTrack:
            if faults.fire(.trackEpochBusy) { module.lag(vcpu: 0) }
        default: break
        }
    }

    // MARK: Host pages and Dynamic PAMT

    /// Allocates an S-EPT page from the pool and, under DPAMT, runs
    /// `tdx_pamt_get()` for it: the pool range's refcount is the number of
    /// pool pages in it, so PAMT.ADD happens when the page opens a 2M range.
    /// In the split path the PAMT pair comes from the split cache.
    func allocSeptPage(viaSplitCache: Bool) -> HostFrameNumber {
        if recordingPoolEvents { poolEvents.append(.septPage(viaSplitCache: viaSplitCache)) }
        return takeSeptPage(viaSplitCache: viaSplitCache)
    }

    /// `allocSeptPage` for a PD or PDPT page (recorded as context work).
    func allocUpperTablePage() -> HostFrameNumber {
        if recordingPoolEvents { poolEvents.append(.upperTablePage) }
        return takeSeptPage(viaSplitCache: false)
    }

    private func takeSeptPage(viaSplitCache: Bool) -> HostFrameNumber {
        let (hfn, opensRange) = tdx.takePoolPage()
        if module.features.dynamicPAMT && opensRange {
            if viaSplitCache { tdx.dequeuePAMTPair() }
            let s = module.pamtAdd(range2M: hfn.region2M)
            contextCalls.record(.phymemPamtAdd, s)
            ops.add(.tdxPamtAdd)
            contextOps.add(.tdxPamtAdd)
        }
        return hfn
    }

    /// `n` pool pages outside the split path at once: exactly what `n`
    /// `allocSeptPage(viaSplitCache: false)` calls do, PAMT.ADD for every 2M
    /// pool range they open included, in O(log runs).
    func takeSeptPages(_ n: UInt64) {
        pamtAddPoolRanges(tdx.takePoolPages(n))
    }

    /// The TDX control pages KVM allocates for the TD and its vCPUs, each
    /// with `tdx_alloc_control_page()` (`tdx_pamt_get()` under DPAMT) from
    /// the same host allocator as the S-EPT pages: at KVM_TDX_INIT_VM
    /// (`__tdx_td_init()`) the TDR and `tdcs_base_size / PAGE_SIZE` TDCS
    /// pages, at KVM_TDX_INIT_VCPU (`tdx_td_vcpu_init()`) per vCPU the TDVPR
    /// and `tdvps_base_size / PAGE_SIZE - 1` TDCX pages
    /// (`TrustDomain.controlPages`). The SEAMCALLs that hand them to the
    /// module (TDH.MNG.CREATE, TDH.MNG.ADDCX, TDH.VP.CREATE, TDH.VP.ADDCX)
    /// are not modelled; their PAMT.ADDs are.
    func allocateControlPages() {
        let n = TrustDomain.controlPages(vcpus: module.vcpuEpoch.count)
        // Before the TD runs: nothing to charge to a vCPU, no replay memo to keep.
        for opened in tdx.takeControlPages(n) where module.features.dynamicPAMT { _ = module.pamtAdd(ranges: opened) }
    }

    /// PAMT.ADD (under DPAMT) for 2M pool ranges a run of pool pages opened.
    func pamtAddPoolRanges(_ runs: [Range<HostRegion2M>]) {
        for opened in runs { pamtAddPoolRun(opened) }
    }

    private func pamtAddPoolRun(_ opened: Range<HostRegion2M>) {
        guard module.features.dynamicPAMT, !opened.isEmpty else { return }
        let n = opened.upperBound - opened.lowerBound
        let notFree = module.pamtAdd(ranges: opened)
        contextCalls.record(.phymemPamtAdd, .success, n - notFree)
        contextCalls.record(.phymemPamtAdd, .hpaRangeNotFree, notFree)
        ops.add(.tdxPamtAdd, n)
        contextOps.add(.tdxPamtAdd, n)
    }

    /// `tdx_pamt_get()` for a guest page mapped at 4K: the first user of a
    /// 2M host range installs its PAMT_4K with PAMT.ADD and takes the
    /// refcount 0 → 1. TDX_HPA_RANGE_NOT_FREE means the PAMT_4K is still
    /// installed (a concurrent `tdx_pamt_put()` took the refcount to 0
    /// outside `pamt_lock` and has not removed it yet): the refcount is set
    /// to 1, which makes that put skip its PAMT.REMOVE, and the call
    /// succeeds (DPAMT v4 P08 "Optimize tdx_alloc/free_page() helpers").
    /// Any other status fails the call with -EIO.
    func pamtGet(hfn: HostFrameNumber) -> TDXStatus {
        guard module.features.dynamicPAMT else { return .success }
        let r = hfn.region2M
        let n = tdx.pamtRefcount.value(at: r)
        if n == 0 {
            let s = module.pamtAdd(range2M: r)
            ops.add(.tdxPamtAdd)
            switch s {
            case .success: break
            case .hpaRangeNotFree: note("tdx_pamt_get: PAMT.ADD \(s) at \(r.firstFrame.address): PAMT_4K still installed, refcount 0 -> 1")
            default: return s
            }
        }
        tdx.setRefcount(r.only, n + 1)
        return .success
    }

    /// `tdx_pamt_put()`: the last user removes the range's PAMT_4K; a
    /// failed PAMT.REMOVE re-takes the reference and warns loudly (v3 P18).
    func pamtPut(hfn: HostFrameNumber) {
        guard module.features.dynamicPAMT else { return }
        let r = hfn.region2M
        let n = tdx.pamtRefcount.value(at: r)
        guard n > 0 else { flag("tdx_pamt_put underflow at host frame \(hfn.address)"); return }
        if n > 1 { tdx.setRefcount(r.only, n - 1); return }
        let s = module.pamtRemove(range2M: r)
        ops.add(.tdxPamtRemove)
        if s == .success {
            tdx.setRefcount(r.only, 0)
        } else {
            note("WARN: tdx_pamt_put: PAMT.REMOVE failed \(s) for host range \(r.firstFrame.address)")
        }
    }

    /// Steps 2.1–2.2: if the cache is below the minimum, drop `mmu_lock`,
    /// allocate and enqueue, re-take it. Returns false on -ENOMEM.
    func topUpSplitCache() -> Bool {
        if recordingPoolEvents { poolEvents.append(.splitTopup) }
        guard tdx.splitCache < tdx.minSplitCache else { return true }
        if faults.fire(.splitCacheTopupNoMem) { return false }
        _ = tdx.fillSplitCache()
        counters.bump(.splitCacheTopups)
        contextCounters.bump(.splitCacheTopups)
        return true
    }

    /// `alloc_pamt_array()` from the split cache (`tdx_alloc_page_pamt_cache()`
    /// never falls back to the page allocator): one PAMT pair for the guest
    /// range DEMOTE is given, or false if the cache holds less than a pair.
    func dequeueGuestPair() -> Bool {
        if recordingPoolEvents { poolEvents.append(.dequeueGuestPair) }
        guard module.features.dynamicPAMT, tdx.splitCache >= TrustDomain.dpamtEntryPages else { return false }
        tdx.dequeuePAMTPair()
        return true
    }

    /// `tdh_mem_page_demote()` of the DPAMT huge-page series (v3, and
    /// Sean Christopherson's squash "KVM: TDX: ... demote"): under DPAMT it
    /// takes a fresh PAMT pair from the split cache on every call
    /// (TDX_SW_ERROR, without a SEAMCALL, if the cache is short), frees the
    /// pair to the page allocator (not back to the cache) when the SEAMCALL
    /// fails, and on success sets the guest range's refcount with
    /// `WARN_ON_ONCE(atomic_cmpxchg_release(refcount, 0, PTRS_PER_PMD))`:
    /// a refcount that is not 0 is warned about and left as it is.
    /// With the out-of-tree restartable loop [11] it repeats the SEAMCALL
    /// with the same pair while it is interrupted.
    func tdhMemPageDemote(gfn: GuestFrameNumber, pageHFN: HostFrameNumber) -> TDXStatus {
        let dpamt = module.features.dynamicPAMT
        if dpamt && !dequeueGuestPair() {
            note("tdh_mem_page_demote: split cache empty: TDX_SW_ERROR")
            return .swError
        }
        var d = module.demote(gfn: gfn, level: .size2M, pageHFN: pageHFN, pamtPagesGiven: dpamt)
        while d == .interruptedRestartable && options.demoteRestartableLoop {
            d = module.demote(gfn: gfn, level: .size2M, pageHFN: pageHFN, pamtPagesGiven: dpamt)
        }
        ops.add(.tdxDemote2M)
        guard dpamt else { return d }
        if d != .success {
            note("tdh_mem_page_demote: \(d): PAMT pair freed")
            return d
        }
        let r = hfn(gfn).region2M
        if tdx.pamtRefcount.value(at: r) == 0 {
            tdx.setRefcount(r.only, UInt32(PageLevel.size2M.pages))
        } else {
            note("WARN: tdh_mem_page_demote: PAMT refcount of \(r.firstFrame.address) is \(tdx.pamtRefcount.value(at: r)), not 0: left as it is")
        }
        return d
    }

    // MARK: Split

    /// Splits the 2M private leaf at chunk `c` under the write `mmu_lock`:
    /// `tdp_mmu_split_huge_pages_root()` → `tdx_sept_split_private_spte()`
    /// (steps 1, 2.1–2.2, 3.1–3.6 of the v3 cover letter). Returns an errno
    /// name on failure; a DEMOTE error other than BUSY bugs the VM.
    ///
    /// The mirror changes before the S-EPT does: `tdp_mmu_split_huge_page()`
    /// fills the new 4K table with 512 present children and
    /// `tdp_mmu_set_spte()` writes it into the mirror, then calls
    /// `split_external_spte()` and ignores its result (v3 07/24). So after a
    /// failed BLOCK, TRACK or DEMOTE the mirror already holds the 4K table
    /// while the S-EPT keeps the (blocked) 2M leaf, in a VM that is bugged.
    func splitPrivate(chunk c: GuestRegion2M, cause: SplitCause) -> String? {
        let gfn = c.firstFrame
        // 1) tdp_mmu_alloc_sp_for_split(), with the external_spt page.
        if faults.fire(.splitAllocNoMem) { return "ENOMEM" }
        // 2.1/2.2) top up the per-VM split cache outside the lock.
        guard topUpSplitCache() else { return "ENOMEM" }
        // 3) tdp_mmu_split_huge_page() → tdp_mmu_set_spte(): the mirror first.
        mmu.setMirror2M(c.only, .table)
        mmu.setMirror4K(c.frames, true)
        // 3.2/3.3) the new S-EPT page, its PAMT pair dequeued from the cache.
        let page = allocSeptPage(viaSplitCache: true)
        // 3.1) BLOCK, TRACK.
        guard blockAndTrackForSplit(gfn, .size2M) else { return "EIO" }
        // 3.4–3.6) DEMOTE (its PAMT pair and the refcount 0 → 512 inside
        // tdh_mem_page_demote()), retried once with no vCPUs on BUSY.
        armModuleFaults(for: .memPageDemote, gfn: gfn, level: .size2M)
        let d = doNoVCPUs { tdhMemPageDemote(gfn: gfn, pageHFN: page) }
        guard d == .success else {
            kill(.vmBugged("TDX_BUG_ON: TDH.MEM.PAGE.DEMOTE \(d) at \(gfn.address)"))
            return "EIO"
        }
        counters.bump(cause.counter)
        note("split 2M \(gfn.address) (\(cause.rawValue)): BLOCK, TRACK, DEMOTE")
        return nil
    }

    /// Step 3.1 of a split: BLOCK (with no vCPUs on BUSY) and TRACK; a
    /// failure bugs the VM.
    func blockAndTrackForSplit(_ gfn: GuestFrameNumber, _ level: PageLevel) -> Bool {
        armModuleFaults(for: .memRangeBlock, gfn: gfn, level: level)
        let b = doNoVCPUs { module.rangeBlock(gfn: gfn, level: level) }
        ops.add(.tdxBlock)
        guard b == .success else { kill(.vmBugged("TDH.MEM.RANGE.BLOCK \(b) splitting \(gfn.address)")); return false }
        armModuleFaults(for: .memTrack, gfn: gfn, level: level)
        let t = tdxTrack()
        guard t == .success else { kill(.vmBugged("TDH.MEM.TRACK \(t)")); return false }
        return true
    }

    /// Splits the 1G private leaf of region `r` into 512 2M leaves, as
    /// `splitPrivate` does a 2M one (forward-looking: v3's
    /// `tdx_sept_split_private_spte()` has `KVM_BUG_ON(level != PG_LEVEL_2M)`;
    /// the module's TDH.MEM.PAGE.DEMOTE has the 1G level). The new S-EPT
    /// page is a PD, its PAMT pair (when it opens a 2M host range) from the
    /// split cache; DEMOTE at 1G needs no PAMT pages for the guest range
    /// (PAMT_2M is static), so no guest pair is dequeued. The mirror holds
    /// the PD with 512 2M leaves before the S-EPT changes, as at 2M.
    func splitPrivate1G(region r: GuestRegion1G, cause: SplitCause) -> String? {
        let gfn = r.firstFrame
        if faults.fire(.splitAllocNoMem) { return "ENOMEM" }
        guard topUpSplitCache() else { return "ENOMEM" }
        mmu.setMirror1G(r.only, false)
        mmu.linkPD(r.only)
        mmu.setMirror2M(r.frames.covering2M, .leaf)
        let page = allocSeptPage(viaSplitCache: true)
        guard blockAndTrackForSplit(gfn, .size1G) else { return "EIO" }
        armModuleFaults(for: .memPageDemote, gfn: gfn, level: .size1G)
        let d = doNoVCPUs {
            var d = module.demote(gfn: gfn, level: .size1G, pageHFN: page, pamtPagesGiven: false)
            while d == .interruptedRestartable && options.demoteRestartableLoop {
                d = module.demote(gfn: gfn, level: .size1G, pageHFN: page, pamtPagesGiven: false)
            }
            ops.add(.tdxDemote1G)
            return d
        }
        guard d == .success else {
            kill(.vmBugged("TDX_BUG_ON: TDH.MEM.PAGE.DEMOTE \(d) at \(gfn.address) (1G)"))
            return "EIO"
        }
        counters.bump(cause.counter)
        private1G.splits += 1
        note("split 1G \(gfn.address) (\(cause.rawValue)): BLOCK, TRACK, DEMOTE to 2M")
        return nil
    }

    /// `kvm_split_cross_boundary_leafs()`: splits the private leaves that
    /// straddle the boundaries of `frames` (only the first and last 1G
    /// region and 2M chunk can): a 1G leaf to 2M first, then a 2M leaf
    /// (perhaps one the 1G split made) to 4K.
    /// - Complexity: O(1) splits, O(log runs) lookups.
    func splitCrossBoundaryLeafs(_ frames: Range<GuestFrameNumber>, cause: SplitCause) -> String? {
        guard !frames.isEmpty else { return nil }
        var regions: [GuestRegion1G] = [frames.lowerBound.region1G]
        let lastRegion = (frames.upperBound - 1).region1G
        if lastRegion != regions[0] { regions.append(lastRegion) }
        for r in regions where mmu.mirror1G.value(at: r) {
            let inside = frames.lowerBound <= r.frames.lowerBound && r.frames.upperBound <= frames.upperBound
            if !inside, let e = splitPrivate1G(region: r, cause: cause) { return e }
        }
        var candidates: [GuestRegion2M] = [frames.lowerBound.region2M]
        let last = (frames.upperBound - 1).region2M
        if last != candidates[0] { candidates.append(last) }
        for c in candidates where mmu.mirror2M.value(at: c) == .leaf {
            let inside = frames.lowerBound <= c.frames.lowerBound && c.frames.upperBound <= frames.upperBound
            if !inside, let e = splitPrivate(chunk: c, cause: cause) { return e }
        }
        return nil
    }

    // MARK: Zap

    /// `tdx_sept_remove_private_spte()` for every private leaf in `frames`
    /// (which must not cut a 2M leaf): BLOCK, TRACK, REMOVE, WBINVD per 4K,
    /// `tdx_quirk_reset_folio()`, and `tdx_pamt_put()` for 4K leaves. A
    /// failure is a KVM_BUG_ON.
    func zapPrivate(_ frames: Range<GuestFrameNumber>) {
        guard !frames.isEmpty else { return }
        for (r, leaf) in mmu.mirror1G.runs(in: frames.covering1G) where leaf {
            for g in r { zapLeaf(gfn: g.firstFrame, level: .size1G); if isDead { return } }
            mmu.setMirror1G(r, false)
        }
        for (r, e) in mmu.mirror2M.runs(in: frames.covering2M) {
            switch e {
            case .none: continue
            case .leaf:
                zapLeaves(r.frames, level: .size2M)
                if isDead { return }
                mmu.setMirror2M(r, .none)
            case .table:
                let lo = max(frames.lowerBound, r.frames.lowerBound), hi = min(frames.upperBound, r.frames.upperBound)
                for (rr, present) in mmu.mirror4K.runs(in: lo..<hi) where present {
                    zapLeaves(rr, level: .size4K)
                    if isDead { return }
                    mmu.setMirror4K(rr, false)
                }
            }
        }
    }

    /// `zapLeaf` of each leaf at `level` (4K or 2M) of `frames` in address
    /// order, with the same result done in bulk where it can be: the first
    /// leaf is stepped (it meets whatever the vCPUs and locks are: a lagging
    /// vCPU's BUSY TRACK and the kick that retries it, a held entry), and
    /// that leaves every vCPU in guest mode in the current epoch and no lock
    /// held; then, when the TDX module says every remaining leaf would be
    /// removed without a failure or retry (`TrustDomain.bulkZapRuns`) and,
    /// under Dynamic PAMT, no 2M host range's refcount would reach 0 before
    /// its last leaf (`tdx_pamt_put()`'s PAMT.REMOVE comes at that leaf, so
    /// it is issued once there), the rest are removed at once with the
    /// counts, kicks and epochs stepping gives; otherwise they are stepped.
    /// A range converted to shared is thousands of leaves (256 MiB of
    /// SWIOTLB is 65536 4K leaves): each BLOCK, TRACK with its kicks, and
    /// REMOVE is still counted and charged.
    /// - Complexity: O(runs × log runs + 2M host ranges), O(leaves) stepping.
    func zapLeaves(_ frames: Range<GuestFrameNumber>, level: PageLevel) {
        guard !frames.isEmpty else { return }
        zapLeaf(gfn: frames.lowerBound, level: level)
        let rest = (frames.lowerBound + level.pages)..<frames.upperBound
        guard !isDead, !rest.isEmpty else { return }
        if !stepsZaps, let runs = module.bulkZapRuns(rest, level: level), let puts = bulkPAMTPuts(runs, level: level) {
            let kicked = UInt64(vcpusInGuestMode)
            let k = module.removeLeavesInBulk(runs, level: level)
            ops.add(.tdxBlock, k)
            ops.add(.tdxTrack, k)
            ops.add(.kvmVCPUKick, k * kicked)
            counters.bump(.vcpuKicks, k * kicked)
            ops.add(.tdxRemove, k)
            ops.add(.tdxWbinvd4K, k * level.pages)
            counters.bump(level == .size4K ? .zapsPrivate4K : .zapsPrivate2M, k)
            for (r, left) in puts {
                if left > 0 { tdx.setRefcount(r.only, left); continue }
                // The range's last leaf: tdx_pamt_put() from a refcount of 1.
                tdx.setRefcount(r.only, 1)
                pamtPut(hfn: r.firstFrame)
            }
            bulkZappedLeaves += k
            return
        }
        var g = rest.lowerBound
        while g < rest.upperBound {
            zapLeaf(gfn: g, level: level)
            if isDead { return }
            g = g + level.pages
        }
    }

    /// What `tdx_pamt_put()` of each 4K leaf of `runs` does, by 2M host
    /// range in address order: the refcount left (0: the last put issues
    /// PAMT.REMOVE). Nil when a range's refcount is below its leaves (a put
    /// would underflow, or a failed PAMT.REMOVE would be retried by the next
    /// put): those are stepped. Empty without Dynamic PAMT or at 2M
    /// (`zapLeaf` puts only 4K leaves).
    /// - Complexity: O(2M host ranges × log runs).
    func bulkPAMTPuts(_ runs: [TrustDomain.LeafRun], level: PageLevel) -> [(HostRegion2M, UInt32)]? {
        guard module.features.dynamicPAMT, level == .size4K else { return [] }
        var out: [(HostRegion2M, UInt32)] = []
        var index: [HostRegion2M: Int] = [:]
        for run in runs {
            var h = run.firstHFN
            let end = run.firstHFN + run.frames.length
            while h < end {
                let r = h.region2M
                let next = min(end, r.frames.upperBound)
                let m = UInt32(next - h)
                if let i = index[r] { out[i].1 += m } else { index[r] = out.count; out.append((r, m)) }
                h = next
            }
        }
        for i in out.indices {
            let n = tdx.pamtRefcount.value(at: out[i].0)
            guard n >= out[i].1 else { return nil }
            out[i].1 = n - out[i].1
        }
        return out
    }

    func zapLeaf(gfn: GuestFrameNumber, level: PageLevel) {
        let b = doNoVCPUs { module.rangeBlock(gfn: gfn, level: level) }
        ops.add(.tdxBlock)
        // TDX_BUG_ON_2() on any non-zero status, the ALREADY_BLOCKED warning included.
        guard b == .success else { kill(.vmBugged("TDX_BUG_ON: TDH.MEM.RANGE.BLOCK \(b) at \(gfn.address)")); return }
        guard tdxTrack() == .success else { kill(.vmBugged("KVM_BUG_ON: TRACK failed")); return }
        let (s, h) = doNoVCPUsRemove(gfn: gfn, level: level)
        ops.add(.tdxRemove)
        guard s == .success, let h else { kill(.vmBugged("KVM_BUG_ON: REMOVE \(s) at \(gfn.address)")); return }
        module.wbinvd(hfn: h, pages: level.pages)
        ops.add(.tdxWbinvd4K, level.pages)
        switch level {
        case .size4K: pamtPut(hfn: h); counters.bump(.zapsPrivate4K)
        case .size2M: counters.bump(.zapsPrivate2M)
        case .size1G: private1G.zaps += 1
        }
    }

    func doNoVCPUsRemove(gfn: GuestFrameNumber, level: PageLevel) -> (TDXStatus, HostFrameNumber?) {
        var h: HostFrameNumber?
        let s = doNoVCPUs { let r = module.remove(gfn: gfn, level: level); h = r.hfn; return r.0 }
        return (s, h)
    }

    /// Records a result the seed 004 reviewers call broken.
    func flag(_ s: String) {
        if !brokenOutcomes.contains(s) { brokenOutcomes.append(s) }
        note("BROKEN: \(s)")
    }
}
