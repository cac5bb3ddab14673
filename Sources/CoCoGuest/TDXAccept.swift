public import CostModel
public import MemoryModel
public import TDXModule

/// Who issues the TDCALLs, which decides what a non-success status means.
public enum TDXAcceptDriver: Sendable {
    /// Linux `tdx_accept_memory()` (`arch/x86/coco/tdx/tdx-shared.c`): try
    /// 1G, then 2M, then 4K; any non-zero status means "try smaller"; a 4K
    /// failure returns false and the caller panics ("TDX: Failed to accept memory").
    case linux
    /// edk2 `TdAcceptPages()` (`MdePkg/Library/TdxLib/AcceptPages.c`) at a
    /// given page size: SIZE_MISMATCH recurses as 512 smaller pages,
    /// ALREADY_ACCEPTED is tolerated (counted as a duplicate), BUSY is
    /// retried up to 3 times, anything else fails.
    case edk2(pageSize: PageLevel)
}

/// A TDX guest accepting memory through TDG.MEM.PAGE.ACCEPT against a `TDXHost`.
public final class TDXAcceptor: ArchAcceptorReplay {
    /// The host behind the TDCALLs, with its replay hooks (`package`).
    package let host: any TDXHostReplay
    public let driver: TDXAcceptDriver
    public let costs: CostTable
    public var stepByStep = false
    /// Told the bytes each accept call gets through, 2 MiB chunk by chunk
    /// (issue 14's progress line of `--step-by-step` boots); nil: nobody asks.
    package var progress: (any ProgressReporter)?
    /// Bytes of the current call already told to `progress`.
    private var reportedInCall: UInt64 = 0
    private var memo: [ReplayKey: ReplayMemo] = [:]
    /// The vCPU of the current call and its virtual time when the call
    /// started (picoseconds): a TDCALL's time is that plus what the call
    /// has charged so far.
    private var callVCPU = 0
    private var callStart: UInt64 = 0

    package init(host: any TDXHostReplay, driver: TDXAcceptDriver, costs: CostTable) {
        self.host = host
        self.driver = driver
        self.costs = costs
    }

    static func op(_ level: PageLevel, _ s: TDXStatus) -> Op {
        switch (level, s) {
        case (.size4K, .success): .tdxAccept4KSuccess
        case (.size4K, .pageSizeMismatch): .tdxAccept4KSizeMismatch
        case (.size4K, .pageAlreadyAccepted): .tdxAccept4KAlreadyAccepted
        case (.size4K, _): .tdxAccept4KOperandInvalid
        case (.size2M, .success): .tdxAccept2MSuccess
        case (.size2M, .pageSizeMismatch): .tdxAccept2MSizeMismatch
        case (.size2M, .pageAlreadyAccepted): .tdxAccept2MAlreadyAccepted
        case (.size2M, _): .tdxAccept2MOperandInvalid
        case (.size1G, .success): .tdxAccept1GSuccess
        case (.size1G, .pageSizeMismatch): .tdxAccept1GSizeMismatch
        case (.size1G, .pageAlreadyAccepted): .tdxAccept1GAlreadyAccepted
        case (.size1G, _): .tdxAccept1GOperandInvalid
        }
    }

    static func eptOp(_ level: PageLevel) -> Op {
        switch level {
        case .size4K: .tdxAccept4KEPTViolation
        case .size2M: .tdxAccept2MEPTViolation
        case .size1G: .tdxAccept1GEPTViolation
        }
    }

    /// One TDCALL, re-executed after each EPT violation the host resolves
    /// and after each interrupt that stopped a 2M accept (RIP was not
    /// advanced: the guest's code does not see it, the CPU runs the TDCALL
    /// again; at most 511 times per page, each resuming one chunk further).
    func tdcall(gfn: GuestFrameNumber, level: PageLevel, counts c: inout OpCounts) -> TDXStatus {
        // A TDCALL that keeps exiting without the host changing anything is
        // a livelock; it is cut off and reported as a failed accept.
        var exits = 0
        while exits < 64 {
            switch host.accept(gfn: gfn, level: level, vcpu: callVCPU, now: now(c)) {
            case .status(let s):
                c.add(Self.op(level, s))
                return s
            case .interrupted:
                c.add(.tdxAcceptInterruptExit)
            case .eptViolation(let acceptLevel):
                exits += 1
                c.add(Self.eptOp(level))
                let before = c
                c.add(host.handleEPTViolation(gfn: gfn, acceptLevel: acceptLevel))
                if c == before { return .operandInvalid }  // host made no progress
            }
        }
        return .operandInvalid
    }

