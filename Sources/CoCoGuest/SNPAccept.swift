public import CostModel
public import MemoryModel
public import SNP

/// Which guest code validates memory on SNP.
public enum SNPAcceptDriver: Sendable {
    /// Linux `snp_accept_memory()` once the GHCB exists: Page State Change
    /// batches of `VMGEXIT_PSC_MAX_ENTRY` (64) entries, 2M entries where
    /// aligned with 2M left, then PVALIDATE each entry, a 2M
    /// FAIL_SIZEMISMATCH retried as 512 4K; any other failure terminates
    /// (`sev_es_terminate`, GHCB_TERM_PVALIDATE).
    case linuxGHCB
    /// Linux before the GHCB exists (EFI stub, decompressor): the GHCB MSR
    /// protocol, one 4K page per VMGEXIT, then a 4K PVALIDATE.
    case linuxMSR
    /// edk2 `MemEncryptSevSnpPreValidateSystemRam` → `InternalSetPageState`
    /// with large entries: batches of up to 253 entries (`VMGEXIT_PSC_MAX_COUNT`),
    /// same PVALIDATE rules, failures terminate (`SnpPageStateFailureTerminate`).
    case edk2
}

/// An SNP guest validating memory against an `SNPPlatform`.
public final class SNPAcceptor: ArchAcceptorReplay {
    public let platform: SNPPlatform
    public let driver: SNPAcceptDriver
    public let costs: CostTable
    public var stepByStep = false
    /// Told the bytes each accept call gets through, PSC batch by batch
    /// (issue 14's progress line of `--step-by-step` boots); nil: nobody asks.
    package var progress: (any ProgressReporter)?
    /// Bytes of the current call already told to `progress`.
    private var reportedInCall: UInt64 = 0
    private var memo: [ReplayKey: ReplayMemo] = [:]
    /// Linux's `sev_evict_cache()` after validating (7b306dfa326f, when the
    /// CPU lacks COHERENCY_SFW_NO): the first and last byte of every 4K page
    /// validated to private are read. For the Linux drivers only; a change
    /// clears the replay memo, whose counts it alters.
    public var evictsCache = false { didSet { if evictsCache != oldValue { memo = [:] } } }
    /// The VMPL the guest runs at. Above 0 an SVSM runs at VMPL0 and Linux
    /// cannot PVALIDATE itself: it asks the SVSM (`svsm_pval_pages()`,
    /// `svsm_pval_4k_page()`, the SVSM core protocol's SVSM_CORE_PVALIDATE).
    /// For the Linux drivers only; edk2's SVSM path is not modelled.
    public var vmpl = 0 { didSet { if vmpl != oldValue { memo = [:] } } }

    /// SVSM_PVALIDATE_MAX_COUNT: the entries one SVSM call carries in the
    /// calling area's buffer (510, as the kernel's comment in
    /// `svsm_pval_pages()` says).
    public static let svsmPvalidateMaxCount: UInt64 = 510

    public init(platform: SNPPlatform, driver: SNPAcceptDriver, costs: CostTable) {
        self.platform = platform
        self.driver = driver
        self.costs = costs
    }

    var maxEntries: Int { driver == .edk2 ? 253 : 64 }

    public func accept(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        var c = OpCounts()
        reportedInCall = 0
        if !platform.vmmHasMemory(r.framesCovering) {
            return .terminated("SNP: page state change for \(GuestPhysicalAddress(r.start))-\(GuestPhysicalAddress(r.end)): the VMM has no memory there (QEMU's kvm_convert_memory() finds no RAM block) and stops the guest")
        }
        let outcome = driver == .linuxMSR ? msrAccept(r, counts: &c) : batchedAccept(r, counts: &c)
        if outcome == .ok, r.size > reportedInCall { progress?.advance(by: r.size - reportedInCall) }
        clock.charge(c, vcpu: vcpu, costs: costs)
        return outcome
    }

    /// `frames` more 4K frames of the current call are validated.
    private func report(frames: UInt64) {
        guard let progress else { return }
        let bytes = ByteCount.frames(frames).value
        reportedInCall += bytes
        progress.advance(by: bytes)
    }

    /// The MSR protocol page by page (`__page_state_change()`): a GHCB MSR
    /// page-state change and a 4K PVALIDATE each, which at VMPL>0 is one
    /// SVSM call a page (`svsm_pval_4k_page()`), then the page's cache
    /// eviction when asked (`pvalidate_4k_page()`).
    func msrAccept(_ r: AddressRange, counts c: inout OpCounts) -> AcceptOutcome {
        let frames = r.framesTruncated
        let failure = platform.validateFrames4K(frames, msrPSC: true, stepByStep: stepByStep, counts: &c)
        let validated = (failure.map { $0.gfn } ?? frames.upperBound) - frames.lowerBound
        if isLinux, vmpl > 0 { c.add(.snpSVSMCall, validated + (failure == nil ? 0 : 1)) }
        if isLinux, evictsCache { c.add(.snpEvictCache4K, validated) }
        guard let (g, res) = failure else { return .ok }
        return terminated(g, res)
    }

