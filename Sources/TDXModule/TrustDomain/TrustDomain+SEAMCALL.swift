public import MemoryModel

/// Host SEAMCALLs on the S-EPT, following `seamcall_sept_state_lookup`
/// (which states each leaf accepts) and the checks in
/// `src/vmm_dispatcher/api_calls/tdh_mem_*.c` of intel/tdx-module.
extension TrustDomain {
    /// TDH.MEM.SEPT.ADD: links a new S-EPT page (at host frame `pageHFN`)
    /// below the entry at `entryLevel` (2 = 2M entry gets a 4K table,
    /// 3 = 1G entry gets a PD, 4 = 512G entry gets a PDPT).
    /// - Complexity: O(log runs).
    public func septAdd(gfn: GuestFrameNumber, entryLevel: Int, pageHFN: HostFrameNumber) -> TDXStatus {
        if busy(gfn: gfn, level: .size2M) && entryLevel == 2 { return record(.memSeptAdd, .operandBusy) }
        switch entryLevel {
        case 4:
            guard !pml4e.value(at: gfn.region512G) else { return record(.memSeptAdd, .eptEntryStateIncorrect) }
            pml4e.assign(gfn.region512G.only, true)
        case 3:
            guard pml4e.value(at: gfn.region512G) else { return record(.memSeptAdd, .eptWalkFailed) }
            guard pdpte.value(at: gfn.region1G).state == .free else { return record(.memSeptAdd, .eptEntryStateIncorrect) }
            pdpte.assign(gfn.region1G.only, SEPTEntry(.nlMapped))
        case 2:
            guard upperPresent(gfn) else { return record(.memSeptAdd, .eptWalkFailed) }
            let c = gfn.region2M
            hostLocked(gfn: gfn, level: .size2M)
            guard pde.value(at: c).state == .free else { return record(.memSeptAdd, .eptEntryStateIncorrect) }
            pde.assign(c.only, SEPTEntry(.nlMapped))
            pte.assign(c.frames, .free)
        default:
            return record(.memSeptAdd, .operandInvalid)
        }
        return record(.memSeptAdd, .success)
    }

    /// TDH.MEM.PAGE.ADD: a 4K page of the initial image, MAPPED at once
    /// (4K only; KVM issues it only before the TD is runnable).
    /// - Complexity: O(log runs).
    public func pageAdd(gfn: GuestFrameNumber, hfn: HostFrameNumber) -> TDXStatus {
        guard upperPresent(gfn), pde.value(at: gfn.region2M).state == .nlMapped else { return record(.memPageAdd, .eptWalkFailed) }
        guard pte.value(at: gfn).state == .free else { return record(.memPageAdd, .eptEntryStateIncorrect) }
        pte.assign(gfn.only, SEPTEntry(.mapped, mapping: gfn, to: hfn))
        adjustInUse(hfn: hfn, pages: 1, by: 1)
        return record(.memPageAdd, .success)
    }

    /// TDH.MEM.PAGE.AUG: a FREE entry at 4K or 2M (and at 1G with
    /// `features.privateMappings1G`, forward-looking: TDX_1.5.01's
    /// `verify_page_info_input(gpa, LVL_PT, LVL_PD)` refuses 1G) becomes
    /// PENDING with the host range `hfn` (`check_and_lock_free_range_hpa`
    /// over the level's size). The walk must reach the level.
    /// - Complexity: O(log runs).
    public func pageAug(gfn: GuestFrameNumber, level: PageLevel, hfn: HostFrameNumber) -> TDXStatus {
        guard level != .size1G || features.privateMappings1G, gfn.isAligned(to: level), hfn.isAligned(to: level) else {
            return record(.memPageAug, .operandInvalid)
        }
        if busy(gfn: gfn, level: level) { return record(.memPageAug, .operandBusy) }
        guard level == .size1G ? walkReaches(gfn, level) : upperPresent(gfn) else { return record(.memPageAug, .eptWalkFailed) }
        switch level {
        case .size1G, .size2M:
            hostLocked(gfn: gfn, level: level)
            guard entry(gfn: gfn, level: level).state == .free else { return record(.memPageAug, .eptEntryStateIncorrect) }
        case .size4K:
            guard walksTo4K(gfn) else { return record(.memPageAug, .eptWalkFailed) }
            hostLocked(gfn: gfn, level: level)
            guard pte.value(at: gfn).state == .free else { return record(.memPageAug, .eptEntryStateIncorrect) }
            adjustInUse(hfn: hfn, pages: 1, by: 1)
        }
        setEntry(gfn: gfn, level: level, SEPTEntry(.pending, mapping: gfn, to: hfn))
        return record(.memPageAug, .success)
    }

