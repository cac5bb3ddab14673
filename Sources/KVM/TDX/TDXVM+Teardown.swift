import CostModel
public import MemoryModel
public import TDXModule

/// S-EPT pages given back to the host: by a PROMOTE to 1G (the host-file
/// command `promote`) and at teardown (`destroy`), issue 18 §1 and §3.
public struct SEPTFreeStats: Equatable, Sendable {
    /// PROMOTEs to 1G that merged a PD's 512 2M leaves into a 1G leaf.
    public var promoted1G: UInt64 = 0
    /// PROMOTEs to 1G the module refused (TDX_EPT_INVALID_PROMOTE_CONDITIONS
    /// or TDX_OPERAND_BUSY: -EAGAIN, the PDPT entry UNBLOCKed again).
    public var promoteRefused: UInt64 = 0
    /// S-EPT pages freed while the TD ran (one PD page per merge).
    public var septPagesFreedRunning: UInt64 = 0
    /// Whether the VM was destroyed, and what its teardown reclaimed.
    public var destroyed = false
    public var septPagesReclaimed: UInt64 = 0
    public var controlPagesReclaimed: UInt64 = 0
    /// PAMT.REMOVEs of the 2M host ranges the S-EPT and control pages held
    /// (Dynamic PAMT).
    public var allocatorPAMTRemoves: UInt64 = 0
    /// Guest pages guest_memfd's release freed.
    public var guestPagesFreed: UInt64 = 0
    /// Host committed memory just before the teardown.
    public var committedPagesBefore: UInt64 = 0
    public init() {}
    /// Whether there is anything to report.
    public var any: Bool { promoted1G + promoteRefused > 0 || destroyed }
}

/// What `hostPromote1G` did with one 1G region.
public enum PromoteOutcome: Equatable, Sendable {
    case merged
    /// KVM's own conditions on the mirror do not hold (no PD, not 512 2M
    /// leaves, not a 1G folio, not all private): no SEAMCALL.
    case notMergeable(String)
    /// The module refused (status): the PDPT entry was unblocked again.
    case refused(TDXStatus)
    /// BLOCK was busy: nothing changed.
    case busy
    case failed
}

extension TDXVM {
    // MARK: PROMOTE to 1G

