public import CostModel
public import MemoryModel
public import SNP

/// An SNP guest validating memory against the KVM SEV-SNP host model
/// (`SNPGuestDoorReplay`, conformed to by `KVM.SNPVM`): the same drivers as
/// `SNPAcceptor`, whose requests here meet the host's code paths, so each
/// PVALIDATE finds the RMP entry `sev_gmem_prepare()` made at the nested
/// page fault, and each page-state change goes through `snp_begin_psc()`
/// (or `snp_begin_psc_msr()`) and the VMM's `kvm_convert_memory()`.
///
/// The operations charged to the clock are the host's (`operations`
/// before and after each call), plus Linux's `sev_evict_cache()` of every
/// page validated when `evictsCache` is set. The SVSM path (VMPL above 0)
/// is not modelled on the host (`Scenario.validate()` refuses it).
public final class SNPHostAcceptor: ArchAcceptor {
    public let guest: SNPHostGuest
    public let driver: SNPAcceptDriver
    public let costs: CostTable
    /// Stepping: the guest offers the host no replay windows (every PSC
    /// descriptor is issued); the host's own 4K runs are replayed either way
    /// (tested equal in the SNP host tests).
    public var stepByStep = false { didSet { guest.replayWindows = !stepByStep } }
    /// Linux's `sev_evict_cache()` after validating (7b306dfa326f, when the
    /// CPU lacks COHERENCY_SFW_NO): once per 4K page validated to private.
    public var evictsCache = false

    public init(guest: SNPHostGuest, driver: SNPAcceptDriver, costs: CostTable) {
        self.guest = guest
        self.driver = driver
        self.costs = costs
    }

    /// `snp_accept_memory()` (GHCB or MSR protocol) or edk2's pre-validation
    /// of `[r.start, r.end)`'s whole frames.
    /// - Complexity: the host's work: O(descriptors × log runs) for ranges
    ///   of uniform state, whose whole descriptors are replayed.
    public func accept(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        let frames = r.framesTruncated
        guard !frames.isEmpty else { return .ok }
        let before = guest.host.operations
        var why: String?
        var validated = frames.length
        switch driver {
        case .linuxGHCB: why = guest.accept(frames, driver: .linux)
        case .edk2: why = guest.acceptEDK2(frames)
        case .linuxMSR: (why, validated) = guest.acceptMSR(frames)
        }
        var c = guest.host.operations - before
        // A failing GHCB descriptor's pages are not counted: the guest is dead and its time no longer matters.
        if driver != .edk2, evictsCache { c.add(.snpEvictCache4K, why == nil || driver == .linuxMSR ? validated : 0) }
        clock.charge(c, vcpu: vcpu, costs: costs)
        return why.map { .terminated($0) } ?? .ok
    }
}
