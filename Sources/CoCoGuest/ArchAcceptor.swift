public import CostModel
public import MemoryModel

/// The result of an accept: done, or the guest was terminated (a fatal
/// platform event such as a failed 4K TDX accept or a double validation).
public enum AcceptOutcome: Equatable, Sendable {
    case ok
    case terminated(String)
}

/// `arch_accept_memory()`: the one call through which firmware and the
/// guest kernel accept memory on their platform. Implementations are the
/// guest-side drivers of each platform and software generation.
public protocol ArchAcceptor: AnyObject {
    /// Accepts `[r.start, r.end)` on `vcpu`, charging every operation to `clock`.
    func accept(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome
    /// When true, every TDCALL/PVALIDATE is simulated one at a time; when
    /// false, identical chunks are replayed. Both give the same state,
    /// counts and time (tests hold them equal).
    var stepByStep: Bool { get set }
}

/// Span replay, used by the kernel to replay identical `accept_memory()`
/// calls over uniform memory instead of stepping every TDCALL/PVALIDATE.
/// Not part of the accept interface a guest has, so `package`: the
/// simulation uses it, no other layer can. Units are 2M chunks of 512
/// frames.
package protocol ArchAcceptorReplay: ArchAcceptor {
    /// Signature of the platform state of the 2M chunk at `gfn`, or nil if not uniform.
    func chunkSignature(gfn: GuestFrameNumber) -> ReplayKey?
    /// Consecutive chunks from `gfn` (at most `limit`) that would behave like the first.
    func chunksSharing(_ sig: ReplayKey, from gfn: GuestFrameNumber, limit: UInt64) -> UInt64
    /// State of the chunk at `gfn` (after an accept), or nil if not uniform.
    func chunkState(gfn: GuestFrameNumber) -> ReplayKey?
    /// Puts `count` chunks from `gfn` into `state` (stepped from
    /// `signature`); returns the
    /// context-dependent operations the replay performed (see
    /// `contextOperations`), to be charged on top of the memo, or nil,
    /// with nothing changed, when the platform cannot replay that step
    /// (its own memo of it is gone): the caller steps instead.
    func replayChunks(signature: ReplayKey, state: ReplayKey, from gfn: GuestFrameNumber, count: UInt64) -> OpCounts?
    /// Running total of the operations whose count depends on context
    /// outside a chunk (TDX: upper S-EPT tables). Memos subtract what accrued
    /// while stepping; replays recompute it.
    var contextOperations: OpCounts { get }
    /// `calls` identical accept calls are about to be replayed on `vcpu`
    /// from phase time `now` (seconds): the host trace's clock (TDX; no-op elsewhere).
    func traceReplayBegins(vcpu: Int, now: Double, calls: UInt64)
    /// The replay ended at phase time `now`.
    func traceReplayEnded(now: Double)
}

extension ArchAcceptorReplay {
    package func traceReplayBegins(vcpu: Int, now: Double, calls: UInt64) {}
    package func traceReplayEnded(now: Double) {}
}

/// The guest's view of its platform: accepting, and whether memory may be touched.
public protocol GuestPlatform: AnyObject {
    var name: String { get }
    /// True if every 4K frame in `r` is accepted/validated.
    func isAccessible(_ r: AddressRange) -> Bool
    /// A load or store by the guest to the private 4K frame `gfn` on
    /// `vcpu`, outside any accept call: free when the frame is accepted,
    /// fatal otherwise, with the platform's own report of the access.
    /// Returns the platform operations the access caused (for the vCPU's
    /// clock) and the outcome.
    func touch(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, AcceptOutcome)
    /// Host memory committed to the guest, in bytes.
    var committedBytes: UInt64 { get }
    /// Counts of platform operations are kept by the clocks; this names the
    /// platform kind for reports ("tdx" or "snp").
    var kind: PlatformKind { get }
    /// `set_memory_decrypted()` (`toPrivate` false) or `set_memory_encrypted()`
    /// of `r` on `vcpu` through the platform's conversion path
    /// (`SharedMemory.swift`), charging `clock`. Every platform has one, as
    /// every TDX and SNP kernel converts its SWIOTLB at boot: no default,
    /// so a platform model without a to-shared path does not compile.
    func setMemoryEncrypted(_ r: AddressRange, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome
    /// What conversions have cost since boot.
    var sharedStats: SharedMemoryStats { get }
    /// Guest pages now shared (the kernel's `nr_shared` on TDX).
    var sharedPages: UInt64 { get }
    /// `vcpu` enters the idle loop with nothing to run and halts until an
    /// interrupt (`do_idle()` → `default_idle_call()` → `arch_cpu_idle()`;
    /// on TDX `tdx_safe_halt()`, a TDVMCALL<HLT> that blocks the vCPU in
    /// KVM outside guest mode). Default: nothing (a platform whose host
    /// model has no vCPU state).
    func halt(vcpu: Int)
    /// `vcpu` is woken to run work (an IPI that queues a task on it, or the
    /// firmware's mailbox loop it spins in): it is in guest mode. Default: nothing.
    func wake(vcpu: Int)
    /// A periodic interrupt at `hz` (0: none) on the vCPU that converts
    /// memory, from now until it is set to 0: the boot CPU's tick while
    /// start_kernel() runs with interrupts on (`KernelConfig.earlyTickHz`).
    /// A host that checks for events between the pieces of a conversion
    /// (KVM's TDX MapGPA) sees it pending. Default: nothing (no host
    /// conversion the model has is cut by events).
    func setConversionTick(hz: UInt64)
}

extension GuestPlatform {
    public func halt(vcpu: Int) {}
    public func wake(vcpu: Int) {}
    public func setConversionTick(hz: UInt64) {}
}

public enum PlatformKind: String, Sendable, CaseIterable {
    case tdx
    case snp
}

/// Memo of one replayable unit of work: the operations it took and the
/// state it left behind.
struct ReplayMemo {
    var counts: OpCounts
    var finalState: ReplayKey
}
