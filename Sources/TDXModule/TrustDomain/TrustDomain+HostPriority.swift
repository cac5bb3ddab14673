package import MemoryModel

/// Host priority on S-EPT entry locks (TDX_1.5.01, `src/common/helpers/tdx_locks.h`):
/// each S-EPT entry has a lock bit (TDEL) and a host-priority bit (TDHP).
///
/// - `sept_lock_acquire_host()`, called by AUG, BLOCK, UNBLOCK, DEMOTE, PROMOTE,
///   REMOVE and SEPT.ADD right after their walk: if TDEL is taken (a vCPU is
///   inside TDG.MEM.PAGE.ACCEPT on the entry), it sets TDHP and returns
///   TDX_OPERAND_BUSY; if it takes TDEL, it clears TDHP.
/// - `sept_lock_acquire_guest()`, called by TDG.MEM.PAGE.ACCEPT once its walk
///   reached the requested level (`check_tdaccept_failure()`): TDEL taken is
///   TDX_OPERAND_BUSY; TDHP set is TDX_OPERAND_BUSY_HOST_PRIORITY (the lock is
///   released again), before any state check.
/// - The TD dispatcher (`tdx_td_dispatcher.c`, after the leaf returns) converts
///   TDX_OPERAND_BUSY_HOST_PRIORITY to TDX_OPERAND_BUSY "in order to be
///   backward-compatible with older TDs", so the guest sees TDX_OPERAND_BUSY; if
///   the vCPU keeps getting it for HP_LOCK_TIMEOUT (default 1 s) the TD exits to
///   the host with TDX_HOST_PRIORITY_BUSY_TIMEOUT (not modelled: no guest the
///   model runs retries that long).
///
/// So the flag lives from the host's lost race until the host's own next lock
/// of the entry (its retry), whoever else touches the entry meanwhile.
extension TrustDomain {
    /// Whether the entry at (`gfn`, `level`) has its host-priority bit set.
    /// - Complexity: O(log runs).
    package func hostPriority(gfn: GuestFrameNumber, level: PageLevel) -> Bool {
        switch level {
        case .size4K: hostPriority4K.value(at: gfn)
        case .size2M: hostPriority2M.value(at: gfn.region2M)
        case .size1G: hostPriority1G.value(at: gfn.region1G)
        }
    }

    /// True if any entry of `frames` at any level has host priority.
    /// - Complexity: O(log runs).
    package func anyHostPriority(_ frames: Range<GuestFrameNumber>) -> Bool {
        guard !frames.isEmpty else { return false }
        return !hostPriority4K.allSatisfy(in: frames, { !$0 })
            || !hostPriority2M.allSatisfy(in: frames.covering2M, { !$0 })
            || !hostPriority1G.allSatisfy(in: frames.covering1G, { !$0 })
    }

    /// True if some entry has its host-priority bit set or a 2M ACCEPT is
    /// half done: bulk replay of accepts is then off (the state is not part
    /// of a chunk's signature).
    /// - Complexity: O(runs of the four maps), O(1) when none is set.
    package var hasEntryLockState: Bool {
        !hostPriority4K.allSatisfy(in: .lowest ..< .highest, { !$0 })
            || !hostPriority2M.allSatisfy(in: .lowest ..< .highest, { !$0 })
            || !hostPriority1G.allSatisfy(in: .lowest ..< .highest, { !$0 })
            || !acceptCounter.allSatisfy(in: .lowest ..< .highest, { $0 == 0 })
            || anyVCPUHostPriorityBusy
    }

    func setHostPriority(gfn: GuestFrameNumber, level: PageLevel, _ on: Bool) {
        switch level {
        case .size4K: hostPriority4K.assign(gfn.only, on)
        case .size2M: hostPriority2M.assign(gfn.region2M.only, on)
        case .size1G: hostPriority1G.assign(gfn.region1G.only, on)
        }
    }

    /// `sept_lock_acquire_host()` succeeded on the entry (the caller checked
    /// `busy` before its walk): TDHP is cleared.
    func hostLocked(gfn: GuestFrameNumber, level: PageLevel) {
        if hostPriority(gfn: gfn, level: level) { setHostPriority(gfn: gfn, level: level, false) }
    }

