public import MemoryModel

/// Places in the host where a failure can be injected, each named after the
/// real call that fails.
public enum FaultPoint: String, Sendable, CaseIterable {
    /// Splitting a hugetlb folio fails undoing HugeTLB vmemmap optimisation (-ENOMEM).
    case folioSplitNoMem = "folio-split-nomem"
    /// `tdx_topup_vm_split_cache()` cannot allocate (-ENOMEM).
    case splitCacheTopupNoMem = "split-cache-nomem"
    /// `tdp_mmu_alloc_sp_for_split()` fails (-ENOMEM).
    case splitAllocNoMem = "split-alloc-nomem"
    /// Another vCPU's ACCEPT holds the guest-side lock of the entry a 4K AUG
    /// needs: TDX_OPERAND_BUSY, -EBUSY, RET_PF_RETRY, and the fault again.
    case augBusy = "aug-busy"
    /// A vCPU holds the guest-side lock of the entry DEMOTE needs: BUSY, then the no-vCPU retry.
    case demoteBusy = "demote-busy"
    /// Zero-step mitigation holds the tree lock when BLOCK runs: BUSY, then the retry.
    case blockBusy = "block-busy"
    /// A vCPU has not left the previous epoch: TRACK returns PREVIOUS_TLB_EPOCH_BUSY.
    case trackEpochBusy = "track-busy"
    /// A host interrupt is pending during DEMOTE (matters without ENHANCED_DEMOTE_INTERRUPTIBILITY).
    case demoteInterrupt = "demote-interrupt"
    /// Unmapping shared memory finds an elevated folio refcount (-EAGAIN).
    case sharedRefcountBusy = "shared-refcount"
    /// In-place conversion, step 1 (Ackerley Tng's series): allocating the
    /// guest_memfd attribute (maple tree) entries for the range fails
    /// (-ENOMEM) before anything has changed.
    case gmemAttributesNoMem = "gmem-attributes-nomem"
    /// In-place conversion to private, step 2a: a transient extra reference
    /// on a shared folio (a speculative GUP or page-cache lookup, not a
    /// host pin) makes the safe-refcount check fail (-EAGAIN).
    case gmemSafeRefcount = "gmem-safe-refcount"
    /// An interrupt is pending for the vCPU (a host timer tick, an IPI)
    /// while TDG.MEM.PAGE.ACCEPT initialises a 2M page: the module stops
    /// after the current 4K chunk (`is_interrupt_pending_guest_side()`), the
    /// TD exits for the interrupt and re-enters, and the TDCALL re-executes
    /// from the entry's ACCEPT_COUNTER. Each firing is one interruption.
    case acceptInterrupt = "accept-interrupt"
}

extension FaultPoint {
    /// Whether handling a guest's ACCEPT of a private page can reach the
    /// point: the fault path (AUG) and the splits that honour the accept
    /// level can; guest_memfd's folio splits, refcount checks and in-place
    /// attribute steps belong to conversions, which an accept reaches only
    /// through a shared page (KVM_EXIT_MEMORY_FAULT, the VMM converts it).
    public var reachableFromPrivateAccept: Bool {
        switch self {
        case .folioSplitNoMem, .sharedRefcountBusy, .gmemAttributesNoMem, .gmemSafeRefcount: false
        case .splitCacheTopupNoMem, .splitAllocNoMem, .augBusy, .demoteBusy, .blockBusy, .trackEpochBusy,
             .demoteInterrupt, .acceptInterrupt: true
        }
    }
}

/// Failures to inject: each point fails the next `count` times it is reached.
public struct FaultPlan: Sendable, Equatable {
    public private(set) var remaining: [FaultPoint: Int] = [:]
    public private(set) var fired: [FaultPoint: Int] = [:]
    /// Frames an adversarial host refuses to TDH.MEM.PAGE.AUG (`refuse-aug`,
    /// issue 18 §5): its fault path returns without mapping them, as a host
    /// that declines to back a GPA does. Not KVM state: the host's choice.
    public private(set) var refusedAUG = IntervalMap<GuestFrameNumber, Bool>(initial: false)

    public init() {}

    public mutating func inject(_ p: FaultPoint, times: Int = 1) { remaining[p, default: 0] += times }

    /// True (and consumed) if `p` should fail now.
    public mutating func fire(_ p: FaultPoint) -> Bool {
        guard let n = remaining[p], n > 0 else { return false }
        remaining[p] = n - 1
        fired[p, default: 0] += 1
        return true
    }

    public var isArmed: Bool { remaining.values.contains { $0 > 0 } }

    /// Whether `p` would fail now, without consuming it.
    public func isArmed(_ p: FaultPoint) -> Bool { (remaining[p] ?? 0) > 0 }

    /// Whether a failure is armed at a point an ACCEPT of a private page can reach.
    public var isArmedOnPrivateAccept: Bool { remaining.contains { $0.value > 0 && $0.key.reachableFromPrivateAccept } }

    /// How many failures have fired so far, at every point.
    public var firedCount: Int { fired.values.reduce(0, +) }

    /// The host refuses to AUG `frames` from now on.
    public mutating func refuseAUG(_ frames: Range<GuestFrameNumber>) { refusedAUG.assign(frames, true) }
}
