import CostModel
public import KVM
import MemoryModel
import Simulation

/// Seeded random sequences of host operations (the host command language of
/// `cocomem host`) on a 4-chunk, 2048-frame TD, with injected faults; each
/// is run with every invariant checked after every step, and a failing one
/// is shrunk to a shortest failing sequence.
public enum HostSequences {
    /// The operations drawn from, before their frames are chosen.
    public static let verbs = ["accept 4k", "accept 2m", "access", "convert shared", "convert private", "punch",
                               "inject folio-split-nomem", "inject split-cache-nomem", "inject demote-busy", "inject block-busy", "inject aug-busy",
                               "attributes shared", "attributes private"]

    /// The adversarial host's commands (issue 18 §5), drawn besides `verbs`
    /// by `sequence(seed:length:adversarial: true)`.
    public static let adversarialVerbs = ["remove", "readd", "remap", "refuse-aug"]

    /// The host's own use of guest_memfd's pages and the series' fault
    /// points under in-place conversion (issue 18 §2), drawn besides
    /// `verbs` by `sequence(seed:length:inPlace: true)`.
    public static let inPlaceVerbs = ["pin", "unpin", "hostmap", "inject gmem-attributes-nomem", "inject gmem-safe-refcount"]

    /// Frames of the TD the sequences run on: four 2M chunks.
    public static let frames: UInt64 = 2048

    /// `length` operations drawn with `seed`.
    /// - Complexity: O(length).
    /// With `adversarial`, the adversarial host's commands are drawn too
    /// (the sequences without it are unchanged, seed for seed).
    /// With `inPlace`, `inPlaceVerbs` too (for a TD under `in-place`).
    public static func sequence(seed: UInt64, length: Int, adversarial: Bool = false, inPlace: Bool = false) -> [String] {
        var rng = SplitMix64(seed: seed)
        let pool = (adversarial ? verbs + adversarialVerbs : verbs) + (inPlace ? inPlaceVerbs : [])
        return (0..<length).map { _ in
            let v = pool[Int(rng.next() % UInt64(pool.count))]
            // In place, offsets stay within 4 frames of the chunk start so
            // that pins meet the conversions of the same pages.
            let chunk = rng.next() % 4, off = rng.next() % (inPlace ? 4 : 512)
            let parts = v.split(separator: " ")
            switch parts[0] {
            case "accept":
                let start = chunk * 512 + (parts[1] == "2m" ? 0 : off)
                return "accept \(hex(start))+\(parts[1] == "2m" ? 512 : min(1 + rng.next() % 8, frames - start)) \(parts[1])"
            case "access": return "access \(hex(chunk * 512 + off))"
            case "convert", "attributes":
                let start = chunk * 512 + off
                return "\(parts[0]) \(hex(start))+\(min(1 + rng.next() % 4, frames - start)) \(parts[1])"
            case "punch": return "punch \(hex(chunk * 512))+512"
            case "remove", "readd", "remap", "refuse-aug", "pin", "unpin", "hostmap":
                let start = chunk * 512 + off
                return "\(v) \(hex(start))+\(min(1 + rng.next() % 4, frames - start))"
            default: return v
            }
        }
    }

    /// The scenario a sequence runs in: a tdx-huge TD with one 2048-frame
    /// memslot under `policy`, its S-EPT pages placed as `placement` says.
    public static func scenario(_ ops: [String], policy: ConversionPolicy, placement: SEPTPlacement = .contiguous) -> String {
        "td host=tdx-huge sept-ve-disable=off policy=\(policy.rawValue) sept-placement=\(placement.rawValue)\n"
            + "slot id=1 base=0 pages=\(frames)\nfinalize\n" + ops.joined(separator: "\n")
    }

    /// Runs `ops`; returns the first violation, if any. A VM that KVM_BUG_ON
    /// or TDX_BUG_ON marked bugged is one: those assertions state that KVM
    /// and the module never get there.
    public static func firstFailure(_ ops: [String], policy: ConversionPolicy, placement: SEPTPlacement = .contiguous) -> String? {
        guard let s = try? HostScenario.parse(scenario(ops, policy: policy, placement: placement)),
              let run = try? HostRun(s, calibration: try Calibration.builtIn(), log: false) else { return "scenario did not parse" }
        var invariants = HostInvariants(watching: Range(start: .lowest, count: frames / PageLevel.size2M.pages))
        for (i, c) in s.commands.enumerated() {
            do { try run.execute(c, line: i) } catch { return "threw \(error)" }
            // A bugged VM stops mid-flow (a blocked entry KVM still maps):
            // report the bug, not the state it left.
            if case .vmBugged(let why) = run.vm.outcome { return "after op \(i): VM bugged: \(why)" }
            if let v = invariants.registered(after: run.vm).first { return "after op \(i): \(v.detail)" }
            if run.vm.isDead { break }
        }
        return nil
    }

    /// A shortest failing subsequence of a failing `ops` (1-minimal).
    public static func shrink(_ ops: [String], policy: ConversionPolicy, placement: SEPTPlacement = .contiguous) -> [String] {
        Shrinking.oneMinimal(ops) { firstFailure($0, policy: policy, placement: placement) != nil }
    }
}
