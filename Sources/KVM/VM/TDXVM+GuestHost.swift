public import CostModel
public import MemoryModel
public import TDXModule

/// The guest's platform seam: the guest's TDCALLs go to the module, its
/// EPT violations to KVM.
extension TDXVM: TDXHostReplay {
    /// TDG.MEM.PAGE.ACCEPT, answered by the module. An injected
    /// `accept-interrupt` is an interrupt pending for the vCPU during the
    /// call; it is consumed only when the module stopped on it (a 2M accept
    /// of a PENDING page with chunks left), else it is delivered after the
    /// TDCALL like any interrupt and changes nothing the model keeps.
    /// - Complexity: O(log runs).
    public func accept(gfn: GuestFrameNumber, level: PageLevel) -> AcceptCallResult {
        // Once KVM_RUN has failed or the VM is dead, the vCPU does not run again.
        guard outcome == .ok else { return .status(.operandInvalid) }
        let refusals = module.hostPriorityRefusals
        let r = module.accept(gfn: gfn, level: level, guestInterruptPending: faults.isArmed(.acceptInterrupt))
        switch r {
        case .interrupted(let done):
            _ = faults.fire(.acceptInterrupt)
            note("ACCEPT 2M \(gfn.alignedDown(to: .size2M).address): interrupt pending after chunk \(done)/512: TD exit, TDH.VP.ENTER, the TDCALL re-executes")
        case .status(.operandBusy) where module.hostPriorityRefusals > refusals:
            note("ACCEPT \(level) \(gfn.address): TDX_OPERAND_BUSY_HOST_PRIORITY (the guest sees TDX_OPERAND_BUSY): the host's retry is pending")
        default: break
        }
        return r
    }

    /// TDG.MEM.PAGE.ACCEPT on `vcpu` at virtual time `now`, with the TD
    /// dispatcher's host-priority bookkeeping after it: when the vCPU has
    /// been refused for host priority for HP_LOCK_TIMEOUT, it TD-exits with
    /// TDX_HOST_PRIORITY_BUSY_TIMEOUT (0x9000020500000000). KVM's
    /// `tdx_to_vmx_exit_reason()` has no exit reason for that status and
    /// `tdx_handle_exit()` sends any status with TDX_ERROR set to
    /// `unhandled_exit`: KVM_EXIT_INTERNAL_ERROR
    /// (KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON) to the VMM, and QEMU
    /// stops a VM on an internal error. The guest's TDCALL never returns.
    /// - Complexity: O(log runs).
    public func accept(gfn: GuestFrameNumber, level: PageLevel, vcpu: Int, now: Double) -> AcceptCallResult {
        if hostTrace != nil { hostTrace!.vcpu = vcpu; hostTrace!.now = now }
        let refusals = module.hostPriorityRefusals
        let r = accept(gfn: gfn, level: level)
        guard outcome == .ok else { return r }
        let refused: Bool
        switch r {
        case .eptViolation: return r  // an EPT-violation TD exit, not the TDCALL's return
        case .interrupted: refused = false
        case .status: refused = module.hostPriorityRefusals > refusals
        }
        if module.tdcallReturned(vcpu: vcpu, refusedForHostPriority: refused, now: now) {
            let why = "TDH.VP.ENTER: TDX_HOST_PRIORITY_BUSY_TIMEOUT on vCPU \(vcpu) (its ACCEPTs refused for host priority "
                + "for HP_LOCK_TIMEOUT \(module.hpLockTimeout) s): KVM_EXIT_INTERNAL_ERROR, the VMM stops the VM"
            kill(.vmDead(why))
        }
        return r
    }

    /// An ACCEPT-type EPT violation (`tdx_handle_ept_violation()`).
    public func handleEPTViolation(gfn: GuestFrameNumber, acceptLevel: PageLevel) -> OpCounts {
        handleEPTViolation(gfn: gfn, acceptLevel: Optional(acceptLevel))
    }

    /// - Complexity: O(log runs + k).
    public func isAccessible(_ frames: Range<GuestFrameNumber>) -> Bool { module.isAccessible(frames) }

    /// A guest access to private memory outside a TDCALL. An unmapped GPA
    /// takes an EPT violation that KVM resolves by TDH.MEM.PAGE.AUG (the
    /// page is then PENDING); the retried access to a PENDING page exits
    /// with a pending-EPT-violation qualification, and with SEPT_VE_DISABLE
    /// (which Linux guests require) KVM marks the VM dead: "Guest access
    /// before accepting 0x%llx on vCPU %d" (`tdx_handle_ept_violation()`,
    /// 6.16; later kernels exit to user space with a zero-size
    /// KVM_EXIT_MEMORY_FAULT instead, which QEMU treats as fatal). Without
    /// SEPT_VE_DISABLE the guest takes a #VE, and Linux's handler panics on
    /// an EPT violation for a private GPA (`virt_exception_kernel()`).
    /// - Complexity: O(log runs).
    public func guestAccess(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, fatal: String?) {
        guard outcome == .ok else { return (OpCounts(), "the TD is no longer running") }
        if module.isAccessible(gfn.only) { return (OpCounts(), nil) }
        if hostTrace != nil { hostTrace!.vcpu = vcpu }
        var c = OpCounts()
        if !isMapped(gfn) { c = handleEPTViolation(gfn: gfn, acceptLevel: nil) }
        guard outcome == .ok else { return (c, "\(outcome)") }
        guard isMapped(gfn) else { return (c, "KVM could not map \(gfn.address)") }
        if options.septVEDisable {
            let why = "Guest access before accepting \(gfn.address) on vCPU \(vcpu)"
            guestKilled(why)
            return (c, "KVM: VM dead: " + why)
        }
        return (c, "kernel panic: Unexpected EPT-violation on private memory at \(gfn.address) (#VE)")
    }