    /// TDH.MEM.RANGE.BLOCK: NL_MAPPED → NL_BLOCKED, MAPPED → BLOCKED,
    /// PENDING → PENDING_BLOCKED, recording the current epoch as BEPOCH.
    /// Takes the tree lock exclusive.
    /// - Complexity: O(log runs).
    public func rangeBlock(gfn: GuestFrameNumber, level: PageLevel) -> TDXStatus {
        if busy(gfn: gfn, level: level) { return record(.memRangeBlock, .operandBusy) }
        guard walkReaches(gfn, level) else { return record(.memRangeBlock, .eptWalkFailed) }
        hostLocked(gfn: gfn, level: level)
        var e = entry(gfn: gfn, level: level)
        if e.state.isBlocked { return record(.memRangeBlock, .gpaRangeAlreadyBlocked) }
        guard e.state != .free else { return record(.memRangeBlock, .eptEntryStateIncorrect) }
        e.state = e.state.blocked
        e.bepoch = tdEpoch
        setEntry(gfn: gfn, level: level, e)
        cleanupIfPending(gfn: gfn, level: level)
        return record(.memRangeBlock, .success)
    }

    /// TDH.MEM.RANGE.UNBLOCK: back to the unblocked state, once tracked
    /// where TLB tracking is required: `tdh_mem_range_unblock()` checks
    /// BEPOCH only if `sept_state_is_tlb_tracking_required(entry) &&
    /// op_state_is_tlb_tracking_required(op_state)`, and the build phase
    /// (OP_STATE_INITIALIZED) requires none. Linux's TDX glue never issues
    /// it (a blocked private entry is always removed or demoted next); the
    /// module has it, and tests cover it.
    /// - Complexity: O(log runs).
    public func rangeUnblock(gfn: GuestFrameNumber, level: PageLevel) -> TDXStatus {
        if busy(gfn: gfn, level: level) { return record(.memRangeUnblock, .operandBusy) }
        guard walkReaches(gfn, level) else { return record(.memRangeUnblock, .eptWalkFailed) }
        hostLocked(gfn: gfn, level: level)
        var e = entry(gfn: gfn, level: level)
        guard e.state.isBlocked else { return record(.memRangeUnblock, .eptEntryStateIncorrect) }
        if lifecycle == .runnable && !isTracked(e.bepoch) { return record(.memRangeUnblock, .tlbTrackingNotDone) }
        e.state = e.state.unblocked; e.bepoch = 0
        setEntry(gfn: gfn, level: level, e)
        return record(.memRangeUnblock, .success)
    }

    /// TDH.MEM.TRACK: increments TD_EPOCH unless a vCPU still runs in the
    /// previous epoch.
    /// - Complexity: O(vCPUs).
    public func track() -> TDXStatus {
        if vcpuEpoch.contains(where: { $0 != nil && $0! < tdEpoch }) { return record(.memTrack, .previousTLBEpochBusy) }
        tdEpoch += 1
        return record(.memTrack, .success)
    }

    /// `secure_ept_walk()` reaches the 4K level for `gfn`: it stops at a leaf
    /// or a non-present (RWX=0: FREE, NL_BLOCKED) entry, and a walk to level
    /// that stops above the requested level is TDX_EPT_WALK_FAILED
    /// (`lock_sept_check_and_walk_internal()`).
    func walksTo4K(_ gfn: GuestFrameNumber) -> Bool {
        upperPresent(gfn) && pde.value(at: gfn.region2M).state == .nlMapped
    }

    /// The running-TD precondition of REMOVE, DEMOTE and PROMOTE: blocked and tracked.
    func requireBlockedAndTracked(_ e: SEPTEntry) -> TDXStatus? {
        guard lifecycle == .runnable else { return nil }
        guard e.state.isBlocked else { return .gpaRangeNotBlocked }
        guard isTracked(e.bepoch) else { return .tlbTrackingNotDone }
        return nil
    }

