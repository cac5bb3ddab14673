public import MemoryModel

/// S-EPT entry states the model keeps: the subset of the module's
/// `sept_state_lookup` states that private-memory mapping, splitting and
/// acceptance use (intel/tdx-module `src/common/memory_handlers/sept_manager.h`).
/// Migration (EXPORTED_*), import (REMOVED), write-blocked and MMIO states
/// are not modelled.
public enum SEPTState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case free
    /// Non-leaf pointing at an S-EPT page.
    case nlMapped
    case nlBlocked
    /// Leaf the guest has accepted (or PAGE.ADD at build time).
    case mapped
    case blocked
    /// Leaf AUG'd but not accepted: `PEND == MAPPED | TDP`.
    case pending
    case pendingBlocked

    /// The host-visible "public" state code (`sept_special_flags_lookup[].public_state`).
    public var publicState: Int {
        switch self {
        case .free: 0
        case .blocked: 1
        case .pending: 2
        case .pendingBlocked: 3
        case .mapped: 4
        case .nlBlocked: 129
        case .nlMapped: 132
        }
    }

    public var isLeaf: Bool { self == .mapped || self == .blocked || self == .pending || self == .pendingBlocked }
    public var isNonLeaf: Bool { self == .nlMapped || self == .nlBlocked }
    public var isBlocked: Bool { self == .blocked || self == .pendingBlocked || self == .nlBlocked }
    public var isPending: Bool { self == .pending || self == .pendingBlocked }

    /// TDH.MEM.RANGE.BLOCK's transition.
    public var blocked: SEPTState {
        switch self {
        case .nlMapped: .nlBlocked
        case .mapped: .blocked
        case .pending: .pendingBlocked
        default: self
        }
    }

    /// TDH.MEM.RANGE.UNBLOCK's transition, also the state DEMOTE gives children.
    public var unblocked: SEPTState {
        switch self {
        case .nlBlocked: .nlMapped
        case .blocked: .mapped
        case .pendingBlocked: .pending
        default: self
        }
    }

    public var description: String {
        switch self {
        case .free: "FREE"
        case .nlMapped: "NL_MAPPED"
        case .nlBlocked: "NL_BLOCKED"
        case .mapped: "MAPPED"
        case .blocked: "BLOCKED"
        case .pending: "PENDING"
        case .pendingBlocked: "PENDING_BLOCKED"
        }
    }
}

/// One S-EPT entry: its state, the host frame it maps as an offset from the
/// guest frame (so that a contiguous mapping is one uniform run: the offset
/// is the one raw number relating the two spaces), and the
/// TD epoch recorded when it was blocked (kept in the page's PAMT entry as
/// BEPOCH by the real module).
public struct SEPTEntry: Hashable, Sendable {
    public var state: SEPTState
    /// `hfn = gfn &+ hfnDelta` for leaves; 0 otherwise.
    public var hfnDelta: UInt64
    public var bepoch: UInt64

    public init(_ state: SEPTState, hfnDelta: UInt64 = 0, bepoch: UInt64 = 0) {
        self.state = state
        self.hfnDelta = hfnDelta
        self.bepoch = bepoch
    }

    /// A leaf in `state` mapping the page at `gfn` to the host page at `hfn`.
    public init(_ state: SEPTState, mapping gfn: GuestFrameNumber, to hfn: HostFrameNumber) {
        self.init(state, hfnDelta: hfn.value &- gfn.value)
    }

    /// The host frame this leaf maps at `gfn` (the HPA field of the entry).
    /// - Complexity: O(1).
    public func hfn(at gfn: GuestFrameNumber) -> HostFrameNumber { HostFrameNumber(gfn.value &+ hfnDelta) }

    public static let free = SEPTEntry(.free)
}
