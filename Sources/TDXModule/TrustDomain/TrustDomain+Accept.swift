public import MemoryModel

extension TrustDomain {
    /// TDG.MEM.PAGE.ACCEPT (`tdg_mem_page_accept.c`, `check_tdaccept_failure()`):
    /// the walk stops at the requested level or at a leaf above it.
    ///
    /// - success: a PENDING leaf at the requested level becomes MAPPED (zeroed with the TD key);
    /// - TDX_PAGE_SIZE_MISMATCH: a non-free non-leaf at the requested level (host mapped smaller),
    ///   NL_BLOCKED included (case 3);
    /// - TDX_PAGE_ALREADY_ACCEPTED: a MAPPED leaf at the level, or (module code) above it;
    /// - an EPT violation carrying the accept level: nothing mapped, or a
    ///   leaf above the level that is not accessible, or a blocked entry;
    /// - TDX_OPERAND_INVALID: 1G (TDX_1.5.01 accepts 4K and 2M only:
    ///   `verify_page_info_input(gpa, LVL_PT, LVL_PD)`) or misaligned. With
    ///   `features.privateMappings1G` (forward-looking) the 1G entry is the
    ///   requested level and the same cases apply to it, and a MAPPED 1G leaf
    ///   above a 2M or 4K request is case 1.1;
    /// - TDX_OPERAND_BUSY: once the walk reached the requested level, before
    ///   any state check, `sept_lock_acquire_guest()` found the entry locked
    ///   (another vCPU's ACCEPT) or its host-priority bit set
    ///   (TDX_OPERAND_BUSY_HOST_PRIORITY, which the TD dispatcher returns to the
    ///   guest as TDX_OPERAND_BUSY; `TrustDomain+HostPriority.swift`);
    /// - `.interrupted`: at 2M, `guestInterruptPending` (an interrupt pending
    ///   for the vCPU, `is_interrupt_pending_guest_side()`) stops the loop
    ///   over the 512 chunks after the chunk being initialised, unless it was
    ///   the last: the entry stays PENDING with its ACCEPT_COUNTER, and the
    ///   re-executed TDCALL resumes there (at least one chunk per call).
    ///
    /// `features.acceptWalkCases` selects the spec's answer (SIZE_MISMATCH)
    /// for an accepted leaf above the requested level.
    /// - Complexity: O(log runs).
    public func accept(gfn: GuestFrameNumber, level: PageLevel, guestInterruptPending: Bool = false) -> AcceptCallResult {
        let r = acceptResult(gfn: gfn, level: level, interrupt: guestInterruptPending)
        switch r {
        case .status(let s): calls.record(.tdgMemPageAccept, s)
        case .eptViolation: break
        case .interrupted: acceptInterruptions += 1
        }
        return r
    }

    func acceptResult(gfn: GuestFrameNumber, level: PageLevel, interrupt: Bool = false) -> AcceptCallResult {
        guard level != .size1G || features.privateMappings1G, gfn.isAligned(to: level) else { return .status(.operandInvalid) }
        guard pml4e.value(at: gfn.region512G) else { return .eptViolation(acceptLevel: level) }
        let e1 = pdpte.value(at: gfn.region1G)
        if level == .size1G {
            if let s = guestLockFailure(gfn: gfn, level: level) { return .status(s) }
            return acceptAtLevel(e1, gfn: gfn, level: level)
        }
        if e1.state.isLeaf {
            // Case 1.1 / 1.2: the walk stopped at a 1G leaf above the request.
            guard e1.state == .mapped else { return .eptViolation(acceptLevel: level) }
            return .status(features.acceptWalkCases == .moduleCode ? .pageAlreadyAccepted : .pageSizeMismatch)
        }
        guard upperPresent(gfn) else { return .eptViolation(acceptLevel: level) }
        let e2 = pde.value(at: gfn.region2M)
        if level == .size2M {
            // The walk reached the 2M level: the entry lock comes first.
            if let s = guestLockFailure(gfn: gfn, level: level) { return .status(s) }
            switch e2.state {
            case .free, .blocked, .pendingBlocked: return .eptViolation(acceptLevel: level)
            // Case 3: the walk reached the 2M level at a non-free non-leaf,
            // blocked or not.
            case .nlMapped, .nlBlocked: return .status(.pageSizeMismatch)
            case .mapped: return .status(.pageAlreadyAccepted)
            case .pending:
                if let done = initialise2MChunks(gfn.region2M, interrupt: interrupt) { return .interrupted(chunksDone: done) }
                pde.assign(gfn.region2M.only, SEPTEntry(.mapped, hfnDelta: e2.hfnDelta))
                return .status(.success)
            }
        }
        switch e2.state {
        case .free, .nlBlocked, .pending, .pendingBlocked, .blocked: return .eptViolation(acceptLevel: level)
        case .mapped:
            return .status(features.acceptWalkCases == .moduleCode ? .pageAlreadyAccepted : .pageSizeMismatch)
        case .nlMapped: break
        }
        if let s = guestLockFailure(gfn: gfn, level: level) { return .status(s) }
        let e = pte.value(at: gfn)
        switch e.state {
        case .pending:
            pte.assign(gfn.only, SEPTEntry(.mapped, hfnDelta: e.hfnDelta))
            return .status(.success)
        case .mapped: return .status(.pageAlreadyAccepted)
        default: return .eptViolation(acceptLevel: level)
        }
    }

