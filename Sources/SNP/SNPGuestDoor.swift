public import CostModel
public import MemoryModel

/// One entry of a Page State Change request (`struct psc_entry` in the
/// GHCB: gfn, operation, pagesize).
public struct PSCEntry: Sendable, Equatable {
    public var gfn: GuestFrameNumber
    public var level: PageLevel
    /// VMGEXIT_PSC_OP_PRIVATE (true) or VMGEXIT_PSC_OP_SHARED (false).
    public var toPrivate: Bool
    public init(gfn: GuestFrameNumber, level: PageLevel, toPrivate: Bool) {
        self.gfn = gfn; self.level = level; self.toPrivate = toPrivate
    }
}

/// What the hypervisor writes to SW_EXITINFO2 after a PSC VMGEXIT
/// (`snp_complete_psc()`): 0, or the GHCB spec's error codes.
public enum PSCStatus: Sendable, Equatable {
    case ok
    /// VMGEXIT_PSC_ERROR_INVALID_HDR: more entries than VMGEXIT_PSC_MAX_COUNT.
    case invalidHeader
    /// VMGEXIT_PSC_ERROR_INVALID_ENTRY: a 2M entry's GFN not 2M-aligned.
    case invalidEntry
    /// VMGEXIT_PSC_ERROR_GENERIC: userspace failed the KVM_HC_MAP_GPA_RANGE exit.
    case generic
    /// No error, but the header the hypervisor wrote back has `cur_entry`
    /// below the guest's or `end_entry` above it: what Linux's
    /// `vmgexit_psc()` checks ("SNP: PSC processing going backward"), which
    /// only a hypervisor "tricking us" produces.
    case processingWentBackward
}

/// The SEV-SNP host as an SNP guest reaches it: Page State Change
/// VMGEXITs through the GHCB, the PVALIDATE and RMPADJUST instructions
/// (whose RMP checks may raise nested page faults the host resolves before
/// the instruction retries), and plain accesses. The KVM host model
/// (`SNPVM`) conforms; the guest's drivers in `CoCoGuest` use only this.
public protocol SNPGuestDoor: AnyObject {
    /// SVM_VMGEXIT_PSC with the entries of one `snp_psc_desc`.
    func pageStateChange(_ entries: [PSCEntry]) -> PSCStatus
    /// PVALIDATE of `gfn` at `level` (validate or rescind). Nil when the
    /// instruction never completes: the host keeps answering its nested
    /// page faults without resolving them.
    func pvalidate(gfn: GuestFrameNumber, level: PageLevel, validate: Bool) -> PvalidateResult?
    /// RMPADJUST at VMPL0 granting `vmpl` the permissions `perms`. Nil as for `pvalidate`.
    func rmpadjust(gfn: GuestFrameNumber, level: PageLevel, vmpl: Int, perms: UInt8) -> PvalidateResult?
    /// A load or store with the C-bit set. Returns why the guest died, or nil.
    func access(gfn: GuestFrameNumber) -> String?
    /// A page-state change through the GHCB MSR protocol
    /// (`GHCB_MSR_PSC_REQ`, one 4K page, before a GHCB exists): `.ok`, or
    /// `.generic` for the response's error (GHCB_MSR_PSC_RESP with a non-zero
    /// error field).
    func msrPageStateChange(gfn: GuestFrameNumber, toPrivate: Bool) -> PSCStatus
}

