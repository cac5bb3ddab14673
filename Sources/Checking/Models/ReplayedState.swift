/// One step of a model built on the real layers: one call across a real
/// interface by one actor, written as the line of the command language that
/// makes it (the host command language of `cocomem host`, or the model's
/// own word for a guest step that has no host command).
public struct ModelStep: Hashable, Sendable, CustomStringConvertible {
    public let actor: ActorID
    /// The line the step runs, as `cocomem host` reads it.
    public let command: String
    /// What the step is, in the real system's terms (for traces).
    public let call: String
    /// The 2 MiB regions of guest memory the step reads or writes, when the
    /// model knows them (a guest vCPU's step of `model: accept-memory`: its
    /// range, or its `accept_memory()` window with the guard unit); nil:
    /// anything. For the partial-order reduction's independence.
    public let regions: Range<UInt64>?

    public init(_ actor: ActorID, _ command: String, call: String, regions: Range<UInt64>? = nil) {
        self.actor = actor
        self.command = command
        self.call = call
        self.regions = regions
    }

    public var description: String { "\(actor): \(command)" }
}

/// A state of a model whose real objects are large reference types (a
/// `TDXVM` with its `TrustDomain`, a booted `GuestKernel`): the path of
/// steps that reaches it, to rebuild it by replaying from the initial
/// state, and a canonical fingerprint of what decides its future, which is
/// all that equality and hashing look at. Two paths to the same model state
/// are one state; states that differ in any behaviour-relevant field are
/// two.
///
/// Why replay rather than a copy: the models' objects hold interval maps,
/// memos and logs behind class references that are not copy-on-write; a
/// deep copy would have to be written (and kept right) for every layer.
/// Replay costs O(depth) commands per transition, which at the depths of
/// these configurations (≤ 8) is microseconds to milliseconds, and cannot
/// drift from the real code paths.
public struct ReplayedState: Hashable, Sendable {
    /// The steps from the initial state, in order (not hashed).
    public let path: [ModelStep]
    /// The fingerprint of the model state after `path`.
    public let fingerprint: [UInt64]
    /// What the last step broke, part of the state (as an error flag is in
    /// any model checker's state), so that a violating and a clean path to
    /// the same model state stay apart.
    public let violations: [Violation]
    /// No step is enabled any more (the VM or the guest is dead).
    public let terminal: Bool
    /// What the last step did, in one line (for traces; not hashed).
    public let observed: String
    /// The steps enabled after `path`, when the replay that made the state
    /// computed them (not hashed): the search then asks for them without
    /// replaying `path` again. Nil: the model replays to find them.
    public let enabled: [ModelStep]?
    /// The smallest fingerprint of the state's symmetry class (the model's
    /// identical vCPUs renamed), when the model has a symmetry (not hashed;
    /// `AcceptMemoryModel.canonical`). Nil: no symmetry.
    public let symmetricFingerprint: [UInt64]?

    public init(path: [ModelStep], fingerprint: [UInt64], violations: [Violation], terminal: Bool, observed: String,
                enabled: [ModelStep]? = nil, symmetricFingerprint: [UInt64]? = nil) {
        self.path = path
        self.fingerprint = fingerprint
        self.violations = violations
        self.terminal = terminal
        self.observed = observed
        self.enabled = enabled
        self.symmetricFingerprint = symmetricFingerprint
    }

    public static func == (a: ReplayedState, b: ReplayedState) -> Bool {
        a.fingerprint == b.fingerprint && a.violations == b.violations && a.terminal == b.terminal
    }

    public func hash(into h: inout Hasher) {
        h.combine(fingerprint)
        h.combine(violations)
        h.combine(terminal)
    }
}
