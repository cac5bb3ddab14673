package import MemoryModel

/// The TD's teardown as KVM drives it and the TDX module answers
/// (TDX_1.5.01; kvm-x86 `tdx_mmu_release_hkid()`, `tdx_sept_free_private_spt()`,
/// `tdx_reclaim_td_control_pages()`): the HKID is released, then every page
/// the TD owned is reclaimed.
extension TrustDomain {
    /// TDH.MNG.VPFLUSHDONE and TDH.MNG.KEY.FREEID (`tdx_mmu_release_hkid()`,
    /// after TDH.PHYMEM.CACHE.WB on every package): the TDR's lifecycle goes
    /// TD_KEYS_CONFIGURED → TD_BLOCKED → TD_TEARDOWN, after which
    /// TDH.PHYMEM.PAGE.RECLAIM succeeds on the TD's pages. No vCPU is
    /// associated any more (every vCPU fd is closed before). Not counted in
    /// `calls`, which tallies the memory-management leaves only (as
    /// `mrFinalize()`).
    /// - Complexity: O(vCPUs).
    @discardableResult
    public func releaseHKID() -> TDXStatus {
        guard lifecycle != .teardown else { return .lifecycleStateIncorrect }
        lifecycle = .teardown
        for v in vcpuEpoch.indices { vcpuEpoch[v] = nil }
        holds.removeAll()
        interruptPending = false
        return .success
    }

    /// TDH.PHYMEM.PAGE.RECLAIM of `n` pages at once, as `n` calls of
    /// `reclaim(hfn:)`: TDX_LIFECYCLE_STATE_INCORRECT unless the TD is in
    /// teardown.
    /// - Complexity: O(1).
    @discardableResult
    public func reclaim(pages n: UInt64) -> TDXStatus {
        let s: TDXStatus = lifecycle == .teardown ? .success : .lifecycleStateIncorrect
        calls.record(.phymemPageReclaim, s, n)
        return s
    }

    /// TDH.PHYMEM.PAGE.WBINVD of `n` pages whose host frames the model does
    /// not keep: a PD page PROMOTE freed (KVM flushes it before reuse) and
    /// the TDR at teardown (`tdh_phymem_page_wbinvd_tdr()`).
    /// - Complexity: O(1).
    public func wbinvd(untrackedPages n: UInt64) { calls.record(.phymemPageWbinvd, .success, n) }

    /// The S-EPT once all its pages have been reclaimed (each one's PAMT
    /// entry PT_NDA, `tdh_phymem_page_reclaim()`): no entry is left at any
    /// level, nor a host-priority bit or ACCEPT_COUNTER in one. Only in
    /// teardown, after KVM removed every leaf (`tdx_sept_remove_private_spte()`
    /// runs while the HKID is still assigned); returns false, changing
    /// nothing, otherwise.
    /// - Complexity: O(1) plus the maps' release.
    package func dropReclaimedSEPT() -> Bool {
        guard lifecycle == .teardown, !hasLeaves else { return false }
        pde = IntervalMap(initial: .free)
        pte = IntervalMap(initial: .free)
        pdpte = IntervalMap(initial: .free)
        pml4e = IntervalMap(initial: false)
        hostPriority4K = IntervalMap(initial: false)
        hostPriority2M = IntervalMap(initial: false)
        hostPriority1G = IntervalMap(initial: false)
        acceptCounter = IntervalMap(initial: 0)
        return true
    }

    /// True if any leaf (4K, 2M or 1G) is left in the S-EPT.
    /// - Complexity: O(runs).
    package var hasLeaves: Bool {
        pte.measure(in: .lowest ..< .highest) { $0.state.isLeaf } > 0
            || pde.measure(in: .lowest ..< .highest) { $0.state.isLeaf } > 0
            || pdpte.measure(in: .lowest ..< .highest) { $0.state.isLeaf } > 0
    }

    /// TDH.PHYMEM.PAMT.REMOVE on every 2M range of `ranges`, as
    /// `pamtRemove(range2M:)` on each would do; returns how many failed.
    /// - Complexity: O(runs in `ranges`).
    package func pamtRemove(ranges: Range<HostRegion2M>) -> UInt64 {
        let n = ranges.upperBound - ranges.lowerBound
        var failed = n - pamt4K.measure(in: ranges) { $0 }
        hpa4KInUse.forEachRun(in: ranges) { r, used in
            guard used > 0 else { return }
            failed += pamt4K.measure(in: r) { $0 }
        }
        var removable = IntervalMap<HostRegion2M, Bool>(initial: false)
        removable.assign(ranges, true)
        hpa4KInUse.forEachRun(in: ranges) { r, used in if used > 0 { removable.assign(r, false) } }
        removable.forEachRun(in: ranges) { r, ok in if ok { pamt4K.assign(r, false) } }
        calls.record(.phymemPamtRemove, .success, n - failed)
        calls.record(.phymemPamtRemove, .pageMetadataIncorrect, failed)
        return failed
    }
}