    /// TDH.MEM.PAGE.DEMOTE of a 2M leaf into 512 4K leaves, or (with
    /// `features.privateMappings1G`) of a 1G leaf into 512 2M leaves, in the
    /// parent's unblocked state (no UNBLOCK needed), the parent becoming
    /// NL_MAPPED over the new S-EPT page at `pageHFN`. Under DPAMT a 2M
    /// demote needs the 2 PAMT pages the host passes (`pamtPagesGiven`) for
    /// the guest range's PAMT_4K (`pamt_demote`); a 1G demote splits the
    /// PAMT_1G entry into PAMT_2M entries, which Dynamic PAMT keeps static,
    /// so it needs none.
    ///
    /// Checks in `tdh_mem_page_demote()`'s order: the walk to the level
    /// (`lock_sept_check_and_walk_private_gpa()`), the host-side entry lock
    /// (BUSY), the state (`sept_state_is_seamcall_leaf_allowed()`), blocked
    /// and tracked while the TD runs, and only then (step 4, before
    /// `pamt_demote()`) a pending host interrupt: TDX_INTERRUPTED_RESTARTABLE
    /// with nothing done, unless the module has ENHANCED_DEMOTE_INTERRUPTIBILITY.
    /// - Complexity: O(log runs).
    public func demote(gfn: GuestFrameNumber, level: PageLevel, pageHFN: HostFrameNumber, pamtPagesGiven: Bool) -> TDXStatus {
        guard level == .size2M || (level == .size1G && features.privateMappings1G), gfn.isAligned(to: level) else {
            return record(.memPageDemote, .operandInvalid)
        }
        if busy(gfn: gfn, level: level) { return record(.memPageDemote, .operandBusy) }
        guard walkReaches(gfn, level) else { return record(.memPageDemote, .eptWalkFailed) }
        hostLocked(gfn: gfn, level: level)
        let e = entry(gfn: gfn, level: level)
        guard e.state.isLeaf else { return record(.memPageDemote, .eptEntryStateIncorrect) }
        if let s = requireBlockedAndTracked(e) { return record(.memPageDemote, s) }
        if interruptPending && !features.enhancedDemoteInterruptibility {
            interruptPending = false
            return record(.memPageDemote, .interruptedRestartable)
        }
        let hfn = e.hfn(at: gfn)
        if level == .size1G {
            pdpte.assign(gfn.region1G.only, SEPTEntry(.nlMapped))
            pde.assign(gfn.region1G.frames.covering2M, SEPTEntry(e.state.unblocked, hfnDelta: e.hfnDelta))
            return record(.memPageDemote, .success)
        }
        let c = gfn.region2M
        cleanupIfPending(gfn: gfn, level: level)
        if features.dynamicPAMT {
            guard pamtPagesGiven else { return record(.memPageDemote, .operandInvalid) }
            if !pamt4K.value(at: hfn.region2M) { installPAMT(hfn.region2M) }
        }
        pde.assign(c.only, SEPTEntry(.nlMapped))
        pte.assign(c.frames, SEPTEntry(e.state.unblocked, hfnDelta: e.hfnDelta))
        adjustInUse(hfn: hfn, pages: 512, by: 1)
        return record(.memPageDemote, .success)
    }