    /// The loop of `tdg_mem_page_accept()` over a PENDING 2M leaf: initialise
    /// the chunk at ACCEPT_COUNTER; if it was chunk 511 the accept is done
    /// (counter back to 0, nil returned); else the counter advances and a
    /// pending interrupt ends the call, returning the chunks done. The model
    /// knows only whether an interrupt is pending when the call starts, so
    /// an interrupted call initialises exactly one chunk.
    /// - Complexity: O(log runs).
    func initialise2MChunks(_ r: GuestRegion2M, interrupt: Bool) -> Int? {
        let counter = Int(acceptCounter.value(at: r))
        let last = Int(PageLevel.size2M.pages) - 1
        guard interrupt, counter < last else {
            if counter != 0 { acceptCounter.assign(r.only, 0) }
            return nil
        }
        acceptCounter.assign(r.only, UInt16(counter + 1))
        return counter + 1
    }

    /// `sept_cleanup_if_pending()`: a host SEAMCALL that changes a PENDING 2M
    /// leaf (BLOCK, DEMOTE, PROMOTE, REMOVE) zeroes its ACCEPT_COUNTER, so an
    /// interrupted accept starts over.
    func cleanupIfPending(gfn: GuestFrameNumber, level: PageLevel) {
        if level == .size2M && acceptCounter.value(at: gfn.region2M) != 0 { acceptCounter.assign(gfn.region2M.only, 0) }
    }

    /// `check_tdaccept_failure()` when the walk reached the requested level
    /// at entry `e`: case 3 (a non-free non-leaf: SIZE_MISMATCH), a MAPPED
    /// leaf (ALREADY_ACCEPTED), a PENDING leaf (success: MAPPED, zeroed), or
    /// an entry that is not acceptable (an EPT violation for the host).
    func acceptAtLevel(_ e: SEPTEntry, gfn: GuestFrameNumber, level: PageLevel) -> AcceptCallResult {
        switch e.state {
        case .free, .blocked, .pendingBlocked: return .eptViolation(acceptLevel: level)
        case .nlMapped, .nlBlocked: return .status(.pageSizeMismatch)
        case .mapped: return .status(.pageAlreadyAccepted)
        case .pending:
            setEntry(gfn: gfn, level: level, SEPTEntry(.mapped, hfnDelta: e.hfnDelta))
            return .status(.success)
        }
    }

    /// True if every frame of `frames` is guest-accessible (MAPPED at 4K, 2M or 1G).
    /// - Complexity: O(runs in range).
    public func isAccessible(_ frames: Range<GuestFrameNumber>) -> Bool {
        guard !frames.isEmpty else { return true }
        var ok = true
        pdpte.forEachRun(in: frames.covering1G) { r, e in
            guard ok else { return }
            switch e.state {
            case .mapped: break
            case .nlMapped:
                let lo = max(frames.lowerBound, r.lowerBound.firstFrame), hi = min(frames.upperBound, r.upperBound.firstFrame)
                ok = isAccessibleBelow1G(lo..<hi)
            default: ok = false
            }
        }
        return ok
    }

    /// `isAccessible` for frames under NL_MAPPED 1G entries.
    func isAccessibleBelow1G(_ frames: Range<GuestFrameNumber>) -> Bool {
        var ok = true
        pde.forEachRun(in: frames.covering2M) { r, e in
            guard ok else { return }
            switch e.state {
            case .mapped: break
            case .nlMapped, .nlBlocked:
                let lo = max(frames.lowerBound, r.frames.lowerBound), hi = min(frames.upperBound, r.frames.upperBound)
                if !pte.allSatisfy(in: lo..<hi, { $0.state == .mapped }) { ok = false }
            default: ok = false
            }
        }
        return ok
    }
}
