/// A compact, concrete key for bulk replay: the platform state a unit of
/// work (a 2M chunk, a PSC batch, a 4 MiB block accept) depends on, or the
/// uniform state it leaves behind. Platforms pack their per-range state into
/// `state` and any neighbouring context (for TDX: whether the S-EPT PD and
/// PDPT above the chunk exist) into `context`.
///
/// A concrete type rather than `AnyHashable` because replay lookups run
/// once per replayed span at multi-TiB scale, and existential boxing and
/// dynamic casts dominated the profile.
public struct ReplayKey: Hashable, Sendable {
    public var state: UInt64
    public var context: UInt64

    @inlinable public init(state: UInt64, context: UInt64 = 0) {
        self.state = state
        self.context = context
    }
}