    package func chunkSignature(gfn: GuestFrameNumber) -> ReplayKey? {
        guard let st = chunkStateOf(gfn.region2M), acceptReplayAllowed(st) else { return nil }
        return st.key
    }

    package func chunksSharing(_ signature: ReplayKey, from gfn: GuestFrameNumber, limit: UInt64) -> UInt64 {
        chunksSharing(signature, fromChunk: gfn.region2M, limit: limit)
    }

    package func beginChunkStep(gfn: GuestFrameNumber) {
        if let st = chunkStateOf(gfn.region2M), acceptReplayAllowed(st) { beginChunkStep(gfn: gfn, key: st.key) }
    }

    /// After a step begun at `gfn`: its final state only if the host
    /// memoised the step (so a memo the guest takes always has the host's
    /// behind it, as `SNPHostAcceptor.chunkState` does). Otherwise the
    /// chunk's current state.
    package func chunkState(gfn: GuestFrameNumber) -> ReplayKey? {
        if let s = stepSignature, s.gfn == gfn {
            guard let f = finishChunkStep(gfn: gfn), f.memoised else { return nil }
            return f.final
        }
        return chunkStateOf(gfn.region2M)?.key
    }

    package func replay(signature: ReplayKey, state: ReplayKey, to gfn: GuestFrameNumber, count: UInt64) -> OpCounts? {
        replay(signature: signature, final: state, fromChunk: gfn.region2M, count: count)
    }

    package var contextOperations: OpCounts { contextOps }

    package func stateIndependentAccept(level: PageLevel) -> TDXStatus? {
        // A dead VM answers every TDCALL without the module (see `accept`).
        replayAllowed && outcome == .ok ? module.stateIndependentAcceptStatus(level: level) : nil
    }

    package func recordStateIndependentAccepts(level: PageLevel, count: UInt64) {
        if let s = module.stateIndependentAcceptStatus(level: level) { module.recordAccepts(s, count: count) }
    }

    package func traceCall(vcpu: Int, now: Double, calls: UInt64) {
        if hostTrace != nil { hostTrace!.beginCall(vcpu: vcpu, now: now, calls: calls) }
    }

    package func traceClock(vcpu: Int, now: Double) {
        if hostTrace != nil { hostTrace!.vcpu = vcpu; hostTrace!.now = now }
    }

    package func traceReplayEnded(now: Double) {
        if hostTrace != nil { hostTrace!.replayEnded(now: now) }
    }

    // MARK: Build time

    /// KVM_TDX_INIT_MEM_REGION: the initial image, mapped at 4K through the
    /// mirror (tables linked with SEPT.ADD) and added with TDH.MEM.PAGE.ADD
    /// (after `tdx_pamt_get()` under DPAMT). Only before `finalize()`.
    /// - Returns: the operations, charged to build time.
    /// - Complexity: O(frames × log runs).
    public func addInitialMemory(_ frames: Range<GuestFrameNumber>) throws -> OpCounts {
        guard !tdx.isRunnable else { throw CocomemError(.invalidArgument, "KVM_TDX_INIT_MEM_REGION after the TD is finalized") }
        let before = ops
        for g in frames {
            guard slot(g) != nil, attributes.isPrivate(g) else {
                throw CocomemError(.invalidArgument, "initial memory at \(g.address) is not private memory in a memslot")
            }
            guard linkUpperTables(g) == nil else { throw CocomemError(.invalidArgument, "SEPT.ADD failed at \(g.address)") }
            let c = g.region2M
            if mmu.mirror2M.value(at: c) == .none {
                _ = module.septAdd(gfn: g, entryLevel: 2, pageHFN: allocSeptPage(viaSplitCache: false))
                ops.add(.tdxSeptAdd)
                mmu.setMirror2M(c.only, .table)
            }
            guard !mmu.mirror4K.value(at: g) else { continue }
            gmem.allocate(g.only)
            let p = pamtGet(hfn: hfn(g))
            guard p == .success else { throw CocomemError(.invalidArgument, "TDH.PHYMEM.PAMT.ADD \(p) at \(g.address)") }
            let s = module.pageAdd(gfn: g, hfn: hfn(g))
            ops.add(.tdxPageAdd)
            guard s == .success else { throw CocomemError(.invalidArgument, "TDH.MEM.PAGE.ADD \(s) at \(g.address)") }
            mmu.setMirror4K(g.only, true)
        }
        return ops - before
    }
}
