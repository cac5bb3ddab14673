import Foundation
import CostModel
import KVM
import MemoryModel
import Simulation
import TDXModule

/// A counterexample's host commands (a scenario file's `host` step, as
/// `cocomem check --counterexamples` and `cocomem verdicts --scenarios`
/// write them) replayed on the real layers through `HostRun`, the
/// interpreter `cocomem run` uses, with the names of every invariant the
/// run shows broken along the way. The tests hold a written counterexample
/// to it: the replay must show the invariant the checker reported.
public enum CounterexampleReplay {
    /// Every invariant broken at some step of `commands`, in the order first
    /// seen, by the checks the checker's models make:
    /// - the registered host invariants and KVM's bugs, the guest's fatal
    ///   touch and an AUG the host refuses (`HostCommandModel`'s, after each
    ///   command);
    /// - the guest ledger's (`GuestLedger`), when the commands are the
    ///   ledger's page program (their comments say `write:`, `read:`, or
    ///   `# guest: release`): its frames are the pages accepted one by one,
    ///   and it trusts ALREADY_ACCEPTED when they are accepted with edk2's
    ///   driver (`4k`);
    /// - the acceptance core's guest invariants on the real run:
    ///   `guest.accept-succeeds` (an accept the guest's driver gave up on,
    ///   "TDX: Failed to accept memory"), `guest.no-double-accept` (an
    ///   ACCEPT that made a page of a 2 MiB range the guest had written
    ///   accessible again: TDG.MEM.PAGE.ACCEPT zeroed it).
    /// - Throws: the host language's error for a command that does not parse.
    /// - Complexity: O(n²) host commands for n commands (each prefix is
    ///   replayed, as the model's states are).
    public static func invariants(hostCommands text: String) throws -> [String] {
        var header: [String] = []
        var steps: [ModelStep] = []
        for raw in text.split(separator: "\n").map(String.init) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("# guest: release ") {
                steps.append(ModelStep(.vcpu(0), line, call: "release: stops using the page, expects the host to take it back"))
                continue
            }
            if line.hasPrefix("#") { continue }
            let parts = line.components(separatedBy: "    # ")
            let command = parts[0].trimmingCharacters(in: .whitespaces)
            let verb = command.split(separator: " ").first.map(String.init) ?? ""
            if ["td", "slot", "finalize", "build"].contains(verb) && steps.isEmpty { header.append(command); continue }
            let note = parts.count > 1 ? parts[1] : ""
            let actorText = note.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            let call = note.split(separator: ":", maxSplits: 1).dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            steps.append(ModelStep(actor(actorText), command, call: call))
        }
        let model = try HostCommandModel(header: header.joined(separator: "\n"), steps: [], maxFaults: 0, ledger: ledger(steps))
        var seen: [String] = []
        func add(_ name: String) { if !seen.contains(name) { seen.append(name) } }
        for n in 1...max(1, steps.count) where n <= steps.count {
            for v in try model.replay(Array(steps[..<n])).violations { add(v.invariant) }
        }
        for name in try coreGuestInvariants(header: header, steps: steps) { add(name) }
        return seen
    }

    static func actor(_ text: String) -> ActorID {
        if text.hasPrefix("vcpu"), let i = Int(text.dropFirst(4)) { return .vcpu(i) }
        switch text {
        case "host": return .host
        case "vmm": return .vmm
        default: return .system
        }
    }

    /// The ledger of the page program, if the steps are one.
    static func ledger(_ steps: [ModelStep]) -> GuestLedger.Config? {
        guard steps.contains(where: { $0.call.hasPrefix("write:") || $0.call.hasPrefix("read:") || $0.command.hasPrefix("# guest: release") }) else { return nil }
        var frames: [GuestFrameNumber] = []
        var trusts = false
        for s in steps where s.actor == .vcpu(0) && s.command.hasPrefix("accept ") {
            let f = s.command.split(separator: " ")
            guard f.count >= 2, f[1].hasSuffix("+1"), let g = parseFrame(String(f[1])) else { continue }
            if !frames.contains(g) { frames.append(g) }
            trusts = f.count > 2 && f[2] == "4k"
        }
        return frames.isEmpty ? nil : GuestLedger.Config(frames: frames, trustsAlreadyAccepted: trusts)
    }

    /// The acceptance core's guest invariants, observed on a real run.
    static func coreGuestInvariants(header: [String], steps: [ModelStep]) throws -> [String] {
        let commands = steps.filter { !$0.command.hasPrefix("#") }
        let s = try HostScenario.parse((header + commands.map(\.command)).joined(separator: "\n"))
        let run = try HostRun(s, calibration: try Calibration.builtIn(), log: false, record: false)
        var out: [String] = []
        var written = Set<UInt64>()
        let first = s.commands.count - commands.count
        for i in 0..<first { try run.execute(s.commands[i], line: i) }
        for (k, step) in commands.enumerated() where !run.vm.isDead {
            let c = s.commands[first + k]
            let before: [GuestFrameNumber: Bool]
            if case .accept(let r, _) = c { before = Dictionary(uniqueKeysWithValues: r.map { ($0, run.vm.module.isAccessible($0.only)) }) } else { before = [:] }
            try run.execute(c, line: first + k, vcpu: s.vcpu(ofCommand: first + k))
            switch c {
            case .accept(let r, _):
                if let f = run.lastGuestFailure, f.contains("Failed to accept memory") { out.append("guest.accept-succeeds") }
                if r.contains(where: { before[$0] == false && run.vm.module.isAccessible($0.only) && written.contains($0.value / 512) }) {
                    out.append("guest.no-double-accept")
                }
            case .access(let r) where run.lastGuestFailure == nil && !step.call.hasPrefix("read"):
                for g in r where run.vm.attributes.isPrivate(g) { written.insert(g.value / 512) }
            case .attributes(let r, toPrivate: false), .convert(let r, toPrivate: false):
                for g in r { written.remove(g.value / 512) }
            default: break
            }
        }
        return out
    }
}