    /// PROMOTE locks the 512 children too (`tdh_mem_page_promote.c`), each
    /// clearing its bit.
    func hostLockedChildren(of c: GuestRegion2M) {
        if !hostPriority4K.allSatisfy(in: c.frames, { !$0 }) { hostPriority4K.assign(c.frames, false) }
    }

    /// `sept_lock_acquire_guest()` for TDG.MEM.PAGE.ACCEPT at an entry its walk
    /// reached: nil when the guest takes the lock, else the status the guest
    /// sees (TDX_OPERAND_BUSY either way, after the dispatcher's conversion).
    /// An entry lock held by a vCPU stands for another vCPU's ACCEPT in flight.
    func guestLockFailure(gfn: GuestFrameNumber, level: PageLevel) -> TDXStatus? {
        for (_, h) in holds {
            if case .guestEntry(let g, let l) = h, l == level, g.alignedDown(to: level) == gfn.alignedDown(to: level) {
                return .operandBusy
            }
        }
        guard hostPriority(gfn: gfn, level: level) else { return nil }
        hostPriorityRefusals += 1
        return Self.tdDispatcherStatus(.operandBusyHostPriority)
    }

    /// What the TD dispatcher puts in the guest's RAX for a TDCALL leaf's
    /// status: TDX_OPERAND_BUSY_HOST_PRIORITY becomes TDX_OPERAND_BUSY.
    static func tdDispatcherStatus(_ s: TDXStatus) -> TDXStatus {
        s == .operandBusyHostPriority ? .operandBusy : s
    }

    // MARK: HP_LOCK_TIMEOUT

    /// `DEFAULT_HP_LOCK_TIMEOUT_USEC`, in seconds.
    public static let defaultHPLockTimeout = 1.0
    /// `MIN_HP_LOCK_TIMEOUT_USEC` ... `MAX_HP_LOCK_TIMEOUT_USEC`, in seconds.
    public static let hpLockTimeoutRange: ClosedRange<Double> = 0.01...100

    /// Writes the TDCS's HP_LOCK_TIMEOUT (the host's TDH.MNG.WR of the field
    /// [inferred: the module's bounds say the field is configurable; the
    /// stored sources do not show KVM writing it]); false if out of bounds.
    public func setHPLockTimeout(_ seconds: Double) -> Bool {
        guard Self.hpLockTimeoutRange.contains(seconds) else { return false }
        hpLockTimeout = seconds
        return true
    }

    /// The TD dispatcher after a TDCALL leaf returned to the guest on `vcpu`
    /// at virtual time `now` (`tdx_td_dispatcher.c`, "Handling of stuck
    /// host-priority locks", TDX_1.5.01): a leaf refused for host priority
    /// (TDX_OPERAND_BUSY_HOST_PRIORITY, which the guest sees as
    /// TDX_OPERAND_BUSY) sets `hp_lock_busy` and its start the first time;
    /// refused again once HP_LOCK_TIMEOUT has passed since that start, it
    /// clears it and TD-exits to the host with TDX_HOST_PRIORITY_BUSY_TIMEOUT
    /// (`async_tdexit_empty_reason()`, RAX already TDX_OPERAND_BUSY); any
    /// other status clears it. Returns whether the vCPU TD-exited.
    /// A TDCALL that exits for an EPT violation never reaches this point.
    /// - Complexity: O(1).
    package func tdcallReturned(vcpu: Int, refusedForHostPriority: Bool, now: Double) -> Bool {
        guard hpLockBusySince.indices.contains(vcpu) else { return false }
        guard refusedForHostPriority else { hpLockBusySince[vcpu] = nil; return false }
        guard let start = hpLockBusySince[vcpu] else { hpLockBusySince[vcpu] = now; return false }
        guard now - start >= hpLockTimeout else { return false }
        hpLockBusySince[vcpu] = nil
        hostPriorityTimeouts += 1
        return true
    }

    /// Whether some vCPU's `hp_lock_busy` is set (bulk replay, which does
    /// not run the dispatcher, is off meanwhile).
    package var anyVCPUHostPriorityBusy: Bool { hpLockBusySince.contains { $0 != nil } }
}
