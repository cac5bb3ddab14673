public import MemoryModel
public import TDXModule

/// KVM's TDX glue state (`struct kvm_tdx`, `arch/x86/kvm/vmx/tdx.c`): the
/// TD in the TDX module it issues SEAMCALLs to, the Dynamic PAMT refcounts
/// of `tdx_pamt_get()`/`tdx_pamt_put()` (`arch/x86/virt/vmx/tdx/tdx.c`),
/// the S-EPT page pool and the per-VM external split cache.
public struct KVMTDX {
    /// The TD: KVM learns its state only from SEAMCALL return values.
    public let module: TrustDomain
    /// `tdx_pamt_get/put` refcount per 2M host region for guest memory;
    /// the S-EPT page pool's refcounts are derived (see `septPool`).
    public private(set) var pamtRefcount = IntervalMap<HostRegion2M, UInt32>(initial: 0)
    /// S-EPT pages taken from the host allocator and not freed. KVM frees
    /// none while the TD runs ("KVM doesn't (yet) zap page table pages in
    /// mirror page table while TD is active", `tdx_sept_free_private_spt()`),
    /// except the host-file command `promote` (a PD page PROMOTE to 1G
    /// returns); all of them at teardown. The refcount of a 2M range holding
    /// them is the number of allocator pages in it, so `tdx_pamt_get`
    /// PAMT.ADDs when a page opens a range.
    public var septPool: UInt64 { allocatorTaken - controlPages - freedWhileRunning }
    /// S-EPT pages given back to the host allocator while the TD runs (a
    /// successful `promote`, never under Dynamic PAMT). The allocator model
    /// is a counter: it does not hand them out again [assumption: the
    /// buddy allocator's per-CPU list would give the most recently freed
    /// page to the next order-0 request on that CPU].
    public private(set) var freedWhileRunning: UInt64 = 0
    /// TDX control pages taken from the host allocator when the TD and its
    /// vCPUs were created: TDR, TDCS, and per vCPU TDVPR and TDCX.
    public private(set) var controlPages: UInt64 = 0
    /// Every page taken from the host allocator (control and S-EPT pages),
    /// in allocation order: the allocator's whole state with the placement.
    public private(set) var allocatorTaken: UInt64 = 0
    /// Where the allocator puts its pages, and under `.buddy` how many
    /// isolated free 4K pages it hands out first.
    public let placement: SEPTPlacement
    public let isolatedFreePages: UInt64
    /// Pages held by the per-VM external split cache.
    public private(set) var splitCache: UInt64 = 0
    /// `kvm_tdx->state == TD_STATE_RUNNABLE`: set once TDH.MR.FINALIZE
    /// succeeded. KVM keeps its own copy; it never reads the module's.
    public private(set) var isRunnable = false

    /// Host frame of the S-EPT page pool, above all guest memory: frame
    /// 2^41 (8 PiB; a placement, not a page shift). guest_memfd lays the
    /// largest guest (4 PiB, above the 32-bit hole) out below 4 PiB + 3 GiB
    /// of host frames, so the pool's 2M ranges (and their Dynamic PAMT) never
    /// share a range with guest memory.
    static let septPoolBase = HostFrameNumber(1 << 41)
    /// Host frame of the buddy placement's isolated free pages, one per 2M
    /// range from here (2^41 + 2^40: above any contiguous run of pages).
    static let isolatedBase = HostFrameNumber(1 << 41 | 1 << 40)

    init(module: TrustDomain, placement: SEPTPlacement = .contiguous, isolatedFreePages: UInt64 = 0) {
        self.module = module
        self.placement = placement
        self.isolatedFreePages = placement == .buddy ? isolatedFreePages : 0
    }

    /// Host pages allocated for DPAMT: those installed in the module and
    /// those waiting in the split cache.
    public var pamtPagesAllocated: UInt64 { module.pamtPages + splitCache }

    /// `tdx_min_split_cache_sz()`: 2 PAMT pairs per 2M split under DPAMT
    /// (the new S-EPT page's range and the demoted guest range), else 0.
    var minSplitCache: UInt64 { module.features.dynamicPAMT ? 2 * TrustDomain.dpamtEntryPages : 0 }

    /// KVM_TDX_FINALIZE_VM (`tdx_td_finalize()`): TDH.MR.FINALIZE, and the
    /// TD is runnable if it succeeded.
    mutating func finalize() -> TDXStatus {
        let s = module.mrFinalize()
        if s == .success { isRunnable = true }
        return s
    }

    /// The host frame of the allocator's page number `p` (0-based, in
    /// allocation order).
    func allocatorFrame(_ p: UInt64) -> HostFrameNumber {
        let rangePages = PageLevel.size2M.pages
        switch placement {
        case .contiguous: return Self.septPoolBase + p
        case .scattered: return Self.septPoolBase + p * rangePages
        case .buddy: return p < isolatedFreePages ? Self.isolatedBase + p * rangePages : Self.septPoolBase + (p - isolatedFreePages)
        }
    }

    /// Whether the allocator's page number `p` is the first TD page of its
    /// 2M host range (so `tdx_pamt_get()` for it installs the range's PAMT).
    func allocatorPageOpensRange(_ p: UInt64) -> Bool { allocatorFrame(p).isAligned(to: .size2M) }

