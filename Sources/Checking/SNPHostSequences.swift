import CostModel
public import KVM
import MemoryModel
import Simulation

/// Seeded random sequences of host commands on the SEV-SNP host
/// (`td platform=snp`, issue 18 §7), each run with every SNP host
/// invariant (`SNPVM.checkInvariants`) checked after every step; a failing
/// one is shrunk to a shortest failing sequence (`Shrinking`).
public enum SNPHostSequences {
    /// The commands drawn from, before their frames are chosen.
    public static let verbs = ["accept linux", "accept 4k", "access", "convert shared", "convert private",
                               "attributes shared", "attributes private", "punch", "punch-part", "rmpadjust",
                               "psc-skip", "psc-invert", "psc-backward", "psc-honest", "assign", "rmp-shared"]

    /// The host's own use of guest_memfd's pages, drawn under in-place
    /// conversion as well (`pin` and `unpin` need it).
    public static let inPlaceVerbs = ["pin", "unpin", "hostmap"]

    /// Frames of the guest: four 2M ranges.
    public static let frames: UInt64 = 2048

    /// `length` commands drawn with `seed`.
    /// - Complexity: O(length).
    public static func sequence(seed: UInt64, length: Int, inPlace: Bool = false) -> [String] {
        var rng = SplitMix64(seed: seed)
        let drawn = inPlace ? verbs + inPlaceVerbs : verbs
        return (0..<length).map { _ in
            let v = drawn[Int(rng.next() % UInt64(drawn.count))]
            let chunk = rng.next() % 4, off = rng.next() % 512
            let start = chunk * 512 + off, n = min(1 + rng.next() % 600, frames - start)
            let parts = v.split(separator: " ")
            switch parts[0] {
            case "accept": return "accept \(hex(start))+\(n) \(parts[1])"
            case "access": return "access \(hex(start))+\(min(n, 4))"
            case "convert", "attributes": return "\(parts[0]) \(hex(start))+\(n) \(parts[1])"
            case "punch": return "punch \(hex(chunk * 512))+512"
            case "punch-part": return "punch \(hex(start))+\(n)"
            case let a where a.hasPrefix("psc-"): return "\(a) \(hex(start))+\(n)"
            // A third of the host's RMPUPDATEs cover a whole 2M range (the 2M entry paths), the rest any range.
            case "assign", "rmp-shared": return off % 3 == 0 ? "\(parts[0]) \(hex(chunk * 512))+512" : "\(parts[0]) \(hex(start))+\(n)"
            case "pin", "unpin", "hostmap": return "\(parts[0]) \(hex(start))+\(min(n, 16))"
            default: return "rmpadjust \(hex(start))+\(min(n, 8)) vmpl=1"
            }
        }
    }

    /// The scenario a sequence runs in: one 2048-frame memslot of `backing`.
    public static func scenario(_ ops: [String], backing: GmemBacking, inPlace: Bool = false) -> String {
        let pages = backing == .hugetlb1G ? PageLevel.size1G.pages : frames
        return "td platform=snp vcpus=1\(inPlace ? " policy=in-place" : "")\nslot id=1 base=0 pages=\(pages) backing=\(backing.rawValue)\n" + ops.joined(separator: "\n")
    }

    /// Runs `ops`; returns the first invariant violation or KVM warning, if
    /// any. Where the Linux guest would terminate itself (a double
    /// validation, an access to memory it never validated) the sequence
    /// goes on: the host must hold its invariants whatever the guest does,
    /// and stopping there would leave most sequences a few steps long.
    public static func firstFailure(_ ops: [String], backing: GmemBacking, inPlace: Bool = false) -> String? {
        guard let s = try? HostScenario.parse(scenario(ops, backing: backing, inPlace: inPlace)),
              let run = try? SNPHostRun(s, calibration: try Calibration.builtIn(), log: false) else { return "scenario did not parse" }
        for (i, c) in s.commands.enumerated() {
            do { try run.execute(c, line: i) } catch { return "threw \(error)" }
            if let v = run.vm.checkInvariants().first { return "after op \(i): \(v)" }
            if !run.vm.warnings.isEmpty { return "after op \(i): KVM warned: \(run.vm.warnings[0])" }
        }
        return nil
    }

    /// A shortest failing subsequence of a failing `ops` (1-minimal).
    public static func shrink(_ ops: [String], backing: GmemBacking, inPlace: Bool = false) -> [String] {
        Shrinking.oneMinimal(ops) { firstFailure($0, backing: backing, inPlace: inPlace) != nil }
    }
}
