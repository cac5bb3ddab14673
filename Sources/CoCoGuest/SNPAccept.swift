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

    func msrAccept(_ r: AddressRange, counts c: inout OpCounts) -> AcceptOutcome {
        guard let (g, res) = platform.validateFrames4K(r.framesTruncated, msrPSC: true, stepByStep: stepByStep, counts: &c)
        else { return .ok }
        return terminated(g, res)
    }

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
        var i = 0
        while i < entries.count {
            let e = entries[i]
            let before = e.level == .size2M ? platform.signature(gfn: e.gfn, frames: PageLevel.size2M.pages) : nil
            var d = OpCounts()
            let failure = validate(e, counts: &d)
            c.add(d)
            if let failure { return (g, failure) }
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
        }
        return (g, nil)
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
    package func replayChunks(signature: ReplayKey, state: ReplayKey, from gfn: GuestFrameNumber, count: UInt64) -> OpCounts {
        guard let s = RMPState(rawValue: UInt8(truncatingIfNeeded: state.state)) else { return OpCounts() }
        platform.replay(state: s, frames: Range(start: gfn, count: count * PageLevel.size2M.pages))
        return OpCounts()
    }
}

/// The SNP platform seen by the guest.
public final class SNPGuestPlatform: GuestPlatform {
    public let platform: SNPPlatform
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