    /// The vCPU's virtual time in seconds after `c` of the current call
    /// (after `outer` too, while a chunk is stepped on counts of its own).
    func now(_ c: OpCounts) -> Double {
        var ps = callStart
        for i in c.counts.indices where c.counts[i] != 0 { ps &+= costs.vcpuPicoseconds[i] &* c.counts[i] }
        for i in outer.counts.indices where outer.counts[i] != 0 { ps &+= costs.vcpuPicoseconds[i] &* outer.counts[i] }
        return Double(ps) / 1e12
    }

    /// What the current call charged before the chunk being stepped (whose
    /// step counts on a fresh `OpCounts`): its TDCALLs happen after it.
    private var outer = OpCounts()

    public func accept(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        callVCPU = vcpu
        callStart = clock.vcpuPicoseconds.indices.contains(vcpu) ? clock.vcpuPicoseconds[vcpu] : 0
        host.traceCall(vcpu: vcpu, now: Double(callStart) / 1e12, calls: 1)
        var c = OpCounts()
        let outcome: AcceptOutcome
        reportedInCall = 0
        switch driver {
        case .linux: outcome = linuxAccept(r, counts: &c)
        case .edk2(let size): outcome = edk2Accept(r, pageSize: size, counts: &c)
        }
        if outcome == .ok, r.size > reportedInCall { progress?.advance(by: r.size - reportedInCall) }
        clock.charge(c, vcpu: vcpu, costs: costs)
        return outcome
    }

    /// `chunks` 2 MiB chunks of the current call are accepted.
    private func report(chunks: UInt64) {
        guard let progress else { return }
        let bytes = chunks * PageLevel.size2M.bytes
        reportedInCall += bytes
        progress.advance(by: bytes)
    }

    // MARK: Linux

    /// `try_accept_one()`: false without a TDCALL when misaligned or too short.
    func tryAcceptOne(gfn: GuestFrameNumber, frames: UInt64, level: PageLevel, counts c: inout OpCounts) -> Bool {
        guard gfn.isAligned(to: level), frames >= level.pages else { return false }
        return tdcall(gfn: gfn, level: level, counts: &c) == .success
    }

    func linuxAccept(_ r: AddressRange, counts c: inout OpCounts) -> AcceptOutcome {
        let frames = r.framesTruncated
        var g = frames.lowerBound
        let end = frames.upperBound
        let huge = PageLevel.size1G.pages, chunk = PageLevel.size2M.pages
        while g < end {
            if !stepByStep, g.isAligned(to: .size1G), let n = replayWholeRegions(from: g, end: end, counts: &c) {
                g = g + n * huge
                continue
            }
            if tryAcceptOne(gfn: g, frames: end - g, level: .size1G, counts: &c) { g = g + huge; continue }
            if g.isAligned(to: .size2M), end - g >= chunk {
                // 2M chunks up to the next position where a 1G attempt is made.
                let next1G = g.alignedDown(to: .size1G) + huge
                let limit = next1G + huge <= end ? next1G : end.alignedDown(to: .size2M)
                let n = (min(limit, end.alignedDown(to: .size2M)) - g) / chunk
                if let failed = chunks(from: g, count: max(1, n), counts: &c, step: linuxChunk) {
                    return .terminated("TDX: Failed to accept memory at \(failed.address)")
                }
                g = g + max(1, n) * chunk
                continue
            }
            if !tryAcceptOne(gfn: g, frames: end - g, level: .size2M, counts: &c),
               !tryAcceptOne(gfn: g, frames: end - g, level: .size4K, counts: &c) {
                return .terminated("TDX: Failed to accept memory at \(g.address)")
            }
            g = g + 1
        }
        return .ok
    }