    /// The allocator's state before page `p` that decides which later pages
    /// open a range: the offset in the current 2M range, or, for an isolated
    /// page of `.buddy`, the page number itself (those never repeat).
    func allocatorPhase(_ p: UInt64) -> (isolated: Bool, offset: UInt64) {
        switch placement {
        case .scattered: (false, 0)
        case .contiguous: (false, p % PageLevel.size2M.pages)
        case .buddy: p < isolatedFreePages ? (true, p) : (false, (p - isolatedFreePages) % PageLevel.size2M.pages)
        }
    }

    /// Takes the next S-EPT page from the host allocator; returns it and
    /// whether it opens a 2M host range (which then needs its PAMT_4K under
    /// DPAMT).
    mutating func takePoolPage() -> (page: HostFrameNumber, opensRange: Bool) {
        let hfn = allocatorFrame(allocatorTaken)
        allocatorTaken += 1
        return (hfn, hfn.isAligned(to: .size2M))
    }

    /// Takes `n` S-EPT pages at once, as `n` calls of `takePoolPage()`
    /// would; returns the 2M host ranges they open (at most two runs: the
    /// isolated pages' and the contiguous ones'), in allocation order.
    /// - Complexity: O(1).
    mutating func takePoolPages(_ n: UInt64) -> [Range<HostRegion2M>] {
        takeAllocatorPages(n)
    }

    /// Takes `n` TDX control pages (TDR, TDCS, TDVPR, TDCX) from the host
    /// allocator; returns the 2M ranges they open.
    /// - Complexity: O(1).
    mutating func takeControlPages(_ n: UInt64) -> [Range<HostRegion2M>] {
        controlPages += n
        return takeAllocatorPages(n)
    }

    private mutating func takeAllocatorPages(_ n: UInt64) -> [Range<HostRegion2M>] {
        let p = allocatorTaken, end = p + n
        allocatorTaken = end
        let rangePages = PageLevel.size2M.pages
        func contiguousOpened(_ a: UInt64, _ b: UInt64) -> Range<HostRegion2M> {
            // A range opens when its first (2M-aligned) page is taken.
            (Self.septPoolBase + a).alignedUp(toMultipleOf: rangePages).region2M..<(Self.septPoolBase + b).alignedUp(toMultipleOf: rangePages).region2M
        }
        func isolatedOpened(_ base: HostFrameNumber, _ a: UInt64, _ b: UInt64) -> Range<HostRegion2M> {
            (base + a * rangePages).region2M..<(base + b * rangePages).region2M
        }
        var out: [Range<HostRegion2M>]
        switch placement {
        case .contiguous: out = [contiguousOpened(p, end)]
        case .scattered: out = [isolatedOpened(Self.septPoolBase, p, end)]
        case .buddy:
            let s = isolatedFreePages
            out = [isolatedOpened(Self.isolatedBase, min(p, s), min(end, s)), contiguousOpened(max(p, s) - s, max(end, s) - s)]
        }
        return out.filter { !$0.isEmpty }
    }

    /// The 2M host ranges the allocator's pages occupy so far (each has had
    /// its PAMT installed under DPAMT), as at most two runs.
    /// - Complexity: O(1).
    public var allocatorRanges: [Range<HostRegion2M>] {
        var copy = self
        copy.allocatorTaken = 0
        return copy.takeAllocatorPages(allocatorTaken)
    }

    /// Bulk replay: the split cache as a sequence of pool events left it
    /// (`TDXVM.replayPoolEvents`; the pages go through `takePoolPages`).
    mutating func setSplitCache(_ cache: UInt64) { splitCache = cache }

    /// Takes one PAMT pair out of the split cache.
    mutating func dequeuePAMTPair() { splitCache -= TrustDomain.dpamtEntryPages }

    /// Fills the split cache up to its minimum; returns how many pages were added.
    mutating func fillSplitCache() -> UInt64 {
        let n = minSplitCache - splitCache
        splitCache += n
        return n
    }

    mutating func setRefcount(_ r: Range<HostRegion2M>, _ n: UInt32) { pamtRefcount.assign(r, n) }

    /// One S-EPT page back to the host allocator while the TD runs.
    mutating func freePoolPageWhileRunning() { freedWhileRunning += 1 }

    /// How many of the allocator's pages lie in the 2M host range `r`: the
    /// refcount `tdx_pamt_get()` gave the range for them (and the
    /// `tdx_pamt_put()` calls that take it back to 0).
    /// - Complexity: O(1).
    func allocatorPages(in r: HostRegion2M) -> UInt64 {
        let taken = allocatorTaken, rangePages = PageLevel.size2M.pages
        func contiguous(_ n: UInt64) -> UInt64 {
            let lo = max(r.firstFrame, Self.septPoolBase), hi = min(r.frames.upperBound, Self.septPoolBase + n)
            return hi > lo ? hi - lo : 0
        }
        func isolated(_ base: HostFrameNumber, _ n: UInt64) -> UInt64 {
            r >= base.region2M && r < (base + n * rangePages).region2M ? 1 : 0
        }
        switch placement {
        case .contiguous: return contiguous(taken)
        case .scattered: return isolated(Self.septPoolBase, taken)
        case .buddy:
            let s = isolatedFreePages
            return isolated(Self.isolatedBase, min(taken, s)) + contiguous(taken > s ? taken - s : 0)
        }
    }

    /// Teardown: every allocator page (S-EPT and control pages), the split
    /// cache's pages and the guest ranges' refcounts are gone.
    mutating func releaseAll() {
        allocatorTaken = 0
        controlPages = 0
        freedWhileRunning = 0
        splitCache = 0
        pamtRefcount = IntervalMap(initial: 0)
    }
}
