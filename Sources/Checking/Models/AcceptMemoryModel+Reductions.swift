import Foundation
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
///   of different guest vCPUs can be independent, only steps whose 2 MiB
///   regions the model knows (`ModelStep.regions`: an `arch_accept_memory()`
///   run, a touch, a `TdAcceptPages()`, and a lock step's whole
///   `accept_memory()` window, guard unit included), only when those regions
///   are disjoint; the host's and the VMM's moves, injected faults, MapGPA
///   conversions, kexec and reboot depend on everything. A lock step
///   (`retry:`/list walk, `bitmap_clear()`) is one critical section of
///   `unaccepted_memory_lock` in the model, and two on disjoint windows touch
///   disjoint bits and list entries (the list's order is not observable:
///   the fingerprint sorts it); which of them takes the lock first shows
///   nowhere else. A candidate pair is then held to the definition itself in
///   the state at hand (`commute`: each still enabled after the other and
///   both orders reach the same state), because two such steps may still
///   interact: through the host (the order of AUGs decides which host frames
///   KVM hands out), through a step that kills the TD (it disables every
///   other), or through the lock held across the accept before 50e782a86c98
///   (the waiting call is disabled).
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
        guard case .vcpu = a.actor, case .vcpu = b.actor, a.actor != b.actor,
              let ra = a.regions, let rb = b.regions, !ra.overlaps(rb) else { return false }
        return commute(a, b, in: state)
    }
}