    /// Bulk form of the loop above over whole 1G regions from `g` (each
    /// followed by at least another GiB, so its chunk run is its own 512
    /// chunks): when the host answers the 1G TDCALL the same way whatever the
    /// state, and every region's chunks replay as one span from a memo, each
    /// region's failed 1G attempt and its chunks are added at once. Returns
    /// how many regions were done, or nil to step.
    /// - Complexity: O(the host's span lookup), independent of the regions.
    func replayWholeRegions(from g: GuestFrameNumber, end: GuestFrameNumber, counts c: inout OpCounts) -> UInt64? {
        let huge = PageLevel.size1G.pages, perRegion = PageLevel.size1G.pages / PageLevel.size2M.pages
        guard end - g >= 2 * huge, let s1G = host.stateIndependentAccept(level: .size1G), s1G != .success,
              let sig = host.chunkSignature(gfn: g), let m = memo[sig] else { return nil }
        let regions = (end - g) / huge - 1
        let n = host.chunksSharing(sig, from: g, limit: regions * perRegion) / perRegion
        guard n > 0 else { return nil }
        host.traceClock(vcpu: callVCPU, now: now(c))
        // The host's memo first: without it nothing is replayed and the regions are stepped.
        guard let context = host.replay(signature: sig, state: m.finalState, to: g, count: n * perRegion) else { return nil }
        host.recordStateIndependentAccepts(level: .size1G, count: n)
        c.add(Self.op(.size1G, s1G), n)
        c.add(m.counts, times: n * perRegion)
        c.add(context)
        host.traceReplayEnded(now: now(c))
        report(chunks: n * perRegion)
        return n
    }

    /// The Linux loop over one 2M-aligned chunk (after the 1G attempt):
    /// 2M, else 512 × 4K. Returns the failing frame, if any.
    func linuxChunk(_ g: GuestFrameNumber, _ c: inout OpCounts) -> GuestFrameNumber? {
        let chunk = g.region2M.frames
        if tryAcceptOne(gfn: g, frames: chunk.length, level: .size2M, counts: &c) { return nil }
        for f in chunk where !tryAcceptOne(gfn: f, frames: chunk.upperBound - f, level: .size4K, counts: &c) {
            return f
        }
        return nil
    }

    /// Runs `step` on `count` consecutive 2M chunks from `g`, replaying the
    /// recorded result for chunks the host reports identical. Returns the
    /// first failing frame.
    func chunks(from g0: GuestFrameNumber, count: UInt64, counts c: inout OpCounts,
                step: (GuestFrameNumber, inout OpCounts) -> GuestFrameNumber?) -> GuestFrameNumber? {
        var g = g0
        var left = count
        while left > 0 {
            let sig = stepByStep ? nil : host.chunkSignature(gfn: g)
            if let sig, let m = memo[sig] {
                let k = host.chunksSharing(sig, from: g, limit: left)
                if k > 0 { host.traceClock(vcpu: callVCPU, now: now(c)) }
                // Nil when the host's memo of the step is gone: the chunk is stepped below.
                if k > 0, let context = host.replay(signature: sig, state: m.finalState, to: g, count: k) {
                    c.add(m.counts, times: k)
                    c.add(context)
                    host.traceReplayEnded(now: now(c))
                    g = g + k * PageLevel.size2M.pages; left -= k
                    report(chunks: k)
                    continue
                }
            }
            var d = OpCounts()
            if sig != nil { host.beginChunkStep(gfn: g) }
            let context0 = host.contextOperations
            outer = c
            defer { outer = OpCounts() }
            if let failed = step(g, &d) { c.add(d); return failed }
            c.add(d)
            if let sig, let final = host.chunkState(gfn: g) {
                memo[sig] = ReplayMemo(counts: d - (host.contextOperations - context0), finalState: final)
            }
            g = g + PageLevel.size2M.pages; left -= 1
            report(chunks: 1)
        }
        return nil
    }

    // ArchAcceptorReplay: the host's chunk replay, passed through.
    package func chunkSignature(gfn: GuestFrameNumber) -> ReplayKey? { host.chunkSignature(gfn: gfn) }
    package func chunksSharing(_ sig: ReplayKey, from gfn: GuestFrameNumber, limit: UInt64) -> UInt64 {
        host.chunksSharing(sig, from: gfn, limit: limit)
    }
    package func chunkState(gfn: GuestFrameNumber) -> ReplayKey? { host.chunkState(gfn: gfn) }
    package var contextOperations: OpCounts { host.contextOperations }
    package func replayChunks(signature: ReplayKey, state: ReplayKey, from gfn: GuestFrameNumber, count: UInt64) -> OpCounts? {
        host.replay(signature: signature, state: state, to: gfn, count: count)
    }
    package func traceReplayBegins(vcpu: Int, now: Double, calls: UInt64) { host.traceCall(vcpu: vcpu, now: now, calls: calls) }
    package func traceReplayEnded(now: Double) { host.traceReplayEnded(now: now) }

    // MARK: edk2

