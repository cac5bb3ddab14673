/// A system the checker explores: its initial states, the actions enabled in
/// a state, what each does, and what must hold in every reachable state.
///
/// Every action is one call across a real interface by one actor (a vCPU's
/// TDG.MEM.PAGE.ACCEPT, the host's fault-in, a split, a conversion step of
/// the VMM), so a path through the system is a trace a maintainer can read
/// and `cocomem run` can replay.
///
/// This is the contract between the explorer (`Explorer`) and the models it
/// searches (the acceptance-core abstraction, the configurations built on
/// the layers' real interfaces). Requirements added later come with default
/// implementations, so a conforming model never has to change.
public protocol TransitionSystem {
    /// A whole state of the system. Equal states must be equal values:
    /// the explorer stores one of each (state hashing).
    associatedtype State: Hashable
    /// One call by one actor, with its arguments.
    associatedtype Action: Hashable & CustomStringConvertible

    /// The states the system may start in.
    var initialStates: [State] { get }

    /// The actions enabled in `state`, in a fixed order (determinism: the
    /// same order every run, so the same shortest trace is reported).
    func actions(in state: State) -> [Action]

    /// The state after `action` in `state`. `action` is one of
    /// `actions(in: state)`.
    func apply(_ action: Action, to state: State) -> State

    /// Every invariant `state` violates, empty when all hold.
    func violations(in state: State) -> [Violation]

    /// The actor that performs `action` (a vCPU index, the host, the VMM).
    /// Used by partial-order and symmetry reductions and printed in traces.
    func actor(of action: Action) -> ActorID

    /// The representative of `state`'s symmetry class (for example the
    /// state with identical vCPUs sorted). The default is `state` itself:
    /// no symmetry reduction.
    func canonical(_ state: State) -> State
}

extension TransitionSystem {
    public func canonical(_ state: State) -> State { state }
    public func actor(of action: Action) -> ActorID { .system }
}

/// Who performs an action: a vCPU of the guest, the host kernel (KVM and
/// the TDX module below it), the VMM, or the system as a whole.
public enum ActorID: Hashable, Comparable, Sendable, CustomStringConvertible {
    case vcpu(Int)
    case host
    case vmm
    case system

    public var description: String {
        switch self {
        case .vcpu(let i): "vcpu\(i)"
        case .host: "host"
        case .vmm: "vmm"
        case .system: "system"
        }
    }
}

/// One invariant broken in one state: the invariant's registered name and
/// what was seen, in one line.
public struct Violation: Hashable, Sendable, CustomStringConvertible {
    /// The invariant's name, as registered (for example
    /// `guest.never-touch-unaccepted`).
    public let invariant: String
    /// What broke, with the addresses or entries involved.
    public let detail: String

    public init(invariant: String, detail: String) {
        self.invariant = invariant
        self.detail = detail
    }

    public var description: String { "\(invariant): \(detail)" }
}
