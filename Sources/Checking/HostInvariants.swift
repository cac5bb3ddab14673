public import KVM
public import MemoryModel

/// The invariants a host run must keep after every operation, in one place
/// for the randomized runner, the tests and `cocomem host`.
///
/// Most live with the state they speak of (`TDXVM.checkInvariants()`: the
/// mirror agrees with the S-EPT, no mapping larger than its folio, DPAMT
/// refcounts, no double-level mapping); what needs history, such as
/// KVM_LPAGE_GUEST_INHIBIT_FLAG never clearing once set (seed 004: the flag
/// is one-way so a guest's 4K accept is never undone by a later 2M
/// mapping), is kept here across steps.
public struct HostInvariants {
    /// 2M regions seen with GUEST_INHIBIT set so far.
    private var inhibited = Set<GuestRegion2M>()
    /// The regions whose flag history is followed.
    public let watched: Range<GuestRegion2M>

    /// Follows the GUEST_INHIBIT history of `watched`.
    public init(watching watched: Range<GuestRegion2M>) { self.watched = watched }

    /// Every violation after one more step of `vm`, each as one line.
    /// - Complexity: O(runs of every KVM and S-EPT map + watched regions).
    public mutating func violations(after vm: TDXVM) -> [String] {
        var out = vm.checkInvariants()
        for g in watched where vm.lpageInfo.lpage2M.value(at: g).guestInhibit { inhibited.insert(g) }
        for g in inhibited.sorted() where !vm.lpageInfo.lpage2M.value(at: g).guestInhibit {
            out.append("GUEST_INHIBIT cleared at 2M region \(g.value)")
        }
        return out
    }

    /// The same findings as `violations(after:)`, each under the name
    /// `InvariantRegistry` gives it.
    /// - Complexity: as `violations(after:)`.
    public mutating func registered(after vm: TDXVM) -> [Violation] {
        violations(after: vm).map(InvariantRegistry.violation(host:))
    }
}
