import CostModel
public import KVM
import MemoryModel
import Simulation
import TDXModule

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

    /// The races with the guest's ACCEPT (issue 18 §1: host priority, the
    /// interruptible 2M ACCEPT) and the host touching guest memory through
    /// the VMM's mapping (issue 18 §5: double backing with VM-wide
    /// attributes, SIGBUS in place), drawn besides `verbs` by
    /// `sequence(seed:length:races: true)`.
    public static let raceVerbs = ["contend", "inject accept-interrupt", "hostmap"]

    /// What the host learns (issue 18 §5): its reads of guest memory
    /// through the VMM's mapping, drawn besides `verbs` by
    /// `sequence(seed:length:hostReads: true)`; after each, no page the
    /// guest has accepted as private may read as the guest's data.
    public static let hostReadVerbs = ["hostread"]

    /// Frames of the TD the sequences run on: four 2M chunks.
    public static let frames: UInt64 = 2048

    /// The 1G configurations (issue 18 §3): a TD on a module with 1G
    /// private mappings, one 1G hugetlb folio of guest_memfd, drawn besides
    /// `verbs` by `sequence(seed:length:private1G: true)`: Linux's accept of
    /// the whole GiB (its 1G TDCALL first), an access and a punch of the
    /// whole folio. The other operations stay in the first four chunks, so
    /// every one of them splits the 1G leaf it meets.
    public static let private1GVerbs = ["accept linux", "access 1g", "punch 1g"]

    /// Frames of the 1G TD: one 1G region.
    public static let frames1G: UInt64 = PageLevel.size1G.pages

    /// `length` operations drawn with `seed`.
    /// - Complexity: O(length).
    /// With `adversarial`, the adversarial host's commands are drawn too
    /// (the sequences without it are unchanged, seed for seed).
    /// With `inPlace`, `inPlaceVerbs` too (for a TD under `in-place`).
    /// With `private1G`, `private1GVerbs` too (for `scenario(..., private1G: true)`).
    /// With `races`, `raceVerbs` too.
    public static func sequence(seed: UInt64, length: Int, adversarial: Bool = false, inPlace: Bool = false,
                                private1G: Bool = false, races: Bool = false, hostReads: Bool = false) -> [String] {
        var rng = SplitMix64(seed: seed)
        let pool = (adversarial ? verbs + adversarialVerbs : verbs) + (inPlace ? inPlaceVerbs : []) + (private1G ? private1GVerbs : [])
            + (races ? raceVerbs : []) + (hostReads ? hostReadVerbs : [])
        return (0..<length).map { _ in
            let v = pool[Int(rng.next() % UInt64(pool.count))]
            // In place, offsets stay within 4 frames of the chunk start so
            // that pins meet the conversions of the same pages.
            let chunk = rng.next() % 4, off = rng.next() % (inPlace ? 4 : 512)
            let parts = v.split(separator: " ")
            switch parts[0] {
            case "accept" where parts[1] == "linux": return "accept 0x0+\(hex(frames1G)) linux"
            case "access" where parts.count > 1: return "access \(hex(rng.next() % frames1G))"
            case "accept":
                let start = chunk * 512 + (parts[1] == "2m" ? 0 : off)
                return "accept \(hex(start))+\(parts[1] == "2m" ? 512 : min(1 + rng.next() % 8, frames - start)) \(parts[1])"
            case "access": return "access \(hex(chunk * 512 + off))"
            case "convert", "attributes":
                let start = chunk * 512 + off
                return "\(parts[0]) \(hex(start))+\(min(1 + rng.next() % 4, frames - start)) \(parts[1])"
            case "punch": return parts.count > 1 ? "punch 0x0+\(hex(frames1G))" : "punch \(hex(chunk * 512))+512"
            case "contend":
                // One entry: a whole chunk (its 2M entry where KVM would map 2M) or a few frames.
                return rng.next() % 2 == 0 ? "contend \(hex(chunk * 512))+512" : "contend \(hex(chunk * 512 + off))+\(1 + rng.next() % 4)"
            case "hostread": return "hostread \(hex(chunk * 512))+\(512 * (1 + rng.next() % (4 - chunk)))"
            case "remove", "readd", "remap", "refuse-aug", "pin", "unpin", "hostmap":
                let start = chunk * 512 + off
                return "\(v) \(hex(start))+\(min(1 + rng.next() % 4, frames - start))"
            default: return v
            }
        }
    }

    /// Isolated free host pages in the buddy placement's sequences.
    public static let buddyIsolatedFreePages: UInt64 = 16

    /// The scenario a sequence runs in: a tdx-huge TD with one 2048-frame
    /// memslot under `policy`, its S-EPT pages placed as `placement` says.
    /// With `private1G`, the module maps private memory at 1G and the
    /// memslot is one 1G hugetlb folio.
    public static func scenario(_ ops: [String], policy: ConversionPolicy, placement: SEPTPlacement = .contiguous,
                                private1G: Bool = false) -> String {
        var td = "td host=tdx-huge sept-ve-disable=off policy=\(policy.rawValue) sept-placement=\(placement.rawValue)"
        // The buddy placement over a fragmented host: the TD's 13 control
        // pages and the first S-EPT pages each open a 2M range, the rest are
        // contiguous, so sequences cross from one to the other.
        if placement == .buddy { td += " host-free-4k=\(buddyIsolatedFreePages)" }
        let slot = private1G ? "slot id=1 base=0 pages=\(hex(frames1G)) backing=hugetlb-1g" : "slot id=1 base=0 pages=\(frames)"
        return td + (private1G ? " module-1g=on" : "") + "\n" + slot + "\nfinalize\n" + ops.joined(separator: "\n")
    }

    /// Runs `ops`; returns the first violation, if any. A VM that KVM_BUG_ON
    /// or TDX_BUG_ON marked bugged is one: those assertions state that KVM
    /// and the module never get there.
    public static func firstFailure(_ ops: [String], policy: ConversionPolicy, placement: SEPTPlacement = .contiguous,
                                    private1G: Bool = false) -> String? {
        guard let s = try? HostScenario.parse(scenario(ops, policy: policy, placement: placement, private1G: private1G)),
              let run = try? HostRun(s, calibration: try Calibration.builtIn(), log: false) else { return "scenario did not parse" }
        var invariants = HostInvariants(watching: Range(start: .lowest, count: frames / PageLevel.size2M.pages))
        for (i, c) in s.commands.enumerated() {
            do { try run.execute(c, line: i) } catch { return "threw \(error)" }
            // A bugged VM stops mid-flow (a blocked entry KVM still maps):
            // report the bug, not the state it left.
            if case .vmBugged(let why) = run.vm.outcome { return "after op \(i): VM bugged: \(why)" }
            if let v = invariants.registered(after: run.vm).first { return "after op \(i): \(v.detail)" }
            if case .hostUse(.hostread, let r) = c, let h = run.hostReads.last {
                // The TDX module's view, independent of KVM's attributes: accepted private pages.
                let accepted = run.vm.module.acceptedFrameCount(in: r)
                if h.read.guestData > UInt64(r.count) - accepted {
                    return "after op \(i): hostread \(r.lowerBound.address)+\(r.count) read \(h.read.guestData) pages as the guest's data, but the guest has \(accepted) private pages accepted there"
                }
            }
            if run.vm.isDead { break }
        }
        return nil
    }

    /// A shortest failing subsequence of a failing `ops` (1-minimal).
    public static func shrink(_ ops: [String], policy: ConversionPolicy, placement: SEPTPlacement = .contiguous,
                              private1G: Bool = false) -> [String] {
        Shrinking.oneMinimal(ops) { firstFailure($0, policy: policy, placement: placement, private1G: private1G) != nil }
    }
}