    /// A merge of the 512 2M private leaves of 1G region `r` into one 1G
    /// leaf, as the host-file command `promote` asks (forward-looking, with
    /// a module mapping private memory at 1G: `TDXModuleFeatures.privateMappings1G`).
    ///
    /// No KVM path calls TDH.MEM.PAGE.PROMOTE: kvm-x86's `tdx.c` has no
    /// caller, and the TDX huge-page series (Yan Zhao, v3) disallows
    /// promotion (cover letter §7: the module needs all 512 children alike,
    /// PROMOTE needs a BLOCK first, whose BUSY is hard to handle under the
    /// shared `mmu_lock`). The flow here is the one of the only KVM code that
    /// had it, Isaku Yamahata's TDX large-page series (v7, January 2024,
    /// "KVM: TDX: Implement merge pages into a large page"): block the
    /// parent entry (`tdx_sept_zap_private_spte()`: TDH.MEM.RANGE.BLOCK),
    /// TRACK with the kicks (`tdx_track()`), `tdx_sept_merge_private_spt()`:
    /// TDH.MEM.PAGE.PROMOTE repeated while TDX_INTERRUPTED_RESTARTABLE, BUSY
    /// or TDX_EPT_INVALID_PROMOTE_CONDITIONS ("some pages are accepted, some
    /// pending") is -EAGAIN and the entry is unblocked
    /// (`tdx_sept_unzap_private_spte()`: TDH.MEM.RANGE.UNBLOCK), any other
    /// error a KVM_BUG_ON; on success TDH.PHYMEM.PAGE.WBINVD of the freed
    /// S-EPT page and the page freed. That series merged at whatever level
    /// the TDP MMU asked; here the level is 1G (the module's level 2). KVM's
    /// own conditions are those of its mirror: a linked PD of 512 present 2M
    /// leaves, over a 1G folio, all private. GUEST_INHIBIT at 1G (which
    /// every 2M ACCEPT sets under v3) is not consulted: the command is the
    /// host's choice to merge, and a KVM honouring GUEST_INHIBIT never would.
    ///
    /// Not under Dynamic PAMT: the freed page's `tdx_free_control_page()`
    /// runs `tdx_pamt_put()` on the page's own 2M host range, and the model
    /// keeps the allocator as a counter, not which page each table has
    /// (the caller refuses the command there).
    /// - Complexity: O(log runs).
    public func hostPromote1G(_ r: GuestRegion1G) -> PromoteOutcome {
        precondition(!module.features.dynamicPAMT, "promote is refused under Dynamic PAMT")
        let g = r.firstFrame, chunks = r.frames.covering2M
        guard mmu.mirrorPD.value(at: r) else { return .notMergeable("no PD: not mapped below 1G") }
        guard mmu.mirror2M.allSatisfy(in: chunks, { $0 == .leaf }) else { return .notMergeable("not 512 2M leaves") }
        guard let s = slot(g), r.frames.upperBound <= s.frames.upperBound, gmemMaxLevel(g) == .size1G else {
            return .notMergeable("not one 1G folio")
        }
        guard attributes.allPrivate(r.frames) else { return .notMergeable("not all private") }
        counters.bump(.writeLockAcquisitions)
        let b = module.rangeBlock(gfn: g, level: .size1G)
        ops.add(.tdxBlock)
        if b == .operandBusy { return .busy }
        guard b == .success else { kill(.vmBugged("KVM_BUG_ON: TDH.MEM.RANGE.BLOCK \(b) at \(g.address) (1G)")); return .failed }
        guard tdxTrack() == .success else { kill(.vmBugged("KVM_BUG_ON: TRACK failed")); return .failed }
        var p = module.promote(gfn: g, level: .size1G)
        while p == .interruptedRestartable { p = module.promote(gfn: g, level: .size1G) }
        switch p {
        case .success:
            // The PD page, PT_NDA in the PAMT now: WBINVD with the TD's key, cleared, freed.
            module.wbinvd(untrackedPages: 1)
            ops.add(.tdxWbinvd4K)
            mmu.unlinkPD(r.only)
            mmu.setMirror1G(r.only, true)
            tdx.freePoolPageWhileRunning()
            septFree.promoted1G += 1
            septFree.septPagesFreedRunning += 1
            note("promote 1G \(g.address): BLOCK, TRACK, PROMOTE, WBINVD and free the PD page")
            return .merged
        case .operandBusy, .eptInvalidPromoteConditions:
            let u = module.rangeUnblock(gfn: g, level: .size1G)
            guard u == .success else { kill(.vmBugged("KVM_BUG_ON: TDH.MEM.RANGE.UNBLOCK \(u) at \(g.address) (1G)")); return .failed }
            septFree.promoteRefused += 1
            note("promote 1G \(g.address): PROMOTE \(p): -EAGAIN, UNBLOCK")
            return .refused(p)
        default:
            kill(.vmBugged("KVM_BUG_ON: TDH.MEM.PAGE.PROMOTE \(p) at \(g.address)"))
            return .failed
        }
    }

    // MARK: Teardown