    /// TDH.MEM.PAGE.PROMOTE: a 4K table whose 512 children are uniformly
    /// MAPPED or uniformly PENDING over a contiguous, 2M-aligned host range
    /// becomes one 2M leaf; the S-EPT page (and under DPAMT the range's 2
    /// PAMT pages) are returned. At 1G (`level == .size1G`, the module's
    /// level 2, LVL_PDPT: `verify_page_info_input(gpa, LVL_PD, LVL_PDPT)`)
    /// a PD whose 512 2M children are likewise uniform over a contiguous,
    /// 1G-aligned host range becomes one 1G leaf (`promote1G`). TDX_1.5.01
    /// has the 1G level whatever the module's AUG can map: it is not behind
    /// `features.privateMappings1G`. `tdh_mem_page_promote()` checks the
    /// pending host interrupt last (step 3, after the merge conditions),
    /// unconditionally: TDX_INTERRUPTED_RESTARTABLE with nothing merged.
    /// - Complexity: O(log runs).
    public func promote(gfn: GuestFrameNumber, level: PageLevel) -> TDXStatus {
        guard level != .size4K, gfn.isAligned(to: level) else { return record(.memPagePromote, .operandInvalid) }
        if busy(gfn: gfn, level: level, childrenToo: true) { return record(.memPagePromote, .operandBusy) }
        guard walkReaches(gfn, level) else { return record(.memPagePromote, .eptWalkFailed) }
        if level == .size1G { return promote1G(gfn) }
        let c = gfn.region2M
        hostLocked(gfn: gfn, level: level)
        hostLockedChildren(of: c)
        let e = pde.value(at: c)
        guard e.state.isNonLeaf else { return record(.memPagePromote, .eptEntryStateIncorrect) }
        if let s = requireBlockedAndTracked(e) { return record(.memPagePromote, s) }
        let run = pte.run(containing: gfn)
        let child = run.value
        guard run.range.lowerBound <= gfn, run.range.upperBound >= c.frames.upperBound,
              child.state == .mapped || child.state == .pending,
              child.hfn(at: gfn).isAligned(to: .size2M)
        else { return record(.memPagePromote, .eptInvalidPromoteConditions) }
        if interruptPending {
            interruptPending = false
            return record(.memPagePromote, .interruptedRestartable)
        }
        let hfn = child.hfn(at: gfn)
        pde.assign(c.only, SEPTEntry(child.state, hfnDelta: child.hfnDelta))
        pte.assign(c.frames, .free)
        adjustInUse(hfn: hfn, pages: 512, by: -1)
        if features.dynamicPAMT && pamt4K.value(at: hfn.region2M) { removePAMT(hfn.region2M) }
        return record(.memPagePromote, .success)
    }

    /// TDH.MEM.PAGE.PROMOTE at 1G, past the walk and BUSY checks: the
    /// PDPT entry must be a non-leaf (`sept_state_is_seamcall_leaf_allowed()`),
    /// blocked and tracked while the TD runs; `is_sept_page_valid_for_merge()`
    /// locks the PD's 512 entries (clearing their host-priority bits) and
    /// needs the first one MAPPED or PENDING over a 1G-aligned host address
    /// and every other one equal to it but for a host address 2 MiB further
    /// (`sept_cleanup_if_pending()` on the copies: ACCEPT_COUNTERs do not
    /// count); then the pending host interrupt (step 3). The 1G entry
    /// becomes the first child's leaf (unblocked, as the children are);
    /// `pamt_promote()` merges the PAMT_2M entries into the PAMT_1G entry,
    /// which Dynamic PAMT keeps static, so no PAMT pages move; the PD page's
    /// PAMT entry becomes PT_NDA and the page is returned to the host.
    /// - Complexity: O(log runs).
    func promote1G(_ gfn: GuestFrameNumber) -> TDXStatus {
        let r = gfn.region1G
        let children = r.frames.covering2M
        hostLocked(gfn: gfn, level: .size1G)
        let e = pdpte.value(at: r)
        guard e.state.isNonLeaf else { return record(.memPagePromote, .eptEntryStateIncorrect) }
        if let s = requireBlockedAndTracked(e) { return record(.memPagePromote, s) }
        if !hostPriority2M.allSatisfy(in: children, { !$0 }) { hostPriority2M.assign(children, false) }
        let run = pde.run(containing: children.lowerBound)
        let child = run.value
        guard run.range.lowerBound <= children.lowerBound, run.range.upperBound >= children.upperBound,
              child.state == .mapped || child.state == .pending,
              child.hfn(at: gfn).isAligned(to: .size1G)
        else { return record(.memPagePromote, .eptInvalidPromoteConditions) }
        if interruptPending {
            interruptPending = false
            return record(.memPagePromote, .interruptedRestartable)
        }
        pdpte.assign(r.only, SEPTEntry(child.state, hfnDelta: child.hfnDelta))
        pde.assign(children, .free)
        if !acceptCounter.allSatisfy(in: children, { $0 == 0 }) { acceptCounter.assign(children, 0) }
        return record(.memPagePromote, .success)
    }