    func edk2Accept(_ r: AddressRange, pageSize: PageLevel, counts c: inout OpCounts) -> AcceptOutcome {
        let frames = r.framesTruncated
        var g = frames.lowerBound
        let end = frames.upperBound
        let chunk = PageLevel.size2M.pages
        // TDVF accepts 2M pages where aligned and 4K pages for unaligned pieces.
        while g < end {
            if pageSize == .size2M, g.isAligned(to: .size2M), end - g >= chunk {
                let n = (end.alignedDown(to: .size2M) - g) / chunk
                if let failed = chunks(from: g, count: n, counts: &c, step: edk2Chunk) {
                    return .terminated("TDVF: TdAcceptPages failed at \(failed.address)")
                }
                g = g + n * chunk
                continue
            }
            if !edk2AcceptPage(gfn: g, level: .size4K, counts: &c) {
                return .terminated("TDVF: TdAcceptPages failed at \(g.address)")
            }
            g = g + 1
        }
        return .ok
    }

    func edk2Chunk(_ g: GuestFrameNumber, _ c: inout OpCounts) -> GuestFrameNumber? {
        edk2AcceptPage(gfn: g, level: .size2M, counts: &c) ? nil : g
    }

    func edk2AcceptPage(gfn: GuestFrameNumber, level: PageLevel, counts c: inout OpCounts) -> Bool {
        var busyRetries = 0
        while true {
            switch tdcall(gfn: gfn, level: level, counts: &c) {
            case .success: return true
            case .pageAlreadyAccepted:
                // Counted as a duplicate (mNumberOfDuplicatedAcceptedPages): the
                // count is derivable from the already_accepted operation counts.
                return true
            case .pageSizeMismatch:
                guard let smaller = level.smaller else { return false }
                for i in 0..<PageLevel.size2M.pages {  // 512 entries of the smaller level
                    if !edk2AcceptPage(gfn: gfn + i * smaller.pages, level: smaller, counts: &c) { return false }
                }
                return true
            case .operandBusy:
                busyRetries += 1
                if busyRetries > 3 { return false }
            default:
                return false
            }
        }
    }
}

/// The TDX platform seen by the guest.
public final class TDXGuestPlatform: GuestPlatform {
    public let host: any TDXHost
    /// Conversions so far (`SharedMemory.swift`).
    public internal(set) var sharedStats = SharedMemoryStats()
    /// Frames the guest made shared and not private again (its `nr_shared`).
    var sharedFrames = IntervalMap<GuestFrameNumber, Bool>(initial: false)
    /// Conversions that failed, for the kernel's events.
    public internal(set) var sharedEvents: [String] = []
    /// - Complexity: O(runs).
    public var sharedPages: UInt64 { sharedFrames.measure(in: .lowest ..< .highest) { $0 } }
    /// The converting vCPU's tick period in picoseconds (0: no tick;
    /// `setConversionTick(hz:)`).
    var tickPicoseconds: UInt64 = 0
    public func setConversionTick(hz: UInt64) { tickPicoseconds = hz == 0 ? 0 : 1_000_000_000_000 / hz }
    public init(host: any TDXHost) { self.host = host }
    public var name: String { "tdx" }
    public var kind: PlatformKind { .tdx }
    /// `tdx_safe_halt()`: TDVMCALL<Instruction.HLT>, the host blocks the vCPU.
    public func halt(vcpu: Int) { host.halt(vcpu: vcpu) }
    /// The halted vCPU re-enters the TD (TDH.VP.ENTER) to run work.
    public func wake(vcpu: Int) { host.wake(vcpu: vcpu) }
    public func isAccessible(_ r: AddressRange) -> Bool { host.isAccessible(r.framesCovering) }
    public var committedBytes: UInt64 { ByteCount.frames(host.committedPages).value }
    /// A private access to a page whose attributes are shared (memory a
    /// previous kernel made shared and never converted back) is first a
    /// KVM_EXIT_MEMORY_FAULT: KVM's fault path finds the access's privacy
    /// differs from the attributes (`kvm_mmu_prepare_memory_fault_exit()`)
    /// and QEMU's `kvm_convert_memory()` converts the page to private (the
    /// implicit conversion), after which the access faults in a fresh
    /// PENDING page, which is fatal as any unaccepted access is.
    public func touch(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, AcceptOutcome) {
        var ops = OpCounts()
        if sharedFrames.value(at: gfn) {
            let m = host.mapGPA(gfn.only, toPrivate: true)
            ops.add(m.counts)
            sharedFrames.assign(gfn.only, false)
        }
        let (more, fatal) = host.guestAccess(gfn: gfn, vcpu: vcpu)
        ops.add(more)
        return (ops, fatal.map { .terminated($0) } ?? .ok)
    }
}
