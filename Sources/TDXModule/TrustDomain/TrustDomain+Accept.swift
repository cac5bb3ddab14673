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
    /// - TDX_OPERAND_INVALID: 1G (this module accepts 4K and 2M only) or misaligned;
    /// - TDX_OPERAND_BUSY: the host holds the entry (not reachable in a
    ///   single-threaded run; listed for completeness).
    ///
    /// `features.acceptWalkCases` selects the spec's answer (SIZE_MISMATCH)
    /// for an accepted leaf above the requested level.
    /// - Complexity: O(log runs).
    public func accept(gfn: GuestFrameNumber, level: PageLevel) -> AcceptCallResult {
        let r = acceptResult(gfn: gfn, level: level)
        switch r {
        case .status(let s): calls.record(.tdgMemPageAccept, s)
        case .eptViolation: break
        }
        return r
    }

    func acceptResult(gfn: GuestFrameNumber, level: PageLevel) -> AcceptCallResult {
        guard level != .size1G, gfn.isAligned(to: level) else { return .status(.operandInvalid) }
        guard upperPresent(gfn) else { return .eptViolation(acceptLevel: level) }
        let e2 = pde.value(at: gfn.region2M)
        if level == .size2M {
            switch e2.state {
            case .free, .blocked, .pendingBlocked: return .eptViolation(acceptLevel: level)
            // Case 3: the walk reached the 2M level at a non-free non-leaf,
            // blocked or not.
            case .nlMapped, .nlBlocked: return .status(.pageSizeMismatch)
            case .mapped: return .status(.pageAlreadyAccepted)
            case .pending:
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
        let e = pte.value(at: gfn)
        switch e.state {
        case .pending:
            pte.assign(gfn.only, SEPTEntry(.mapped, hfnDelta: e.hfnDelta))
            return .status(.success)
        case .mapped: return .status(.pageAlreadyAccepted)
        default: return .eptViolation(acceptLevel: level)
        }
    }

    /// True if every frame of `frames` is guest-accessible (MAPPED at 4K or 2M).
    /// - Complexity: O(runs in range).
    public func isAccessible(_ frames: Range<GuestFrameNumber>) -> Bool {
        guard !frames.isEmpty else { return true }
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
