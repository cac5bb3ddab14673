public import CostModel
public import MemoryModel

/// The seam between the guest's TDCALLs and the host: the TDX module's
/// answer to TDG.MEM.PAGE.ACCEPT and the host's reaction to the EPT
/// violations it causes. The KVM module's `TDXVM` (KVM's TDX MMU on the TDX
/// module's S-EPT) implements it.
///
/// Frame numbers are guest frame numbers; the host converts them to host
/// frames internally (memslot and guest_memfd).
public protocol TDXHost: AnyObject {
    /// TDG.MEM.PAGE.ACCEPT (`tdg_mem_page_accept.c`): the module's answer for
    /// one TDCALL at `gfn` and `level`, applying its state change on success.
    func accept(gfn: GuestFrameNumber, level: PageLevel) -> AcceptCallResult
    /// The same TDCALL on `vcpu` at its virtual time `now` (seconds): the
    /// TD dispatcher's host-priority timeout needs both
    /// (`TrustDomain.tdcallReturned`). Default: `accept(gfn:level:)`.
    func accept(gfn: GuestFrameNumber, level: PageLevel, vcpu: Int, now: Double) -> AcceptCallResult
    /// KVM's handling of an ACCEPT-type EPT violation
    /// (`tdx_handle_ept_violation()` → fault → AUG). Returns the host
    /// operations it performed, to be charged to the faulting vCPU.
    func handleEPTViolation(gfn: GuestFrameNumber, acceptLevel: PageLevel) -> OpCounts
    /// True if every frame in `frames` is accepted (guest-accessible).
    func isAccessible(_ frames: Range<GuestFrameNumber>) -> Bool
    /// A guest load or store to private `gfn` on `vcpu` outside any
    /// TDCALL: KVM faults the page in if it is not mapped, and an access to
    /// a page still PENDING is fatal (`tdx_handle_ept_violation()` →
    /// `tdx_is_sept_violation_unexpected_pending()`). Returns the host
    /// operations performed and, when the TD died, why.
    func guestAccess(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, fatal: String?)
    /// Frames backed by host memory, plus S-EPT pages, in 4K pages.
    var committedPages: UInt64 { get }
    /// TDG.VP.VMCALL<MapGPA> of `frames` (the guest's `tdx_map_gpa()`):
    /// the host converts the range to private or shared and says how.
    /// Default: a host without a VMM behind it, which cannot convert.
    func mapGPA(_ frames: Range<GuestFrameNumber>, toPrivate: Bool) -> MapGPAResult
    /// The same TDVMCALL with events: after each 2 MiB piece but the last
    /// the host asks `hasEvents` (KVM's `kvm_vcpu_has_events()`, given what
    /// the call has done so far) and, when true, ends the call with
    /// TDVMCALL_STATUS_RETRY and the next GPA in R11 (`retryAt`). Default:
    /// a host that has no events to check, `mapGPA(_:toPrivate:)`.
    func mapGPA(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, hasEvents: (MapGPAResult) -> Bool) -> MapGPAResult
    /// TDG.VP.VMCALL<Instruction.HLT> on `vcpu` (the guest's idle loop,
    /// `tdx_safe_halt()`): KVM's `tdx_emulate_hlt()` →
    /// `kvm_emulate_halt_noskip()` blocks the vCPU outside guest mode, where
    /// `tdx_track()`'s kicks do not reach it. Default: a host that keeps no
    /// vCPU state, nothing.
    func halt(vcpu: Int)
    /// An interrupt for the halted `vcpu` (an IPI, its timer) wakes it and
    /// it re-enters the TD; a vCPU in guest mode stays as it is. Default: nothing.
    func wake(vcpu: Int)
}

/// The host's answer to one TDG.VP.VMCALL<MapGPA> and what it did for it.
public struct MapGPAResult: Sendable, Equatable {
    /// KVM_HC_MAP_GPA_RANGE exits to the VMM (KVM's `__tdx_map_gpa()`:
    /// one per TDX_MAP_GPA_MAX_LEN, 2 MiB).
    public var vmmExits: UInt64 = 0
    /// Private leaves the conversion removed from the S-EPT
    /// (TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE each).
    public var zappedLeaves: UInt64 = 0
    /// Host operations, charged to the vCPU that waits on the TDVMCALL.
    public var counts = OpCounts()
    /// Why the conversion failed (the TDVMCALL's error, or the TD died); nil: done.
    public var failure: String? = nil
    /// TDVMCALL_STATUS_RETRY: the GPA (as a frame) the guest is to re-issue
    /// the MapGPA from, R11 (`tdx_complete_vmcall_map_gpa()`); nil: the
    /// call ended (done or failed).
    public var retryAt: GuestFrameNumber? = nil
    public init(vmmExits: UInt64 = 0, zappedLeaves: UInt64 = 0, counts: OpCounts = OpCounts(), failure: String? = nil) {
        self.vmmExits = vmmExits; self.zappedLeaves = zappedLeaves; self.counts = counts; self.failure = failure
    }
}

