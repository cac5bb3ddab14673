public import CostModel
public import MemoryModel
import SNP

/// An SNP guest validating memory against the KVM SEV-SNP host model
/// (`SNPGuestDoorReplay`, conformed to by `KVM.SNPVM`): the same drivers as
/// `SNPAcceptor`, whose requests here meet the host's code paths, so each
/// PVALIDATE finds the RMP entry `sev_gmem_prepare()` made at the nested
/// page fault, and each page-state change goes through `snp_begin_psc()`
/// (or `snp_begin_psc_msr()`) and the VMM's `kvm_convert_memory()`.
///
/// The operations charged to the clock are the host's (`operations`
/// before and after each call), plus Linux's `sev_evict_cache()` of every
/// page validated when `evictsCache` is set. The SVSM path (VMPL above 0)
/// is not modelled on the host (`Scenario.validate()` refuses it).
public final class SNPHostAcceptor: ArchAcceptorReplay {
    public let guest: SNPHostGuest
    public let driver: SNPAcceptDriver
    public let costs: CostTable
    /// Stepping: the guest offers the host no replay windows (every PSC
    /// descriptor is issued); the host's own 4K runs are replayed either way
    /// (tested equal in the SNP host tests).
    public var stepByStep = false { didSet { guest.replayWindows = !stepByStep } }
    /// Linux's `sev_evict_cache()` after validating (7b306dfa326f, when the
    /// CPU lacks COHERENCY_SFW_NO): once per 4K page validated to private.
    public var evictsCache = false

    public init(guest: SNPHostGuest, driver: SNPAcceptDriver, costs: CostTable) {
        self.guest = guest
        self.driver = driver
        self.costs = costs
    }

    /// `snp_accept_memory()` (GHCB or MSR protocol) or edk2's pre-validation
    /// of `[r.start, r.end)`'s whole frames.
    /// - Complexity: the host's work: O(descriptors × log runs) for ranges
    ///   of uniform state, whose whole descriptors are replayed.
    public func accept(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        let frames = r.framesTruncated
        guard !frames.isEmpty else { return .ok }
        (guest.host as? any SNPHostTraceClock)?.traceCall(vcpu: vcpu, picoseconds: Self.picoseconds(clock, vcpu), calls: 1)
        let before = guest.host.operations
        // The host trace places the GHCB path's later exits after each
        // descriptor's eviction (`pvalidate_pages()`); the clock is charged below.
        guest.evictTracePicoseconds = driver == .linuxGHCB && evictsCache ? costs.vcpuPicoseconds[Op.snpEvictCache4K.index] : 0
        defer { guest.evictTracePicoseconds = 0 }
        var why: String?
        var validated = frames.length
        // A call over whole uniform 2M chunks is remembered for the kernel's span replay.
        let pre = stepByStep ? nil : chunkHost?.beginChunkStep(frames)
        lastStep = nil
        switch driver {
        case .linuxGHCB: why = guest.accept(frames, driver: .linux)
        case .edk2: why = guest.acceptEDK2(frames)
        case .linuxMSR: (why, validated) = guest.acceptMSR(frames)
        }
        var c = guest.host.operations - before
        if why == nil, let pre, let post = chunkHost?.endChunkStep(frames) { lastStep = (frames, pre, post) }
        // A failing GHCB descriptor's pages are not counted: the guest is dead and its time no longer matters.
        if driver != .edk2, evictsCache { c.add(.snpEvictCache4K, why == nil || driver == .linuxMSR ? validated : 0) }
        clock.charge(c, vcpu: vcpu, costs: costs)
        return why.map { .terminated($0) } ?? .ok
    }

    /// `vcpu`'s time in `clock`, picoseconds (0 for a vCPU the clock does not have).
    static func picoseconds(_ clock: PhaseClock, _ vcpu: Int) -> UInt64 {
        clock.vcpuPicoseconds.indices.contains(vcpu) ? clock.vcpuPicoseconds[vcpu] : 0
    }

    // MARK: ArchAcceptorReplay

    /// The host trace's clock for the kernel's replayed calls.
    package func traceReplayBegins(vcpu: Int, now: Double, calls: UInt64) {
        (guest.host as? any SNPHostTraceClock)?.traceCall(vcpu: vcpu, picoseconds: UInt64((now * 1e12).rounded()), calls: calls)
    }
    package func traceReplayEnded(now: Double) {
        (guest.host as? any SNPHostTraceClock)?.traceReplayEnded(picoseconds: UInt64((now * 1e12).rounded()))
    }

    /// The host's chunk replay (`SNPVM`), when the host has one.
    var chunkHost: (any SNPGuestChunkReplay)? { guest.host as? any SNPGuestChunkReplay }
    /// The last call remembered by the host: its frames and the keys of the
    /// state it started from and left.
    var lastStep: (frames: Range<GuestFrameNumber>, pre: UInt64, post: UInt64)?
    /// Frames per call of each memo the kernel took (`chunkState` answered
    /// for that call): the replay is of calls of that length.
    var memoFrames: [ReplayKey: UInt64] = [:]

    /// The key of the host state of the 2M chunk at `gfn` (`SNPVM.chunkKey`).
    /// - Complexity: O(log runs).
    package func chunkSignature(gfn: GuestFrameNumber) -> ReplayKey? {
        chunkHost?.chunkKey(Range(start: gfn, count: PageLevel.size2M.pages)).map { ReplayKey(state: $0) }
    }
    /// - Complexity: O(log runs) per run and chunk.
    package func chunksSharing(_ sig: ReplayKey, from gfn: GuestFrameNumber, limit: UInt64) -> UInt64 {
        (chunkHost?.framesSharing(sig.state, from: gfn, limit: limit * PageLevel.size2M.pages) ?? 0) / PageLevel.size2M.pages
    }
    /// The state the last call left at `gfn`, only when the host remembered
    /// that call (so a memo the kernel takes always has the host's memo behind it).
    package func chunkState(gfn: GuestFrameNumber) -> ReplayKey? {
        guard let s = lastStep, s.frames.contains(gfn) else { return nil }
        memoFrames[ReplayKey(state: s.pre)] = s.frames.length
        return ReplayKey(state: s.post)
    }
    /// The RMP has no context outside a chunk (the host's chunk keys refuse
    /// chunks whose folios could reach outside them).
    package var contextOperations: OpCounts { OpCounts() }
    /// The host replays the remembered calls (state per range, counters
    /// times the number of calls); the kernel charges the memo's operations.
    /// - Complexity: O(log runs).
    /// Nil, with nothing changed, when the host has no memo of the stepped
    /// call (`replayChunkSteps` checks before it changes anything): stepped.
    package func replayChunks(signature: ReplayKey, state: ReplayKey, from gfn: GuestFrameNumber, count: UInt64) -> OpCounts? {
        let frames = count * PageLevel.size2M.pages
        guard let n = memoFrames[signature], n > 0, frames % n == 0, let h = chunkHost,
              h.replayChunkSteps(pre: signature.state, post: state.state, from: gfn, frames: n, calls: frames / n) else { return nil }
        guest.acceptedByReplay(Range(start: gfn, count: frames))
        return OpCounts()
    }
}
