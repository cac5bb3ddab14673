import CostModel
import KVM
import MemoryModel
import Simulation
import TDXModule

/// A model on the host's real interfaces: a TD (`TDXVM` over a
/// `TrustDomain`) driven by the host command language of `cocomem host`,
/// each step one command by one actor (a vCPU's accept or access, the VMM's
/// conversion or punch hole, an injected fault, an adversarial host's
/// remove/readd/remap/refuse-aug), with every registered host invariant
/// checked after each step, and, when a `GuestLedger` is given, the guest's
/// own invariants over the pages it watches.
///
/// States are `ReplayedState`s: `apply` rebuilds the TD by replaying the
/// path through `HostRun`, the same interpreter `cocomem host` and
/// `cocomem run` use, so a counterexample's commands are a scenario that
/// replays to the same violation.
public struct HostCommandModel: TransitionSystem {
    public typealias State = ReplayedState
    public typealias Action = ModelStep

    /// The `td`, `slot` and `finalize` lines every path starts after.
    public let header: String
    /// The steps offered in every live state, in a fixed order.
    public let steps: [ModelStep]
    /// At most this many `inject` steps on a path.
    public let maxFaults: Int
    /// At most this many adversarial-host steps on a path.
    public let maxAttacks: Int
    /// The guest's view of the pages it uses, when the model has one.
    public let ledger: GuestLedger.Config?

    public init(header: String, steps: [ModelStep], maxFaults: Int, maxAttacks: Int = 0, ledger: GuestLedger.Config? = nil) throws {
        self.header = header
        self.steps = steps
        self.maxFaults = maxFaults
        self.maxAttacks = maxAttacks
        self.ledger = ledger
        _ = try HostScenario.parse(header)
    }

    public var initialStates: [ReplayedState] {
        [(try? replay([])) ?? ReplayedState(path: [], fingerprint: [], violations: [], terminal: true, observed: "the TD did not build")]
    }

    public func actions(in state: ReplayedState) -> [ModelStep] {
        guard !state.terminal else { return [] }
        let faults = state.path.count { $0.command.hasPrefix("inject ") }
        let attacks = state.path.count { Self.isAttack($0) }
        let ledgerState = ledger.map { GuestLedger(config: $0, replaying: state.path) }
        return steps.filter { s in
            if s.command.hasPrefix("inject ") { return faults < maxFaults }
            if Self.isAttack(s) { return attacks < maxAttacks }
            return ledgerState?.enables(s) ?? true
        }
    }

    static func isAttack(_ s: ModelStep) -> Bool {
        ["remove ", "readd ", "remap ", "refuse-aug "].contains { s.command.hasPrefix($0) }
    }

    public func apply(_ action: ModelStep, to state: ReplayedState) -> ReplayedState {
        (try? replay(state.path + [action]))
            ?? ReplayedState(path: state.path + [action], fingerprint: [], violations: [], terminal: true, observed: "the step did not parse")
    }

    public func violations(in state: ReplayedState) -> [Violation] { state.violations }

    public func actor(of action: ModelStep) -> ActorID { action.actor }

    /// The scenario text a path runs (`cocomem host FILE`); steps with no
    /// host command (a guest's release) are comments.
    public func scenario(_ path: [ModelStep]) -> String {
        header + "\n" + path.map { $0.command.hasPrefix("#") ? $0.command : $0.command + "    # \($0.actor): \($0.call)" }.joined(separator: "\n") + "\n"
    }

    /// Runs `path` from the start; the returned state carries the last
    /// step's violations.
    /// - Complexity: O(path length) host commands.
    func replay(_ path: [ModelStep]) throws -> ReplayedState {
        let s = try HostScenario.parse(header + "\n" + path.filter { !$0.command.hasPrefix("#") }.map(\.command).joined(separator: "\n"))
        let run = try HostRun(s, calibration: try Calibration.builtIn(), log: false, record: false)
        let top = run.vm.slots.map(\.frames.upperBound).max() ?? GuestFrameNumber(0)
        var invariants = HostInvariants(watching: .lowest..<(top + (PageLevel.size2M.pages - 1)).region2M)
        var ledgerState = ledger.map { GuestLedger(config: $0) }
        // The header's own commands (build, finalize).
        var i = 0
        let headerCommands = s.commands.count - path.count { !$0.command.hasPrefix("#") }
        while i < headerCommands { try run.execute(s.commands[i], line: i); i += 1 }
        _ = invariants.registered(after: run.vm)
        var last: [Violation] = []
        var observed = ""
        for step in path {
            let brokenBefore = Set(run.vm.brokenOutcomes)
            let wasBugged = run.vm.isDead
            let before = ledgerState?.observeBefore(step, vm: run.vm)
            if !step.command.hasPrefix("#") {
                try run.execute(s.commands[i], line: i, vcpu: s.vcpu(ofCommand: i))
                i += 1
            }
            var v: [Violation] = []
            for b in run.vm.brokenOutcomes where !brokenBefore.contains(b) && !b.hasPrefix("invariant: ") {
                v.append(InvariantRegistry.violation(host: b))
            }
            if !wasBugged, case .vmBugged(let why) = run.vm.outcome {
                // A bugged VM stops mid-flow (a blocked entry KVM still
                // maps): the finding is the bug, not the state it left
                // (as HostSequences reports it).
                v.append(Violation(invariant: InvariantRegistry.noBugOn.name, detail: why))
                _ = invariants.registered(after: run.vm)
            } else {
                v = invariants.registered(after: run.vm) + v
            }
            // What the step did as its actor sees it: the VM's death first
            // (a guest's failed accept after it is only its consequence).
            observed = !wasBugged && run.vm.isDead ? "\(run.vm.outcome)" : run.lastGuestFailure ?? "\(run.vm.outcome)"
            if let f = run.lastGuestFailure {
                if f.contains("Guest access before accepting") || f.contains("EPT-violation on private memory") {
                    v.append(Violation(invariant: InvariantRegistry.neverTouchUnaccepted.name, detail: f))
                } else if Self.refused(step, vm: run.vm) {
                    v.append(Violation(invariant: InvariantRegistry.acceptCompletes.name,
                                       detail: "\(step.command): the host never AUGs the page; the vCPU faults again for ever (cut off: \(f))"))
                }
            }
            if var l = ledgerState, let before {
                v += l.observeAfter(step, before: before, vm: run.vm, guestFailure: run.lastGuestFailure)
                ledgerState = l
            }
            last = Self.deduplicated(v)
        }
        var fp = HostFingerprint(run.vm).words
        if let l = ledgerState { fp += l.words }
        let terminal = run.vm.isDead || (ledgerState?.stopped ?? false)
        return ReplayedState(path: path, fingerprint: fp, violations: last, terminal: terminal, observed: observed)
    }

    static func refused(_ step: ModelStep, vm: TDXVM) -> Bool {
        guard let f = step.command.split(separator: " ").dropFirst().first,
              let g = parseFrame(String(f)) else { return false }
        return vm.faults.refusedAUG.value(at: g)
    }

    static func deduplicated(_ v: [Violation]) -> [Violation] {
        var seen = Set<String>()
        return v.filter { seen.insert($0.invariant).inserted }
    }
}

/// The first frame of a `GFN[+COUNT]` argument.
func parseFrame(_ s: String) -> GuestFrameNumber? {
    let a = s.split(separator: "+").first.map(String.init) ?? s
    let v = a.hasPrefix("0x") ? UInt64(a.dropFirst(2), radix: 16) : UInt64(a)
    return v.map(GuestFrameNumber.init)
}
