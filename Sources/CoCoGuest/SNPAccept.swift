import CostModel
import MemoryModel
import SNP

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
public final class SNPAcceptor: ArchAcceptor {
    public let platform: SNPPlatform
    public let driver: SNPAcceptDriver
    public let costs: CostTable
    public var stepByStep = false
    private var memo: [ReplayKey: ReplayMemo] = [:]

    public init(platform: SNPPlatform, driver: SNPAcceptDriver, costs: CostTable) {
        self.platform = platform
        self.driver = driver
        self.costs = costs
    }

    var maxEntries: Int { driver == .edk2 ? 253 : 64 }

    public func accept(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        var c = OpCounts()
        let outcome = driver == .linuxMSR ? msrAccept(r, counts: &c) : batchedAccept(r, counts: &c)
        clock.charge(c, vcpu: vcpu, costs: costs)
        return outcome
    }

    func msrAccept(_ r: AddressRange, counts c: inout OpCounts) -> AcceptOutcome {
        for g in (r.start >> 12)..<(r.end >> 12) {
            c.add(platform.msrPageStateChange(gfn: g))
            let (res, d) = platform.pvalidate(gfn: g, level: .size4K)
            c.add(d)
            if res != .success { return terminated(g, res) }
        }
        return .ok
    }

    func terminated(_ g: UInt64, _ res: PvalidateResult) -> AcceptOutcome {
        let why = res == .noUpdate ? "double validation" : "PVALIDATE failed (\(res.rawValue))"
        return .terminated("SNP: \(why) at \(hex16(g << 12)) (GHCB_TERM_PVALIDATE)")
    }

    func batchedAccept(_ r: AddressRange, counts c: inout OpCounts) -> AcceptOutcome {
        var g = r.start >> 12
        let end = r.end >> 12
        let fullBatchFrames = UInt64(maxEntries) * 512
        while g < end {
            let fullBatch = g % 512 == 0 && end - g >= fullBatchFrames
            let sig = (!stepByStep && fullBatch) ? platform.signature(gfn: g, frames: fullBatchFrames) : nil
            if let sig, let m = memo[sig] {
                let k = platform.blocksSharing(sig, from: g, frames: fullBatchFrames, limit: (end - g) / fullBatchFrames)
                if k > 0, let state = RMPState(rawValue: UInt8(truncatingIfNeeded: m.finalState.state)) {
                    c.add(m.counts, times: k)
                    platform.replay(state: state, frames: g..<(g + k * fullBatchFrames))
                    g += k * fullBatchFrames
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
            g = next
        }
        return .ok
    }

    /// Fills one PSC descriptor from `g`, issues it and validates its entries.
    func oneBatch(from g0: UInt64, end: UInt64, counts c: inout OpCounts) -> (UInt64, AcceptOutcome?) {
        var entries: [(gfn: UInt64, level: PageLevel)] = []
        var g = g0
        while g < end, entries.count < maxEntries {
            if g % 512 == 0, end - g >= 512 {
                entries.append((g, .size2M)); g += 512
            } else {
                entries.append((g, .size4K)); g += 1
            }
        }
        c.add(platform.pageStateChange(entries))
        for e in entries {
            let (res, d) = platform.pvalidate(gfn: e.gfn, level: e.level)
            c.add(d)
            if res == .success { continue }
            if res == .failSizeMismatch, e.level == .size2M {
                for f in e.gfn..<(e.gfn + 512) {
                    let (r4, d4) = platform.pvalidate(gfn: f, level: .size4K)
                    c.add(d4)
                    if r4 != .success { return (g, terminated(f, r4)) }
                }
                continue
            }
            return (g, terminated(e.gfn, res))
        }
        return (g, nil)
    }
}

extension SNPAcceptor {
    public func chunkSignature(gfn: UInt64) -> ReplayKey? { platform.signature(gfn: gfn, frames: 512) }
    public func chunksSharing(_ sig: ReplayKey, from gfn: UInt64, limit: UInt64) -> UInt64 {
        platform.blocksSharing(sig, from: gfn, frames: 512, limit: limit)
    }
    public func chunkState(gfn: UInt64) -> ReplayKey? {
        platform.finalState(gfn: gfn, frames: 512).map { ReplayKey(state: UInt64($0.rawValue)) }
    }
    /// The RMP has no context outside a chunk.
    public var contextOperations: OpCounts { OpCounts() }
    public func replayChunks(signature: ReplayKey, state: ReplayKey, from gfn: UInt64, count: UInt64) -> OpCounts {
        guard let s = RMPState(rawValue: UInt8(truncatingIfNeeded: state.state)) else { return OpCounts() }
        platform.replay(state: s, frames: gfn..<(gfn + count * 512))
        return OpCounts()
    }
}

/// The SNP platform seen by the guest.
public final class SNPGuestPlatform: GuestPlatform {
    public let platform: SNPPlatform
    public init(platform: SNPPlatform) { self.platform = platform }
    public var name: String { "snp" }
    public var kind: PlatformKind { .snp }
    public func isAccessible(_ r: AddressRange) -> Bool { platform.isAccessible((r.start >> 12)..<divRoundUp(r.end, 4096)) }
    public var committedBytes: UInt64 { platform.committedPages << 12 }
    public func touch(gfn: UInt64, vcpu: Int) -> (OpCounts, AcceptOutcome) {
        let (ops, fatal) = platform.guestAccess(gfn: gfn)
        return (ops, fatal.map { .terminated($0) } ?? .ok)
    }
}
