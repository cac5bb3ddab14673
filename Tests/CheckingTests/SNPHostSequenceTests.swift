import Checking
import CostModel
import KVM
import Simulation
import Testing

/// The randomized host sequences on the SEV-SNP host (issue 18 §7).
@Suite struct SNPHostSequenceTests {
    /// Every SNP host invariant holds after every step of 300 seeded
    /// sequences on each backing; a failure prints its shortest sequence.
    @Test(arguments: [GmemBacking.hugetlb2M, .buddy, .hugetlb1G])
    func invariantsHoldOnRandomSequences(_ backing: GmemBacking) {
        for seed in 0..<300 as Range<UInt64> {
            let ops = SNPHostSequences.sequence(seed: seed &* 7919 &+ 3, length: 20)
            if let f = SNPHostSequences.firstFailure(ops, backing: backing) {
                let short = SNPHostSequences.shrink(ops, backing: backing)
                Issue.record("seed \(seed), \(backing.rawValue): \(f)\nshortest sequence:\n\(short.joined(separator: "\n"))")
                return
            }
        }
    }

    /// The same under in-place conversion, with the host's pins and its own
    /// loads and stores (`pin`, `unpin`, `hostmap`) drawn too.
    @Test(arguments: [GmemBacking.hugetlb2M, .buddy])
    func invariantsHoldOnRandomSequencesInPlace(_ backing: GmemBacking) throws {
        var refused: UInt64 = 0, sigbus: UInt64 = 0
        for seed in 0..<200 as Range<UInt64> {
            let ops = SNPHostSequences.sequence(seed: seed &* 104_729 &+ 11, length: 20, inPlace: true)
            if let f = SNPHostSequences.firstFailure(ops, backing: backing, inPlace: true) {
                let short = SNPHostSequences.shrink(ops, backing: backing, inPlace: true)
                Issue.record("seed \(seed), \(backing.rawValue), in-place: \(f)\nshortest sequence:\n\(short.joined(separator: "\n"))")
                return
            }
            let s = try HostScenario.parse(SNPHostSequences.scenario(ops, backing: backing, inPlace: true))
            let run = try SNPHostRun(s, calibration: try Calibration.builtIn(), log: false)
            for (i, c) in s.commands.enumerated() { try run.execute(c, line: i) }
            refused += run.vm.stats[.inPlaceRefusedForReferences]; sigbus += run.vm.stats[.inPlaceSIGBUS]
            #expect(run.vm.vmmSharedPages == 0)
        }
        #expect(refused > 0 && sigbus > 0, "refused \(refused), SIGBUS \(sigbus)")
    }

    /// The sequences (run on past a guest's death, as `firstFailure` does)
    /// reach what they are there for: PSMASHes from RMP
    /// faults and from invalidation, folio splits and merges, 2M and 4K
    /// RMP entries, RMPADJUST, and the host's RMPUPDATEs the guest did not ask for.
    @Test func sequencesReachTheSNPHostPaths() throws {
        var seen = Set<SNPHostStat>()
        for seed in 0..<300 as Range<UInt64> {
            let ops = SNPHostSequences.sequence(seed: seed &* 7919 &+ 3, length: 20)
            let s = try HostScenario.parse(SNPHostSequences.scenario(ops, backing: .hugetlb2M))
            let run = try SNPHostRun(s, calibration: try Calibration.builtIn(), log: false)
            for (i, c) in s.commands.enumerated() { try run.execute(c, line: i) }
            for (s, _) in run.vm.stats.nonZero { seen.insert(s) }
        }
        for s in [SNPHostStat.psmashRMPFault, .psmashInvalidate, .folioSplits, .folioMerges, .rmpupdatePrivate2M,
                  .rmpupdatePrivate4K, .rmpupdateShared2M, .rmpadjustSuccess, .npfPrivate2M, .pscLies, .memoryFaultExits,
                  // The host's RMPUPDATEs unasked (session 16): `assign` at 4K and 2M with the PSMASH of a 2M entry
                  // covered in part, `rmp-shared` at 4K and 2M.
                  .hostAssigned4K, .hostAssigned2M, .hostPsmash, .hostMadeShared4K, .hostMadeShared2M] {
            #expect(seen.contains(s), "never reached \(s.name)")
        }
    }
}
