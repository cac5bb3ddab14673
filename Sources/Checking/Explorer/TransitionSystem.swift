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

    /// The number of 64-bit words of `pack`'s fixed-width encoding, 0 when
    /// the model has none. The default is 0: the fast engine (`Checker`)
    /// then stores the state values themselves.
    var packedWords: Int { get }

    /// Writes `state`'s fixed-width encoding into `words` (`packedWords`
    /// words). Equal states must give equal words and different states
    /// different words (the engine stores only the words). The default
    /// writes nothing; it is called only when `packedWords` is not 0.
    func pack(_ state: State, into words: UnsafeMutableBufferPointer<UInt64>)

    /// The state `pack` encoded in `words`. The default traps: a model
    /// with `packedWords` > 0 must implement it.
    func unpack(_ words: UnsafeBufferPointer<UInt64>) -> State

    /// True if `a` and `b`, both enabled in `state`, are independent there:
    /// neither disables the other and both orders reach the same state.
    /// The partial-order reduction (sleep sets) relies on it. The default
    /// is false (every pair dependent: no reduction), which is always sound.
    func independent(_ a: Action, _ b: Action, in state: State) -> Bool

    /// One step of a trace as a maintainer reads it: the call with its
    /// arguments and result, and the part of the state it touched, for
    /// `action` taken in `state`. The default prints the action.
    func describe(_ action: Action, in state: State) -> TraceStep

    /// True if `action` taken in `state` is progress (spin's progress
    /// label): a cycle of steps none of which is progress is a livelock
    /// (`CycleSearch`). The default is true: no cycle is a livelock.
    func isProgress(_ action: Action, in state: State) -> Bool

    /// `state` with the model's pure monitors cleared (counters that only
    /// an invariant reads, no step), for the cycle search: without them a
    /// livelock's state repeats. The default is `state` itself.
    func withoutMonitors(_ state: State) -> State
}

extension TransitionSystem {
    public func canonical(_ state: State) -> State { state }
    public func actor(of action: Action) -> ActorID { .system }
    public var packedWords: Int { 0 }
    public func pack(_ state: State, into words: UnsafeMutableBufferPointer<UInt64>) {}
    public func unpack(_ words: UnsafeBufferPointer<UInt64>) -> State {
        preconditionFailure("packedWords > 0 needs unpack(_:)")
    }
    public func independent(_ a: Action, _ b: Action, in state: State) -> Bool { false }
    public func isProgress(_ action: Action, in state: State) -> Bool { true }
    public func withoutMonitors(_ state: State) -> State { state }
    public func describe(_ action: Action, in state: State) -> TraceStep {
        TraceStep(actor: actor(of: action), call: action.description, result: "", state: "")
    }

    /// True if `a` and `b` commute in `state`: both enabled, each still
    /// enabled after the other, and both orders reach the same state. A
    /// model's `independent` may use it as a dynamic check (conditional
    /// independence at `state`, which is what sleep sets need).
    /// - Complexity: four `apply` and two `actions(in:)` calls.
    public func commute(_ a: Action, _ b: Action, in state: State) -> Bool {
        let sa = apply(a, to: state), sb = apply(b, to: state)
        guard actions(in: sa).contains(b), actions(in: sb).contains(a) else { return false }
        return apply(b, to: sa) == apply(a, to: sb)
    }
}

/// One step of a readable trace: who called what with which arguments,
/// what it returned, and the state that matters after it.
public struct TraceStep: Hashable, Sendable {
    public var actor: ActorID
    /// The call and its arguments (`TDG.MEM.PAGE.ACCEPT range=0 level=2M`).
    public var call: String
    /// What the call returned (`TDX_PAGE_SIZE_MISMATCH`), empty if nothing.
    public var result: String
    /// The part of the state the call read or wrote, after it.
    public var state: String

    public init(actor: ActorID, call: String, result: String, state: String) {
        self.actor = actor
        self.call = call
        self.result = result
        self.state = state
    }
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