extension TDXHost {
    public func mapGPA(_ frames: Range<GuestFrameNumber>, toPrivate: Bool) -> MapGPAResult {
        MapGPAResult(failure: "TDVMCALL_STATUS_INVALID_OPERAND: this host has no VMM to convert memory")
    }

    public func mapGPA(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, hasEvents: (MapGPAResult) -> Bool) -> MapGPAResult {
        mapGPA(frames, toPrivate: toPrivate)
    }

    public func accept(gfn: GuestFrameNumber, level: PageLevel, vcpu: Int, now: Double) -> AcceptCallResult {
        accept(gfn: gfn, level: level)
    }

    public func halt(vcpu: Int) {}
    public func wake(vcpu: Int) {}
}

/// Bulk support: identical chunks are replayed instead of re-simulated.
/// Not part of the TDCALL interface (the guest cannot ask the host any of
/// this), so `package`: only the guest's accept driver uses it to replay
/// its own identical TDCALL sequences.
package protocol TDXHostReplay: TDXHost {
    /// A value identifying everything the host's answers for the 2M chunk at
    /// `gfn` depend on, or nil if the chunk is not uniform.
    func chunkSignature(gfn: GuestFrameNumber) -> ReplayKey?
    /// How many consecutive 2M chunks from `gfn` (at most `limit`) share
    /// `signature`, so that each would behave exactly like the first.
    func chunksSharing(_ signature: ReplayKey, from gfn: GuestFrameNumber, limit: UInt64) -> UInt64
    /// Called before the chunk at `gfn` is stepped, so that a host keeping
    /// its own tallies can memoise what the step does.
    func beginChunkStep(gfn: GuestFrameNumber)
    /// The uniform state of the 2M chunk at `gfn` after it was stepped, or nil.
    func chunkState(gfn: GuestFrameNumber) -> ReplayKey?
    /// Puts `count` chunks from `gfn` into `state`, as stepping each of them
    /// from `signature` would have, and returns the operations that depend
    /// on context outside the chunk (upper S-EPT tables and the like),
    /// which the caller charges on top of its memo. Nil, with nothing
    /// changed, when the host has no memo of a step from `signature` to
    /// `state` (the caller's memo outlived the host's): the caller steps.
    func replay(signature: ReplayKey, state: ReplayKey, to gfn: GuestFrameNumber, count: UInt64) -> OpCounts?
    /// Running total of the context-dependent operations (upper S-EPT table
    /// adds) this host has performed, stepped or replayed. A memo of stepped
    /// work subtracts the part of this total that accrued while stepping,
    /// since `replay` recomputes it for each span.
    var contextOperations: OpCounts { get }
    /// The status TDG.MEM.PAGE.ACCEPT at `level` returns whatever the TD's
    /// state (this module refuses 1G with TDX_OPERAND_INVALID, changing
    /// nothing), or nil if the answer depends on the state.
    func stateIndependentAccept(level: PageLevel) -> TDXStatus?
    /// Counts `count` such accepts, as the module would have.
    func recordStateIndependentAccepts(level: PageLevel, count: UInt64)
    /// The model's clock for the host trace (the host sees each exit's
    /// time; the model's time is the vCPU's phase clock): `calls` guest
    /// accept calls begin on `vcpu` at phase time `now` (seconds).
    func traceCall(vcpu: Int, now: Double, calls: UInt64)
    /// The vCPU's phase time before a bulk replay.
    func traceClock(vcpu: Int, now: Double)
    /// The vCPU's phase time after a bulk replay: the replayed exits span the two.
    func traceReplayEnded(now: Double)
}

extension TDXHostReplay {
    package func traceCall(vcpu: Int, now: Double, calls: UInt64) {}
    package func traceClock(vcpu: Int, now: Double) {}
    package func traceReplayEnded(now: Double) {}
}
