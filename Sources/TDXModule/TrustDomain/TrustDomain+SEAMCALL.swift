import MemoryModel

/// Host SEAMCALLs on the S-EPT, following `seamcall_sept_state_lookup`
/// (which states each leaf accepts) and the checks in
/// `src/vmm_dispatcher/api_calls/tdh_mem_*.c` of intel/tdx-module.
extension TrustDomain {
    /// TDH.MEM.SEPT.ADD: links a new S-EPT page (at host frame `pageHFN`)
    /// below the entry at `entryLevel` (2 = 2M entry gets a 4K table,
    /// 3 = 1G entry gets a PD, 4 = 512G entry gets a PDPT).
    public func septAdd(gfn: UInt64, entryLevel: Int, pageHFN: UInt64) -> TDXStatus {
        if busy(gfn: gfn, level: .size2M) && entryLevel == 2 { return record(.memSeptAdd, .operandBusy) }
        switch entryLevel {
        case 4:
            guard !pml4e.value(at: gfn >> 27) else { return record(.memSeptAdd, .eptEntryStateIncorrect) }
            pml4e.assign((gfn >> 27)..<((gfn >> 27) + 1), true)
        case 3:
            guard pml4e.value(at: gfn >> 27) else { return record(.memSeptAdd, .eptWalkFailed) }
            guard !pdpte.value(at: gfn >> 18) else { return record(.memSeptAdd, .eptEntryStateIncorrect) }
            pdpte.assign((gfn >> 18)..<((gfn >> 18) + 1), true)
        case 2:
            guard upperPresent(gfn) else { return record(.memSeptAdd, .eptWalkFailed) }
            guard pde.value(at: gfn >> 9).state == .free else { return record(.memSeptAdd, .eptEntryStateIncorrect) }
            let c = gfn >> 9
            pde.assign(c..<(c + 1), SEPTEntry(.nlMapped))
            pte.assign((c << 9)..<((c + 1) << 9), .free)
        default:
            return record(.memSeptAdd, .operandInvalid)
        }
        return record(.memSeptAdd, .success)
    }

    /// TDH.MEM.PAGE.ADD: a 4K page of the initial image, MAPPED at once
    /// (4K only; KVM issues it only before the TD is runnable).
    public func pageAdd(gfn: UInt64, hfn: UInt64) -> TDXStatus {
        guard upperPresent(gfn), pde.value(at: gfn >> 9).state == .nlMapped else { return record(.memPageAdd, .eptWalkFailed) }
        guard pte.value(at: gfn).state == .free else { return record(.memPageAdd, .eptEntryStateIncorrect) }
        pte.assign(gfn..<(gfn + 1), SEPTEntry(.mapped, hfnDelta: hfn &- gfn))
        adjustInUse(hfn: hfn, pages: 1, by: 1)
        return record(.memPageAdd, .success)
    }

    /// TDH.MEM.PAGE.AUG: a FREE entry at 4K or 2M becomes PENDING with the
    /// host range `hfn` (`check_and_lock_free_range_hpa` over 4K or 2M).
    public func pageAug(gfn: UInt64, level: PageLevel, hfn: UInt64) -> TDXStatus {
        guard level != .size1G, gfn % level.pages == 0, hfn % level.pages == 0 else { return record(.memPageAug, .operandInvalid) }
        if busy(gfn: gfn, level: level) { return record(.memPageAug, .operandBusy) }
        guard upperPresent(gfn) else { return record(.memPageAug, .eptWalkFailed) }
        let e2 = pde.value(at: gfn >> 9)
        if level == .size2M {
            guard e2.state == .free else { return record(.memPageAug, .eptEntryStateIncorrect) }
        } else {
            guard e2.state == .nlMapped else { return record(.memPageAug, e2.state == .free ? .eptWalkFailed : .eptEntryStateIncorrect) }
            guard pte.value(at: gfn).state == .free else { return record(.memPageAug, .eptEntryStateIncorrect) }
            adjustInUse(hfn: hfn, pages: 1, by: 1)
        }
        setEntry(gfn: gfn, level: level, SEPTEntry(.pending, hfnDelta: hfn &- gfn))
        return record(.memPageAug, .success)
    }