    var isLinux: Bool { driver != .edk2 }

    func terminated(_ g: GuestFrameNumber, _ res: PvalidateResult) -> AcceptOutcome {
        let why = res == .noUpdate ? "double validation" : "PVALIDATE failed (\(res.rawValue))"
        return .terminated("SNP: \(why) at \(g.address) (GHCB_TERM_PVALIDATE)")
    }

    func batchedAccept(_ r: AddressRange, counts c: inout OpCounts) -> AcceptOutcome {
        let frames = r.framesTruncated
        var g = frames.lowerBound
        let end = frames.upperBound
        let fullBatchFrames = UInt64(maxEntries) * PageLevel.size2M.pages
        while g < end {
            let fullBatch = g.isAligned(to: .size2M) && end - g >= fullBatchFrames
            let sig = (!stepByStep && fullBatch) ? platform.signature(gfn: g, frames: fullBatchFrames) : nil
            if let sig, let m = memo[sig] {
                let k = platform.blocksSharing(sig, from: g, frames: fullBatchFrames, limit: (end - g) / fullBatchFrames)
                if k > 0, let state = RMPState(rawValue: UInt8(truncatingIfNeeded: m.finalState.state)) {
                    c.add(m.counts, times: k)
                    platform.replay(state: state, frames: Range(start: g, count: k * fullBatchFrames))
                    g = g + k * fullBatchFrames
                    report(frames: k * fullBatchFrames)
                    continue
                }
            }
            var d = OpCounts()
            let (next, failure) = oneBatch(from: g, end: end, counts: &d)
            c.add(d)
            if let failure { return failure }
            if let sig, let st = platform.finalState(gfn: g, frames: fullBatchFrames) {
                memo[sig] = ReplayMemo(counts: d, finalState: ReplayKey(state: UInt64(st.rawValue)))
            }
            report(frames: next - g)
            g = next
        }
        return .ok
    }

    /// Fills one PSC descriptor from `g`, issues it and validates its entries.
    func oneBatch(from g0: GuestFrameNumber, end: GuestFrameNumber, counts c: inout OpCounts) -> (GuestFrameNumber, AcceptOutcome?) {
        var entries: [(gfn: GuestFrameNumber, level: PageLevel)] = []
        var g = g0
        while g < end, entries.count < maxEntries {
            if g.isAligned(to: .size2M), end - g >= PageLevel.size2M.pages {
                entries.append((g, .size2M)); g = g + PageLevel.size2M.pages
            } else {
                entries.append((g, .size4K)); g = g + 1
            }
        }
        c.add(platform.pageStateChange(entries, stepByStep: stepByStep))
        // 2M entries PVALIDATE failed with FAIL_SIZEMISMATCH and validated
        // as 512 4K pages; whether the last entry of the descriptor was one.
        var mismatched: UInt64 = 0
        var lastMismatched = false
        var i = 0
        while i < entries.count {
            let e = entries[i]
            let before = e.level == .size2M ? platform.signature(gfn: e.gfn, frames: PageLevel.size2M.pages) : nil
            var d = OpCounts()
            let failure = validate(e, counts: &d)
            c.add(d)
            if let failure { return (g, failure) }
            let entryMismatched = d[.snpPvalidate2MSizeMismatch] > 0
            if entryMismatched { mismatched += 1; lastMismatched = i == entries.count - 1 }
            i += 1
            // A 2M entry's PVALIDATE, the RMPUPDATE of its fault, a PSMASH and the 512 4K PVALIDATEs after a
            // size mismatch read and write only that entry's own 2M of RMP entries, so the 2M entries after it
            // whose pages are in the same uniform state take the same operations to the same end state: they
            // are replayed (as whole batches are from the memo). SNPTests hold this equal to stepping.
            guard !stepByStep, let before, let after = platform.finalState(gfn: e.gfn, frames: PageLevel.size2M.pages)
            else { continue }
            let following = entries[i...].prefix { $0.level == .size2M }.count
            guard following > 0 else { continue }
            let next = e.gfn + PageLevel.size2M.pages
            let k = platform.blocksSharing(before, from: next, frames: PageLevel.size2M.pages, limit: UInt64(following))
            platform.replay(state: after, frames: Range(start: next, count: k * PageLevel.size2M.pages))
            c.add(d, times: k)
            i += Int(k)
            if entryMismatched { mismatched += k; lastMismatched = i == entries.count }
        }
        if isLinux { c.add(afterValidation(entries, mismatched: mismatched, lastMismatched: lastMismatched)) }
        return (g, nil)
    }

