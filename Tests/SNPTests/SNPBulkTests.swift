import CoCoGuest
import CostModel
import MemoryModel
import SNP
import Testing

/// The bulk paths of SEV-SNP validation (runs of the RMP validated in one
/// interval assignment, counts added per run) against stepping every 4K
/// PVALIDATE and page-state-change page one at a time, on seeded random RMPs:
/// same RMP, same operation counts, same virtual time, same outcome.
@Suite struct SNPBulkTests {
    /// 2M regions in a random RMP (16 MiB ... 2 GiB of guest memory).
    static let regions: UInt64 = 1024

    /// An RMP over `regions` 2M regions built from stretches of regions
    /// that are all in one 2M state, all unbacked, all 4K entries in one
    /// state, or cut into random 4K runs of every 4K state: the shapes a
    /// boot leaves (firmware's 2M entries, the host's 4K backing, the
    /// stub's and the kernel's partial 4K validation). Validated 4K runs
    /// are rare, since the first one an accept meets ends it.
    static func randomPlatform(seed: UInt64) -> SNPPlatform {
        var rng = SplitMix64(seed: seed)
        let policy: SNPBackingPolicy = rng.next() % 2 == 0 ? .back4K : .back2M
        let p = SNPPlatform(policy: policy, prefaultOnPSC: rng.next() % 2 == 0)
        var region: UInt64 = 0
        while region < regions {
            let stretch = min(regions - region, 1 + rng.next() % 300)
            let frames = Range(start: GuestRegion2M(region).firstFrame, count: stretch * PageLevel.size2M.pages)
            switch rng.next() % 8 {
            case 0: p.replay(state: .assigned2M, frames: frames)
            case 1: if rng.next() % 4 == 0 { p.replay(state: .validated2M, frames: frames) }
            case 2: p.replay(state: .assigned4K, frames: frames)
            case 3, 4: break  // unbacked
            default:
                var f = frames.lowerBound
                while f < frames.upperBound {
                    let n = min(frames.upperBound - f, 1 + rng.next() % 700)
                    let roll = rng.next() % 40
                    let state: RMPState = roll == 0 ? .validated4K : roll < 20 ? .assigned4K : .unbacked
                    p.replay(state: state, frames: Range(start: f, count: n))
                    f = f + n
                }
            }
            region += stretch
        }
        return p
    }

    /// A random range of frames inside the random RMP, often 2M-aligned.
    static func randomFrames(_ rng: inout SplitMix64, maxFrames: UInt64) -> Range<GuestFrameNumber> {
        let total = regions * PageLevel.size2M.pages
        var start = rng.next() % total
        if rng.next() % 2 == 0 { start -= start % PageLevel.size2M.pages }
        let count = min(total - start, 1 + rng.next() % maxFrames)
        return Range(start: GuestFrameNumber(start), count: count)
    }

    /// `validateFrames4K` by runs equals stepping each 4K PVALIDATE (with and
    /// without an MSR page state change before each): same RMP, counts and
    /// failing frame.
    @Test(arguments: 0..<40)
    func validateFrames4KByRunsEqualsStepping(_ seed: UInt64) {
        let bulk = Self.randomPlatform(seed: seed), step = Self.randomPlatform(seed: seed)
        #expect(bulk.rmp == step.rmp)
        var rng = SplitMix64(seed: seed &+ 1000)
        for _ in 0..<20 {
            let frames = Self.randomFrames(&rng, maxFrames: 3 * PageLevel.size2M.pages)
            let msr = rng.next() % 2 == 0
            var cb = OpCounts(), cs = OpCounts()
            let rb = bulk.validateFrames4K(frames, msrPSC: msr, stepByStep: false, counts: &cb)
            let rs = step.validateFrames4K(frames, msrPSC: msr, stepByStep: true, counts: &cs)
            #expect(rb?.gfn == rs?.gfn && rb?.result == rs?.result, "seed \(seed) frames \(frames)")
            #expect(cb == cs, "seed \(seed) frames \(frames)")
            #expect(bulk.rmp == step.rmp, "seed \(seed) frames \(frames)")
        }
    }

    /// A page state change of random 2M and 4K entries, the host backing
    /// each 4K page of an entry it cannot back at 2M by runs, equals
    /// backing them one at a time.
    @Test(arguments: 0..<40)
    func pageStateChangeByRunsEqualsStepping(_ seed: UInt64) {
        let bulk = Self.randomPlatform(seed: seed), step = Self.randomPlatform(seed: seed)
        var rng = SplitMix64(seed: seed &+ 2000)
        for _ in 0..<10 {
            var entries: [(gfn: GuestFrameNumber, level: PageLevel)] = []
            var g = Self.randomFrames(&rng, maxFrames: 1).lowerBound
            let end = GuestFrameNumber(Self.regions * PageLevel.size2M.pages)
            while entries.count < 64, g < end {
                if g.isAligned(to: .size2M), end - g >= PageLevel.size2M.pages, rng.next() % 4 != 0 {
                    entries.append((g, .size2M)); g = g + PageLevel.size2M.pages
                } else {
                    entries.append((g, .size4K)); g = g + 1 + rng.next() % 3
                }
            }
            let cb = bulk.pageStateChange(entries, stepByStep: false)
            let cs = step.pageStateChange(entries, stepByStep: true)
            #expect(cb == cs, "seed \(seed)")
            #expect(bulk.rmp == step.rmp, "seed \(seed)")
        }
    }

    /// Each accept driver (Linux with the GHCB, Linux's MSR protocol, edk2)
    /// accepting random ranges of a random RMP, one call after another, in
    /// bulk (chunk replay, runs) equals the same driver stepping every PSC
    /// page and PVALIDATE: same outcome, RMP and clock (counts, per-vCPU
    /// virtual time, bytes written).
    @Test(arguments: [SNPAcceptDriver.linuxGHCB, .linuxMSR, .edk2], 0..<8)
    func acceptInBulkEqualsStepByStep(_ driver: SNPAcceptDriver, _ seed: UInt64) throws {
        let costs = CostTable(try Calibration.builtIn())
        let bulk = SNPAcceptor(platform: Self.randomPlatform(seed: seed), driver: driver, costs: costs)
        let step = SNPAcceptor(platform: Self.randomPlatform(seed: seed), driver: driver, costs: costs)
        step.stepByStep = true
        var rng = SplitMix64(seed: seed &+ 3000)
        var cb = PhaseClock(vcpus: 2), cs = PhaseClock(vcpus: 2)
        // Up to 640 MiB: more than one full PSC batch of either driver (64 or 253 2M entries), so
        // batches are replayed from the memo, yet small enough to step in a debug build.
        let maxFrames = (driver == .linuxMSR ? 4 : 320) * PageLevel.size2M.pages
        for call in 0..<6 {
            let frames = Self.randomFrames(&rng, maxFrames: maxFrames)
            var r = AddressRange(frames: frames)
            // Sometimes a range that does not start or end on a page boundary.
            if rng.next() % 4 == 0, r.size > 8192 { r = AddressRange(start: r.start + 100, end: r.end - 100) }
            let vcpu = call % 2
            let ob = bulk.accept(r, vcpu: vcpu, clock: &cb), os = step.accept(r, vcpu: vcpu, clock: &cs)
            #expect(ob == os, "\(driver) seed \(seed) call \(call)")
            #expect(cb == cs, "\(driver) seed \(seed) call \(call)")
            #expect(bulk.platform.rmp == step.platform.rmp, "\(driver) seed \(seed) call \(call)")
        }
    }
}