    /// `kvm_destroy_vm()` of the TD once the VMM has closed its file
    /// descriptors (QEMU exiting), in kvm-x86's order:
    /// 1. guest_memfd's release (`kvm_gmem_release()` → `kvm_mmu_unmap_gfn_range()`,
    ///    while the HKID is still assigned): every private leaf removed as a
    ///    conversion removes it (BLOCK, TRACK, REMOVE, WBINVD, `tdx_pamt_put()`
    ///    for 4K leaves; in bulk where `zapLeaves` can), the shared root's
    ///    leaves zapped, the file's folios freed; the VMM's own shared memory
    ///    goes with the process;
    /// 2. `tdx_mmu_release_hkid()`: TDH.MNG.VPFLUSHDONE, TDH.PHYMEM.CACHE.WB,
    ///    TDH.MNG.KEY.FREEID (`TrustDomain.releaseHKID()`; not counted);
    /// 3. the mirror root's page tables (`kvm_tdp_mmu_zap_all()` →
    ///    `handle_removed_pt()` → `tdx_sept_free_private_spt()`): per S-EPT
    ///    page TDH.PHYMEM.PAGE.RECLAIM (`tdx_reclaim_page()`), the page reset,
    ///    `tdx_free_control_page()` (DPAMT v4+: `tdx_pamt_put()`, PAMT.REMOVE
    ///    when the page's 2M range's refcount reaches 0) and the page back to
    ///    the allocator; the split cache's pages freed;
    /// 4. the vCPUs (`tdx_vcpu_free()`: TDCX pages, TDVPR) and the TD
    ///    (`tdx_reclaim_td_control_pages()`: TDCS pages, then the TDR, with
    ///    TDH.PHYMEM.PAGE.WBINVD of the TDR), each with
    ///    `tdx_reclaim_control_page()`: RECLAIM and `tdx_free_control_page()`.
    ///
    /// KVM frees no S-EPT page before this ("KVM doesn't (yet) zap page table
    /// pages in mirror page table while TD is active",
    /// `tdx_sept_free_private_spt()`), so it never issues TDH.MEM.SEPT.REMOVE:
    /// a range's leaves zapped leave its empty table in both trees.
    /// Steps 3 and 4 are done in bulk (one count of RECLAIMs, PAMT.REMOVE per
    /// run of 2M ranges) unless `stepsZaps`, which steps every page and every
    /// `tdx_pamt_put()`; both give the same state and counts. Time is not
    /// charged (no calibrated cost for RECLAIM).
    /// - Complexity: O(runs) in bulk, O(pages) stepped.
    public func destroy() {
        guard !septFree.destroyed, !isDead else { return }
        septFree.committedPagesBefore = committedPages
        let guestPages = gmem.allocatedPages
        for s in slots {
            zapPrivate(s.frames)
            if isDead { return }
        }
        _ = mmu.zapShared(.lowest ..< .highest)
        for s in slots { gmem.free(s.frames, order: s.backing.order) }
        vmmShared = IntervalMap(initial: false)
        module.releaseHKID()
        let sept = tdx.septPool, control = tdx.controlPages
        let removes = reclaimAllocatorPages()
        // The TDR's TDH.PHYMEM.PAGE.WBINVD (`tdh_phymem_page_wbinvd_tdr()`).
        module.wbinvd(untrackedPages: 1)
        ops.add(.tdxWbinvd4K)
        guard module.dropReclaimedSEPT() else {
            kill(.vmBugged("teardown: private leaves left in the S-EPT after guest_memfd's release"))
            return
        }
        mmu = TDPMirrorMMU()
        tdx.releaseAll()
        septFree.destroyed = true
        septFree.septPagesReclaimed = sept
        septFree.controlPagesReclaimed = control
        septFree.allocatorPAMTRemoves = removes
        septFree.guestPagesFreed = guestPages
        note("destroy: \(sept) S-EPT and \(control) control pages reclaimed, \(removes) PAMT.REMOVE, \(guestPages) guest pages freed")
    }

    /// Steps 3 and 4 of `destroy()`: RECLAIM of every S-EPT and control page
    /// and, under Dynamic PAMT, `tdx_pamt_put()` of each, in bulk or (with
    /// `stepsZaps`) page by page. Returns the successful PAMT.REMOVEs.
    func reclaimAllocatorPages() -> UInt64 {
        let n = tdx.septPool + tdx.controlPages
        let dpamt = module.features.dynamicPAMT
        var removed: UInt64 = 0
        if stepsZaps {
            // S-EPT pages (allocated after the control pages) first, then the control pages.
            let order = Array(tdx.controlPages..<tdx.allocatorTaken) + Array(0..<tdx.controlPages)
            var left: [HostRegion2M: UInt64] = [:]
            for (i, p) in order.enumerated() where UInt64(i) < n {
                let h = tdx.allocatorFrame(p)
                _ = module.reclaim(hfn: h)
                guard dpamt else { continue }
                let r = h.region2M
                let k = (left[r] ?? tdx.allocatorPages(in: r)) - 1
                left[r] = k
                guard k == 0 else { continue }
                if module.pamtRemove(range2M: r) == .success { removed += 1 }
                ops.add(.tdxPamtRemove)
            }
        } else {
            module.reclaim(pages: n)
            guard dpamt else { return 0 }
            for run in tdx.allocatorRanges {
                let k = run.upperBound - run.lowerBound
                removed += k - module.pamtRemove(ranges: run)
                ops.add(.tdxPamtRemove, k)
            }
        }
        return removed
    }
}
