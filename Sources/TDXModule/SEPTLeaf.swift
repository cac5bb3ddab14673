import MemoryModel

/// The S-EPT state of one 4K guest frame as far as acceptance is concerned:
/// a minimal subset of the module's `sept_state_lookup` states (FREE,
/// PENDING, MAPPED) plus whether the 2M-level entry above it is a
/// non-leaf (NL_MAPPED) table or a leaf.
public enum SEPTLeaf: UInt8, Sendable, Equatable {
    /// The 2M-level entry is FREE: nothing is mapped in this 2M range.
    case unmapped
    /// The 2M-level entry is NL_MAPPED (a 4K table exists); this 4K entry is FREE.
    case freeUnderTable
    /// 4K leaf in PENDING (AUG'd, not yet accepted).
    case pending4K
    /// 4K leaf in MAPPED (accepted, or added by TDH.MEM.PAGE.ADD).
    case mapped4K
    /// 2M leaf in PENDING.
    case pending2M
    /// 2M leaf in MAPPED.
    case mapped2M

    /// Guest-accessible (accepted) states.
    public var isAccessible: Bool { self == .mapped4K || self == .mapped2M }
    /// Backed by host memory.
    public var isBacked: Bool { self != .unmapped && self != .freeUnderTable }
}

/// How the placeholder host maps private memory on an EPT violation. This
/// is the `--host-mapping` option; issue 4's TDX host model replaces it.
public enum HostMappingPolicy: String, Sendable, CaseIterable {
    /// KVM maps private memory at 4K only (upstream KVM TDX before huge pages).
    case map4K = "4k"
    /// KVM maps at 2M where the guest accepts at 2M and nothing is mapped yet.
    case map2M = "2m"
}
