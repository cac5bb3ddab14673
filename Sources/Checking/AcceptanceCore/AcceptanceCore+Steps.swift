extension AcceptanceCore {
    /// What one TDG.MEM.PAGE.ACCEPT returns in the abstraction.
    enum AcceptOutcome: Equatable {
        case success, sizeMismatch, alreadyAccepted, eptViolation

        var text: String {
            switch self {
            case .success: "TDX_SUCCESS"
            case .sizeMismatch: "TDX_PAGE_SIZE_MISMATCH"
            case .alreadyAccepted: "TDX_PAGE_ALREADY_ACCEPTED"
            case .eptViolation: "EPT violation (TD exit)"
            }
        }
    }

    /// A 2M ACCEPT on a range whose 2M entry is `e` (`TrustDomain.acceptResult`,
    /// level 2M): PENDING succeeds, MAPPED is ALREADY_ACCEPTED, a non-leaf
    /// (blocked or not) is SIZE_MISMATCH (case 3), anything else exits.
    @inline(__always) static func outcome2M(_ e: Entry) -> AcceptOutcome {
        switch e {
        case .pending: .success
        case .mapped: .alreadyAccepted
        case .nlMapped, .nlBlocked: .sizeMismatch
        case .free, .blocked, .pendingBlocked: .eptViolation
        }
    }

    /// A 4K ACCEPT of a page whose 2M entry is `e2` and 4K entry `page`
    /// (`TrustDomain.acceptResult`, level 4K, module code): a MAPPED 2M
    /// leaf above is ALREADY_ACCEPTED; under a 4K table the page decides;
    /// anything else exits.
    @inline(__always) static func outcome4K(_ e2: Entry, _ page: Entry) -> AcceptOutcome {
        switch e2 {
        case .mapped: return .alreadyAccepted
        case .nlMapped:
            switch page {
            case .pending: return .success
            case .mapped: return .alreadyAccepted
            default: return .eptViolation
            }
        default: return .eptViolation
        }
    }

    /// The range vCPU `v`'s program is at (`pc / 2`), nil when it is done.
    @inline(__always) func range(of v: Int, in s: State) -> Int? {
        let pc = s.pc(v)
        return pc < 2 * config.ranges ? pc >> 1 : nil
    }

    /// The range a split is between BLOCK and DEMOTE in, if any: KVM holds
    /// `mmu_lock` for write across the whole split, so no other host step
    /// runs meanwhile (the vCPUs do).
    @inline(__always) func splitting(_ s: State) -> Int? {
        for r in 0..<config.ranges where s.entry(r).isBlockedLeaf { return r }
        return nil
    }

    /// Some vCPU waits on an EPT violation of a 4K ACCEPT in range `r`
    /// (the huge page series splits the 2M leaf above it).
    @inline(__always) func splitDemanded(_ r: Int, _ s: State) -> Bool {
        for v in 0..<config.vcpus where s.waiting(v) && s.phase(v) == .accept4K && range(of: v, in: s) == r { return true }
        return false
    }

    @inline(__always) func someoneWaits(on r: Int, _ s: State) -> Bool {
        for v in 0..<config.vcpus where s.waiting(v) && range(of: v, in: s) == r { return true }
        return false
    }

    /// vCPU `v` has an enabled step: its program is not done, it is not in
    /// a TD exit, and it is not spinning on the accepting list or faulting
    /// on a range a split has blocked.
    @inline(__always) func vcpuEnabled(_ v: Int, _ s: State) -> Bool {
        guard let r = range(of: v, in: s), !s.waiting(v) else { return false }
        if s.pc(v) & 1 == 0 {
            return !(s.phase(v) == .check && s.bitmap(r) && config.acceptingList && s.listed(r))
        }
        return s.shared(r) || !(s.entry(r).isBlockedLeaf || s.entry(r) == .nlBlocked)
    }

    /// KVM can handle vCPU `v`'s EPT violation now: not on a shared range
    /// (that exits to the VMM first), not under a blocked entry (the fault
    /// retries until the split is done), not a 4K fault under a 2M leaf
    /// (the split comes first).
    @inline(__always) func eptEnabled(_ v: Int, _ s: State) -> Bool {
        guard s.waiting(v), let r = range(of: v, in: s), !s.shared(r) else { return false }
        let e = s.entry(r)
        if e.isBlockedLeaf || e == .nlBlocked { return false }
        return !(s.phase(v) == .accept4K && e.isLeaf2M)
    }

    public func actions(in s: State) -> [Action] {
        var out: [Action] = []
        forEachAction(in: s) { out.append($0) }
        return out
    }

    /// Calls `body` with each enabled action, in `actions(in:)`'s order.
    @inline(__always) func forEachAction(in s: State, _ body: (Action) -> Void) {
        guard s.fatal == .none else { return }
        let n = config.vcpus, nr = config.ranges
        for v in 0..<n where vcpuEnabled(v, s) { body(Action(.vcpu, v)) }
        if let r = splitting(s) {
            body(Action(s.tracked(r) ? .demote : .track, r))
            return
        }
        for v in 0..<n where eptEnabled(v, s) { body(Action(.eptViolation, v)) }
        if config.refuseAUG { for v in 0..<n where eptEnabled(v, s) { body(Action(.refuseAUG, v)) } }
        for r in 0..<nr {
            let e = s.entry(r)
            if e.isLeaf2M && (s.splitsLeft > 0 || splitDemanded(r, s)) { body(Action(.block, r)) }
            if s.conversionsLeft > 0 && !s.shared(r) && !s.bitmap(r) && !s.listed(r) { body(Action(.convertShared, r)) }
            if s.shared(r) && someoneWaits(on: r, s) { body(Action(.convertPrivate, r)) }
            if s.zapsLeft > 0 && !s.shared(r) && e != .free { body(Action(.zap, r)) }
        }
    }

    public func apply(_ a: Action, to s: State) -> State {
        var t = s
        let i = Int(a.index)
        switch a.kind {
        case .vcpu: step(i, &t)
        case .eptViolation: handleEPTViolation(i, &t)
        case .block:
            if !splitDemanded(i, t) { t.splitsLeft -= 1 }
            t.setEntry(i, t.entry(i) == .pending ? .pendingBlocked : .blocked)
            t.setMirror(i, .frozen)
        case .track:
            t.setTracked(i, true)
        case .demote:
            // DEMOTE gives the 4K children the leaf's unblocked state.
            let child: Entry = t.entry(i) == .pendingBlocked ? .pending : .mapped
            t.setEntry(i, .nlMapped)
            for k in 0..<config.pagesPerRange { t.setPage(i, k, child) }
            t.setMirror(i, .table4K)
            t.setTracked(i, false)
        case .convertShared:
            t.conversionsLeft -= 1
            removePrivate(i, &t)
            t.setShared(i, true)
            t.setWritten(i, false)
        case .convertPrivate:
            t.setShared(i, false)
        case .zap:
            t.zapsLeft -= 1
            removePrivate(i, &t)
        case .refuseAUG:
            t.setWaiting(i, false)
        }
        return t
    }

    /// BLOCK, TRACK and REMOVE of every private page of range `r`, with
    /// the mirror zapped (`tdx_sept_remove_private_spte()` under `mmu_lock`).
    @inline(__always) func removePrivate(_ r: Int, _ t: inout State) {
        t.setEntry(r, .free)
        t.clearPages(r)
        t.setMirror(r, .none)
        t.setTracked(r, false)
    }

    /// vCPU `v`'s next step of `accept_memory()` or its touch.
    @inline(__always) func step(_ v: Int, _ t: inout State) {
        let pc = t.pc(v), r = pc >> 1
        if pc & 1 == 1 {
            touch(v, r, &t)
            return
        }
        switch t.phase(v) {
        case .check:
            if !t.bitmap(r) {
                t.setPC(v, pc + 1)
            } else {
                if config.acceptingList { t.setListed(r, true) }
                t.setPhase(v, .accept2M)
                t.setAttempts(v, 0)
            }
        case .accept2M:
            countAttempt(v, &t)
            switch Self.outcome2M(t.entry(r)) {
            case .eptViolation: t.setWaiting(v, true)
            case .sizeMismatch: fallBackTo4K(v, &t)
            case .alreadyAccepted:
                if config.alreadyAccepted == .trust { t.setPhase(v, .finish) } else { fallBackTo4K(v, &t) }
            case .success:
                t.setEntry(r, .mapped)
                if t.written(r) { t.fatal = .doubleAccept }
                t.setPhase(v, .finish)
            }
        case .accept4K:
            countAttempt(v, &t)
            let k = t.sub(v)
            switch Self.outcome4K(t.entry(r), t.page(r, k)) {
            case .eptViolation: t.setWaiting(v, true)
            case .sizeMismatch, .alreadyAccepted:
                if config.alreadyAccepted == .trust { nextPage(v, &t) } else { t.fatal = .acceptFailed }
            case .success:
                t.setPage(r, k, .mapped)
                if t.written(r) { t.fatal = .doubleAccept }
                nextPage(v, &t)
            }
        case .finish:
            t.setBitmap(r, 0)
            if config.acceptingList { t.setListed(r, false) }
            t.setPhase(v, .check)
            t.setAttempts(v, 0)
            t.setPC(v, pc + 1)
        }
    }

    @inline(__always) func countAttempt(_ v: Int, _ t: inout State) {
        t.setAttempts(v, min(t.attempts(v) + 1, config.progressBound + 1))
    }

    @inline(__always) func fallBackTo4K(_ v: Int, _ t: inout State) {
        t.setPhase(v, .accept4K)
        t.setSub(v, 0)
    }

    @inline(__always) func nextPage(_ v: Int, _ t: inout State) {
        let k = t.sub(v) + 1
        if k < config.pagesPerRange {
            t.setSub(v, k)
        } else {
            t.setSub(v, 0)
            t.setPhase(v, .finish)
        }
    }

    /// A touch of range `r`: through the shared alias if the range is
    /// shared; else every page must be MAPPED, or the TD dies (an access to
    /// a PENDING or missing private page with SEPT_VE_DISABLE).
    @inline(__always) func touch(_ v: Int, _ r: Int, _ t: inout State) {
        if !t.shared(r) {
            guard accessible(r, t) else {
                t.fatal = .touchedUnaccepted
                return
            }
            t.setWritten(r, true)
        }
        t.setPC(v, t.pc(v) + 1)
    }

    @inline(__always) func accessible(_ r: Int, _ s: State) -> Bool {
        switch s.entry(r) {
        case .mapped: return true
        case .nlMapped:
            for k in 0..<config.pagesPerRange where s.page(r, k) != .mapped { return false }
            return true
        default: return false
        }
    }

    /// KVM's fault for vCPU `v`'s ACCEPT exit: map at the accept level
    /// where the policy allows 2M, else SEPT.ADD and a 4K AUG of the
    /// faulting page; nothing if another fault mapped it first.
    @inline(__always) func handleEPTViolation(_ v: Int, _ t: inout State) {
        let r = t.pc(v) >> 1
        let level2M = t.phase(v) == .accept2M
        let k = level2M ? 0 : t.sub(v)
        switch t.entry(r) {
        case .free:
            if level2M && config.hostMapping == .map2M {
                t.setEntry(r, .pending)
                t.setMirror(r, .leaf2M)
            } else {
                t.setEntry(r, .nlMapped)
                t.clearPages(r)
                t.setPage(r, k, .pending)
                t.setMirror(r, .table4K)
            }
        case .nlMapped:
            if t.page(r, k) == .free { t.setPage(r, k, .pending) }
        default: break
        }
        t.setWaiting(v, false)
    }
}
