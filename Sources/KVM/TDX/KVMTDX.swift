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
    /// Host pages for S-EPT tables come from a bump pool (never freed while
    /// the TD runs), placed as `KVMOptions.septPlacement` says; the
    /// refcount of a pool 2M range is the number of pool pages in it, so
    /// `tdx_pamt_get` PAMT.ADDs when a page opens a range.
    public private(set) var septPool: UInt64 = 0
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

    init(module: TrustDomain) { self.module = module }

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

    /// Takes the next S-EPT page from the pool; returns it and whether it
    /// opens a 2M host range (which then needs its PAMT_4K under DPAMT):
    /// contiguous pages open one range per 512, scattered pages one each.
    mutating func takePoolPage(_ placement: SEPTPlacement) -> (page: HostFrameNumber, opensRange: Bool) {
        let hfn = switch placement {
        case .contiguous: Self.septPoolBase + septPool
        case .scattered: Self.septPoolBase + septPool * PageLevel.size2M.pages
        }
        septPool += 1
        return (hfn, hfn.isAligned(to: .size2M))
    }

    /// Takes `n` pages from the pool at once, as `n` calls of
    /// `takePoolPage()` would; returns the 2M host ranges they open (those
    /// whose first page is among them), in pool order.
    /// - Complexity: O(1).
    mutating func takePoolPages(_ n: UInt64, _ placement: SEPTPlacement) -> Range<HostRegion2M> {
        if placement == .scattered {
            // Every page opens its own range, the next one up.
            let first = (Self.septPoolBase + septPool * PageLevel.size2M.pages).region2M
            septPool += n
            return first..<(first + n)
        }
        let first = Self.septPoolBase + septPool
        septPool += n
        let end = Self.septPoolBase + septPool
        // A range opens when its first (2M-aligned) page is taken.
        return first.alignedUp(toMultipleOf: PageLevel.size2M.pages).region2M..<end.alignedUp(toMultipleOf: PageLevel.size2M.pages).region2M
    }

    /// Bulk replay: the pool and split cache as a sequence of pool events
    /// left them (`TDXVM.replayPoolEvents`).
    mutating func setPool(pages: UInt64, splitCache cache: UInt64) {
        septPool = pages
        splitCache = cache
    }

    /// Takes one PAMT pair out of the split cache.
    mutating func dequeuePAMTPair() { splitCache -= TrustDomain.dpamtEntryPages }

    /// Fills the split cache up to its minimum; returns how many pages were added.
    mutating func fillSplitCache() -> UInt64 {
        let n = minSplitCache - splitCache
        splitCache += n
        return n
    }

    mutating func setRefcount(_ r: Range<HostRegion2M>, _ n: UInt32) { pamtRefcount.assign(r, n) }
}