    /// TDH.MEM.RANGE.BLOCK: NL_MAPPED → NL_BLOCKED, MAPPED → BLOCKED,
    /// PENDING → PENDING_BLOCKED, recording the current epoch as BEPOCH.
    /// Takes the tree lock exclusive.
    public func rangeBlock(gfn: UInt64, level: PageLevel) -> TDXStatus {
        if busy(gfn: gfn, level: level) { return record(.memRangeBlock, .operandBusy) }
        guard upperPresent(gfn) else { return record(.memRangeBlock, .eptWalkFailed) }
        if level == .size4K && !pde.value(at: gfn >> 9).state.isNonLeaf { return record(.memRangeBlock, .eptWalkFailed) }
        var e = entry(gfn: gfn, level: level)
        if e.state.isBlocked { return record(.memRangeBlock, .gpaRangeAlreadyBlocked) }
        guard e.state != .free else { return record(.memRangeBlock, .eptEntryStateIncorrect) }
        e.state = e.state.blocked
        e.bepoch = tdEpoch
        setEntry(gfn: gfn, level: level, e)
        return record(.memRangeBlock, .success)
    }

    /// TDH.MEM.RANGE.UNBLOCK: back to the unblocked state once tracked.
    public func rangeUnblock(gfn: UInt64, level: PageLevel) -> TDXStatus {
        if busy(gfn: gfn, level: level) { return record(.memRangeUnblock, .operandBusy) }
        var e = entry(gfn: gfn, level: level)
        guard e.state.isBlocked else { return record(.memRangeUnblock, .eptEntryStateIncorrect) }
        guard isTracked(e.bepoch) else { return record(.memRangeUnblock, .tlbTrackingNotDone) }
        e.state = e.state.unblocked; e.bepoch = 0
        setEntry(gfn: gfn, level: level, e)
        return record(.memRangeUnblock, .success)
    }

    /// TDH.MEM.TRACK: increments TD_EPOCH unless a vCPU still runs in the
    /// previous epoch.
    public func track() -> TDXStatus {
        if vcpuEpoch.contains(where: { $0 != nil && $0! < tdEpoch }) { return record(.memTrack, .previousTLBEpochBusy) }
        tdEpoch += 1
        return record(.memTrack, .success)
    }

    /// The running-TD precondition of REMOVE, DEMOTE and PROMOTE: blocked and tracked.
    func requireBlockedAndTracked(_ e: SEPTEntry) -> TDXStatus? {
        guard lifecycle == .runnable else { return nil }
        guard e.state.isBlocked else { return .gpaRangeNotBlocked }
        guard isTracked(e.bepoch) else { return .tlbTrackingNotDone }
        return nil
    }

    /// TDH.MEM.PAGE.DEMOTE of a 2M leaf into 512 4K leaves in the parent's
    /// unblocked state (no UNBLOCK needed), the parent becoming NL_MAPPED
    /// over the new S-EPT page at `pageHFN`. Under DPAMT the 2 PAMT pages
    /// the host passes (`pamtPagesGiven`) back the guest range's PAMT_4K
    /// (`pamt_demote`). Without ENHANCED_DEMOTE_INTERRUPTIBILITY a pending
    /// host interrupt gives TDX_INTERRUPTED_RESTARTABLE with nothing done.
    public func demote(gfn: UInt64, level: PageLevel, pageHFN: UInt64, pamtPagesGiven: Bool) -> TDXStatus {
        guard level == .size2M, gfn % 512 == 0 else { return record(.memPageDemote, .operandInvalid) }
        if busy(gfn: gfn, level: level) { return record(.memPageDemote, .operandBusy) }
        if interruptPending && !features.enhancedDemoteInterruptibility {
            interruptPending = false
            return record(.memPageDemote, .interruptedRestartable)
        }
        let e = pde.value(at: gfn >> 9)
        guard e.state.isLeaf else { return record(.memPageDemote, .eptEntryStateIncorrect) }
        if let s = requireBlockedAndTracked(e) { return record(.memPageDemote, s) }
        let hfn = gfn &+ e.hfnDelta
        if features.dynamicPAMT {
            guard pamtPagesGiven else { return record(.memPageDemote, .operandInvalid) }
            if !pamt4K.value(at: hfn >> 9) { installPAMT(hfn >> 9) }
        }
        let c = gfn >> 9
        pde.assign(c..<(c + 1), SEPTEntry(.nlMapped))
        pte.assign(gfn..<(gfn + 512), SEPTEntry(e.state.unblocked, hfnDelta: e.hfnDelta))
        adjustInUse(hfn: hfn, pages: 512, by: 1)
        return record(.memPageDemote, .success)
    }