    /// What Linux's `pvalidate_pages()` adds to a descriptor's PVALIDATEs:
    /// - at VMPL>0 the SVSM calls of `svsm_pval_pages()`: one per 510
    ///   entries; a 2M entry the SVSM fails with FAIL_SIZEMISMATCH ends the
    ///   call, which is made again from the next entry unless it was the
    ///   last; then each such entry is validated as 512 4K entries, 510 a call;
    /// - `sev_evict_cache()` of every page of every entry (512 for a 2M entry,
    ///   whether or not it fell back to 4K).
    func afterValidation(_ entries: [(gfn: GuestFrameNumber, level: PageLevel)], mismatched: UInt64, lastMismatched: Bool) -> OpCounts {
        var c = OpCounts()
        if vmpl > 0 {
            let n = UInt64(entries.count)
            let perFallback = divRoundUp(PageLevel.size2M.pages, Self.svsmPvalidateMaxCount)
            let reissues = mismatched - (lastMismatched ? 1 : 0)
            c.add(.snpSVSMCall, divRoundUp(n, Self.svsmPvalidateMaxCount) + reissues + mismatched * perFallback)
        }
        if evictsCache { c.add(.snpEvictCache4K, entries.reduce(0) { $0 + $1.level.pages }) }
        return c
    }

    /// PVALIDATE of one PSC entry, a 2M page that fails with FAIL_SIZEMISMATCH retried as 512 4K pages
    /// (`pvalidate_pages()`, edk2's `PvalidateRange`); any other failure terminates.
    private func validate(_ e: (gfn: GuestFrameNumber, level: PageLevel), counts c: inout OpCounts) -> AcceptOutcome? {
        let (res, d) = platform.pvalidate(gfn: e.gfn, level: e.level)
        c.add(d)
        if res == .success { return nil }
        guard res == .failSizeMismatch, e.level == .size2M else { return terminated(e.gfn, res) }
        guard let (f, r4) = platform.validateFrames4K(e.gfn.region2M.frames, msrPSC: false, stepByStep: stepByStep, counts: &c)
        else { return nil }
        return terminated(f, r4)
    }
}

extension SNPAcceptor {
    package func chunkSignature(gfn: GuestFrameNumber) -> ReplayKey? {
        // Chunks without VMM memory are stepped, so the failure is seen.
        guard platform.vmmHasMemory(Range(start: gfn, count: PageLevel.size2M.pages)) else { return nil }
        return platform.signature(gfn: gfn, frames: PageLevel.size2M.pages)
    }
    package func chunksSharing(_ sig: ReplayKey, from gfn: GuestFrameNumber, limit: UInt64) -> UInt64 {
        var n = platform.blocksSharing(sig, from: gfn, frames: PageLevel.size2M.pages, limit: limit)
        // Stop at the first chunk the VMM has no memory behind.
        while n > 0, !platform.vmmHasMemory(Range(start: gfn, count: n * PageLevel.size2M.pages)) { n /= 2 }
        return n
    }
    package func chunkState(gfn: GuestFrameNumber) -> ReplayKey? {
        platform.finalState(gfn: gfn, frames: PageLevel.size2M.pages).map { ReplayKey(state: UInt64($0.rawValue)) }
    }
    /// The RMP has no context outside a chunk.
    package var contextOperations: OpCounts { OpCounts() }
    package func replayChunks(signature: ReplayKey, state: ReplayKey, from gfn: GuestFrameNumber, count: UInt64) -> OpCounts? {
        guard let s = RMPState(rawValue: UInt8(truncatingIfNeeded: state.state)) else { return nil }
        platform.replay(state: s, frames: Range(start: gfn, count: count * PageLevel.size2M.pages))
        return OpCounts()
    }
}

/// The SNP platform seen by the guest.
public final class SNPGuestPlatform: GuestPlatform {
    public let platform: SNPPlatform
    /// Conversions so far (`SharedMemory.swift`).
    public internal(set) var sharedStats = SharedMemoryStats()
    /// - Complexity: O(runs).
    public var sharedPages: UInt64 { platform.sharedPages }
    /// `sev_evict_cache()` after each validation (7b306dfa326f, in
    /// `pvalidate_pages()`, so `set_memory_encrypted()` too): set as the
    /// kernel's acceptor has it.
    public var evictsCache = false
    public init(platform: SNPPlatform) { self.platform = platform }
    public var name: String { "snp" }
    public var kind: PlatformKind { .snp }
    public func isAccessible(_ r: AddressRange) -> Bool { platform.isAccessible(r.framesCovering) }
    public var committedBytes: UInt64 { ByteCount.frames(platform.committedPages).value }
    /// A page-state change of `r` to shared without rescinding validation
    /// (the AMD hotplug RFC's `snp_unaccept_memory()`: `set_pages_state(...,
    /// SNP_PAGE_STATE_SHARED, SNP_PSC_SHARED_TO_SHARED)`): the host makes the
    /// RMP entries hypervisor-owned, so the validations are gone and a later
    /// accept validates afresh. The GHCB requests are not charged.
    /// - Complexity: O(log runs).
    public func makeSharedForHotRemove(_ r: AddressRange) { platform.reclaim(r.framesCovering) }

    public func touch(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, AcceptOutcome) {
        let (ops, fatal) = platform.guestAccess(gfn: gfn)
        return (ops, fatal.map { .terminated($0) } ?? .ok)
    }
}