    /// TDH.MEM.PAGE.REMOVE of a leaf at 4K, 2M or 1G (the module's
    /// `verify_page_info_input(gpa, LVL_PT, LVL_PDPT)`): the entry becomes
    /// FREE; returns the host frame it mapped on success.
    /// - Complexity: O(log runs).
    public func remove(gfn: GuestFrameNumber, level: PageLevel) -> (TDXStatus, hfn: HostFrameNumber?) {
        guard gfn.isAligned(to: level) else { return (record(.memPageRemove, .operandInvalid), nil) }
        if busy(gfn: gfn, level: level) { return (record(.memPageRemove, .operandBusy), nil) }
        guard walkReaches(gfn, level) else { return (record(.memPageRemove, .eptWalkFailed), nil) }
        hostLocked(gfn: gfn, level: level)
        let e = entry(gfn: gfn, level: level)
        guard e.state.isLeaf else { return (record(.memPageRemove, .eptEntryStateIncorrect), nil) }
        if let s = requireBlockedAndTracked(e) { return (record(.memPageRemove, s), nil) }
        let hfn = e.hfn(at: gfn)
        setEntry(gfn: gfn, level: level, .free)
        cleanupIfPending(gfn: gfn, level: level)
        if level == .size4K { adjustInUse(hfn: hfn, pages: 1, by: -1) }
        return (record(.memPageRemove, .success), hfn)
    }

    /// TDH.PHYMEM.PAGE.WBINVD: write back and invalidate one 4K page with
    /// the TD's key (callers loop 512 times for a 2M page).
    /// - Complexity: O(1).
    public func wbinvd(hfn: HostFrameNumber) -> TDXStatus { record(.phymemPageWbinvd, .success) }

    /// TDH.PHYMEM.PAGE.WBINVD on each of the `pages` 4K pages from `hfn`
    /// (KVM's loop over a 1G leaf's 262,144 pages), counted at once.
    /// - Complexity: O(1).
    public func wbinvd(hfn: HostFrameNumber, pages: UInt64) {
        calls.record(.phymemPageWbinvd, .success, pages)
    }

    /// TDH.PHYMEM.PAGE.RECLAIM: only once the TD is torn down.
    /// - Complexity: O(1).
    public func reclaim(hfn: HostFrameNumber) -> TDXStatus {
        record(.phymemPageReclaim, lifecycle == .teardown ? .success : .lifecycleStateIncorrect)
    }

    // MARK: DPAMT

    /// TDH.PHYMEM.PAMT.ADD for the 2M host range `range2M`.
    /// - Complexity: O(log runs).
    public func pamtAdd(range2M: HostRegion2M) -> TDXStatus {
        if pamt4K.value(at: range2M) { return record(.phymemPamtAdd, .hpaRangeNotFree) }
        installPAMT(range2M)
        return record(.phymemPamtAdd, .success)
    }

    /// TDH.PHYMEM.PAMT.REMOVE: fails while any 4K page in the range is in
    /// use. [inferred] the status is TDX_PAGE_METADATA_INCORRECT (a PAMT_4K
    /// entry is not NDA); the public sources give no code.
    /// - Complexity: O(log runs).
    public func pamtRemove(range2M: HostRegion2M) -> TDXStatus {
        guard pamt4K.value(at: range2M) else { return record(.phymemPamtRemove, .pageMetadataIncorrect) }
        guard hpa4KInUse.value(at: range2M) == 0 else { return record(.phymemPamtRemove, .pageMetadataIncorrect) }
        removePAMT(range2M)
        return record(.phymemPamtRemove, .success)
    }

    func installPAMT(_ r: HostRegion2M) { pamt4K.assign(r.only, true) }

    func removePAMT(_ r: HostRegion2M) { pamt4K.assign(r.only, false) }

    // MARK: TD life cycle

    /// TDH.MR.FINALIZE: the measurement is final and the TD becomes
    /// runnable; PAGE.ADD is no longer allowed. Not counted in `calls`,
    /// which tallies the memory-management leaves only.
    /// - Complexity: O(1).
    @discardableResult
    public func mrFinalize() -> TDXStatus {
        guard lifecycle == .building else { return .lifecycleStateIncorrect }
        lifecycle = .runnable
        return .success
    }
}