    /// TDH.MEM.PAGE.PROMOTE: a 4K table whose 512 children are uniformly
    /// MAPPED or uniformly PENDING over a contiguous, 2M-aligned host range
    /// becomes one 2M leaf; the S-EPT page (and under DPAMT the range's 2
    /// PAMT pages) are returned.
    public func promote(gfn: UInt64, level: PageLevel) -> TDXStatus {
        guard level == .size2M, gfn % 512 == 0 else { return record(.memPagePromote, .operandInvalid) }
        if busy(gfn: gfn, level: level, childrenToo: true) { return record(.memPagePromote, .operandBusy) }
        let e = pde.value(at: gfn >> 9)
        guard e.state.isNonLeaf else { return record(.memPagePromote, .eptEntryStateIncorrect) }
        if let s = requireBlockedAndTracked(e) { return record(.memPagePromote, s) }
        let run = pte.run(containing: gfn)
        let child = run.value
        guard run.range.lowerBound <= gfn, run.range.upperBound >= gfn + 512,
              child.state == .mapped || child.state == .pending,
              (gfn &+ child.hfnDelta) % 512 == 0
        else { return record(.memPagePromote, .eptInvalidPromoteConditions) }
        let hfn = gfn &+ child.hfnDelta
        pde.assign((gfn >> 9)..<((gfn >> 9) + 1), SEPTEntry(child.state, hfnDelta: child.hfnDelta))
        pte.assign(gfn..<(gfn + 512), .free)
        adjustInUse(hfn: hfn, pages: 512, by: -1)
        if features.dynamicPAMT && pamt4K.value(at: hfn >> 9) { removePAMT(hfn >> 9) }
        return record(.memPagePromote, .success)
    }

    /// TDH.MEM.PAGE.REMOVE of a leaf: the entry becomes FREE; returns the
    /// host frame it mapped on success.
    public func remove(gfn: UInt64, level: PageLevel) -> (TDXStatus, hfn: UInt64?) {
        guard level != .size1G, gfn % level.pages == 0 else { return (record(.memPageRemove, .operandInvalid), nil) }
        if busy(gfn: gfn, level: level) { return (record(.memPageRemove, .operandBusy), nil) }
        let e = entry(gfn: gfn, level: level)
        guard e.state.isLeaf else { return (record(.memPageRemove, .eptEntryStateIncorrect), nil) }
        if let s = requireBlockedAndTracked(e) { return (record(.memPageRemove, s), nil) }
        let hfn = gfn &+ e.hfnDelta
        setEntry(gfn: gfn, level: level, .free)
        if level == .size4K { adjustInUse(hfn: hfn, pages: 1, by: -1) }
        return (record(.memPageRemove, .success), hfn)
    }

    /// TDH.PHYMEM.PAGE.WBINVD: write back and invalidate one 4K page with
    /// the TD's key (callers loop 512 times for a 2M page).
    public func wbinvd(hfn: UInt64) -> TDXStatus { record(.phymemPageWbinvd, .success) }

    /// TDH.PHYMEM.PAGE.RECLAIM: only once the TD is torn down.
    public func reclaim(hfn: UInt64) -> TDXStatus {
        record(.phymemPageReclaim, lifecycle == .teardown ? .success : .lifecycleStateIncorrect)
    }

    // MARK: DPAMT

    /// TDH.PHYMEM.PAMT.ADD for the 2M host range `range2M` (`hfn >> 9`).
    public func pamtAdd(range2M: UInt64) -> TDXStatus {
        if pamt4K.value(at: range2M) { return record(.phymemPamtAdd, .hpaRangeNotFree) }
        installPAMT(range2M)
        return record(.phymemPamtAdd, .success)
    }

    /// TDH.PHYMEM.PAMT.REMOVE: fails while any 4K page in the range is in
    /// use. [inferred] the status is TDX_PAGE_METADATA_INCORRECT (a PAMT_4K
    /// entry is not NDA); the public sources give no code.
    public func pamtRemove(range2M: UInt64) -> TDXStatus {
        guard pamt4K.value(at: range2M) else { return record(.phymemPamtRemove, .pageMetadataIncorrect) }
        guard hpa4KInUse.value(at: range2M) == 0 else { return record(.phymemPamtRemove, .pageMetadataIncorrect) }
        removePAMT(range2M)
        return record(.phymemPamtRemove, .success)
    }

    func installPAMT(_ r: UInt64) { pamt4K.assign(r..<(r + 1), true) }

    func removePAMT(_ r: UInt64) { pamt4K.assign(r..<(r + 1), false) }
}
