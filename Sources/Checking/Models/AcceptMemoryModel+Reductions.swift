import Foundation
import GuestKernel
import MemoryModel

/// The engine's reductions for `model: accept-memory` (`Checker`'s
/// `symmetry` and `por`, `Swarm`).
///
/// - Symmetry: vCPUs whose programs are identical are interchangeable: a
///   state and the state with two such vCPUs' parts swapped (program
///   position, `accepting_list` entry, the lock, the TDX module's per-vCPU
///   TLB epoch and holds) have the same future up to the renaming. The
///   representative is the state whose fingerprint is the smallest over the
///   renamings (`ReplayedState.symmetricFingerprint`, computed by the replay
///   that made the state); the host, the bitmap and everything not per vCPU
///   is left as it is. The representative keeps the concrete path of the
///   first state of its class the search met, so every stored state still
///   replays, and `Checker` makes the counterexample's trace concrete step by
///   step as it does for the acceptance core.
/// - Partial-order reduction: `independent` is conservative. Only two steps
///   of different vCPUs can be independent, only steps that take no lock
///   (`arch_accept_memory()` with `unaccepted_memory_lock` dropped, on
///   kernels with 50e782a86c98's `accepting_list`, and touches), only when
///   their ranges lie in disjoint 2 MiB units; the host's and the VMM's moves,
///   injected faults, MapGPA conversions, kexec and reboot, and every lock
///   step (list walk, `bitmap_clear()`) depend on everything. A candidate
///   pair is then held to the definition itself in the state at hand
///   (`commute`: each still enabled after the other and both orders reach
///   the same state), because two such steps may still interact through the
///   host: which host frames KVM hands out depends on the order of the
///   AUGs, and a step that kills the TD disables every other.
extension AcceptMemoryModel {
    /// Every ordering of 0..<n.
    static func permutations(_ n: Int) -> [[Int]] {
        guard n > 1 else { return [Array(0..<n)] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
            .sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// The representative of `state`'s class under renamings of identical
    /// vCPUs: its smallest fingerprint, its own path.
    /// - Complexity: O(1): the replay that made the state computed it.
    public func canonical(_ state: ReplayedState) -> ReplayedState {
        guard let f = state.symmetricFingerprint, f != state.fingerprint else { return state }
        return ReplayedState(path: state.path, fingerprint: f, violations: state.violations, terminal: state.terminal,
                             observed: state.observed, enabled: state.enabled, symmetricFingerprint: f)
    }

    /// The step as `cocomem check` prints it: the real call, the command
    /// line, and what it returned (one replay).
    public func describe(_ action: ModelStep, in state: ReplayedState) -> TraceStep {
        TraceStep(actor: action.actor, call: "\(action.call): \(action.command.trimmingCharacters(in: .whitespaces))",
                  result: apply(action, to: state).observed, state: "")
    }

    /// Conservative independence (see the extension's comment): a static
    /// filter, then `commute` in `state`.
    /// - Complexity: O(1) for pairs the filter refuses; four replays for a candidate.
    public func independent(_ a: ModelStep, _ b: ModelStep, in state: ReplayedState) -> Bool {
        guard let ua = lockFreeUnits(a), let ub = lockFreeUnits(b), a.actor != b.actor, !ua.overlaps(ub) else { return false }
        return commute(a, b, in: state)
    }

    /// The 2 MiB units a vCPU step that takes no lock works on, nil for any
    /// other step (lock steps are comments, `#`; conversions, kexec and
    /// reboot are named by their call).
    func lockFreeUnits(_ s: ModelStep) -> Range<UInt64>? {
        guard case .vcpu = s.actor, config.plantedFault != nil || locking == .acceptingList else { return nil }
        let w = s.command.split(separator: " ")
        guard w.count >= 2, w[0] == "accept" || w[0] == "access", !s.call.hasPrefix("kernel_kexec()") else { return nil }
        let parts = w[1].split(separator: "+")
        func num(_ t: Substring) -> UInt64? { t.hasPrefix("0x") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t) }
        guard let first = parts.first.flatMap(num), let count = parts.count == 2 ? num(parts[1]) : 1, count > 0 else { return nil }
        let per = PageLevel.size2M.pages
        return first / per ..< (first + count + per - 1) / per
    }
}