/// Bulk support beside `SNPGuestDoor` (no real interface has it): 4K
/// PVALIDATEs of a run of frames, replayed by runs of identical state, and
/// the 4K PSC entries of a range. Results equal stepping frame by frame
/// (tested).
public protocol SNPGuestDoorReplay: SNPGuestDoor {
    /// PVALIDATE (validate) at 4K of each frame of `frames` in ascending
    /// order, stopping at the first that does not succeed.
    /// - Returns: the frame that failed and its result (nil result: never
    ///   completes), or nil when all succeeded.
    func pvalidate4K(_ frames: Range<GuestFrameNumber>) -> (gfn: GuestFrameNumber, result: PvalidateResult?)?
    /// The guest is about to work through `frames` in equal units, each
    /// with the same requests.
    func beginReplayWindow(_ frames: Range<GuestFrameNumber>)
    /// The guest has worked through the window's first unit, `stepped`:
    /// true if the host replayed the rest (its state and counters as if the
    /// guest had made the same requests for every unit), so the guest skips it.
    func finishReplayWindow(stepped: Range<GuestFrameNumber>) -> Bool
    /// For each frame of `frames` in ascending order, an MSR-protocol
    /// page-state change to private and a 4K PVALIDATE (Linux's
    /// `__page_state_change()` before a GHCB exists), stopping at the first
    /// that fails: its frame, the PSC status and, when the PSC succeeded,
    /// PVALIDATE's result (nil: never completes).
    func msrValidate4K(_ frames: Range<GuestFrameNumber>) -> (gfn: GuestFrameNumber, psc: PSCStatus, result: PvalidateResult?)?
    /// The operations the host has charged so far (for the guest's clock).
    var operations: OpCounts { get }
    /// Loads or stores to each frame of `frames` in ascending order with
    /// the C-bit set (`cBit`) or clear, as the guest's page tables have it,
    /// stopping at the first that kills the guest (returned: why).
    func access(_ frames: Range<GuestFrameNumber>, cBit: Bool) -> String?
}

/// The host's half of the guest kernel's span replay (`ArchAcceptorReplay`
/// of `SNPHostAcceptor`): whole `accept_memory()` calls over 2M chunks
/// whose host state is the same (one memslot, the same NPT leaf, RMP entry,
/// attributes, folio size and allocation, VMM mapping, host references,
/// backing, host-frame phase and page-state-change answer) take the same
/// requests and leave the same state, so after one such call has been
/// stepped the following ones are replayed: the end state assigned per
/// range, the host's counters added times the number of calls. Not part
/// of the guest's interface, so `package`.
package protocol SNPGuestChunkReplay: AnyObject {
    /// The key of the host state of `frames` (whole 2M-aligned chunks) when
    /// every chunk holds one state, the same for all, and nothing outside a
    /// chunk can take part in its requests; otherwise nil.
    func chunkKey(_ frames: Range<GuestFrameNumber>) -> UInt64?
    /// Frames from `from` (at most `limit`, whole chunks) whose chunks all hold state `key`.
    func framesSharing(_ key: UInt64, from: GuestFrameNumber, limit: UInt64) -> UInt64
    /// The guest is about to make one call's requests over `frames`:
    /// returns the key of their state when uniform (`chunkKey`).
    func beginChunkStep(_ frames: Range<GuestFrameNumber>) -> UInt64?
    /// The call over `frames` ended; the key of the state it left in every
    /// chunk when it is remembered for replay (its start was uniform, it
    /// raised no warning and failed nothing, its end is uniform), else nil.
    func endChunkStep(_ frames: Range<GuestFrameNumber>) -> UInt64?
    /// Replays `calls` calls of `frames` frames each from `from`, remembered
    /// from key `pre` to key `post`; false (nothing changed) without such a memo.
    func replayChunkSteps(pre: UInt64, post: UInt64, from: GuestFrameNumber, frames: UInt64, calls: UInt64) -> Bool
}

/// The host trace's clock (`--host-trace` on the SNP host): the guest's
/// drivers tell the host when each accept call begins on which vCPU, so
/// the exits it makes are placed in virtual time. Not part of the guest's
/// interface, so `package`.
package protocol SNPHostTraceClock: AnyObject {
    /// `calls` accept calls begin on `vcpu` at phase time `picoseconds`
    /// (one stepped, or several the kernel replays).
    func traceCall(vcpu: Int, picoseconds: UInt64, calls: UInt64)
    /// The replayed calls ended at phase time `picoseconds`.
    func traceReplayEnded(picoseconds: UInt64)
    /// The guest spent `picoseconds` of its own vCPU time inside the current
    /// call (Linux's `sev_evict_cache()` after a descriptor's PVALIDATEs):
    /// the exits after it come that much later. With `endsReplay` the work
    /// followed the units of a replayed window, and the replayed record ends
    /// after it.
    func traceGuestWork(picoseconds: UInt64, endsReplay: Bool)
}
