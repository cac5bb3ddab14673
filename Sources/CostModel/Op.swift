public import MemoryModel

/// Every operation the model counts and charges time for. `name` is its
/// stable name in the calibration file and in JSON output.
public enum Op: Int, CaseIterable, Sendable {
    // TDX: the guest's TDG.MEM.PAGE.ACCEPT (TDCALL leaf 6) by level and result.
    case tdxAccept4KSuccess
    case tdxAccept4KSizeMismatch
    case tdxAccept4KAlreadyAccepted
    case tdxAccept4KEPTViolation
    case tdxAccept4KOperandInvalid
    case tdxAccept2MSuccess
    case tdxAccept2MSizeMismatch
    case tdxAccept2MAlreadyAccepted
    case tdxAccept2MEPTViolation
    case tdxAccept2MOperandInvalid
    case tdxAccept1GSuccess
    case tdxAccept1GSizeMismatch
    case tdxAccept1GAlreadyAccepted
    case tdxAccept1GEPTViolation
    case tdxAccept1GOperandInvalid
    /// TD exit for an EPT violation, KVM's fault handling and TDH.VP.ENTER.
    case tdxEPTViolationExit
    /// TDH.MEM.PAGE.AUG plus the host allocating and clearing the backing.
    case tdxAug4K
    case tdxAug2M
    /// TDH.MEM.SEPT.ADD for a new S-EPT page.
    case tdxSeptAdd
    /// TDH.MEM.PAGE.ADD at build time (not part of boot time).
    case tdxPageAdd
    /// TDH.MEM.PAGE.DEMOTE of a 2M leaf.
    case tdxDemote2M
    /// TDH.MEM.RANGE.BLOCK.
    case tdxBlock
    /// TDH.MEM.TRACK.
    case tdxTrack
    /// TDH.MEM.PAGE.REMOVE.
    case tdxRemove
    /// TDH.PHYMEM.PAGE.WBINVD of one 4K page.
    case tdxWbinvd4K
    /// TDH.PHYMEM.PAMT.ADD / PAMT.REMOVE (Dynamic PAMT).
    case tdxPamtAdd
    case tdxPamtRemove
    /// One vCPU kicked out of the guest (KVM_REQ_OUTSIDE_GUEST_MODE IPI and re-entry).
    case kvmVCPUKick

    // SNP.
    /// One Page State Change VMGEXIT through the GHCB (up to 64 entries from Linux).
    case snpPSCExit
    case snpPSCEntry4K
    case snpPSCEntry2M
    /// One GHCB MSR-protocol page state change (4K, before the GHCB exists).
    case snpMSRPSCExit
    case snpRMPUpdate4K
    case snpRMPUpdate2M
    case snpPvalidate4KSuccess
    case snpPvalidate4KSizeMismatch
    case snpPvalidate4KNoUpdate
    case snpPvalidate4KFail
    case snpPvalidate2MSuccess
    case snpPvalidate2MSizeMismatch
    case snpPvalidate2MNoUpdate
    case snpPvalidate2MFail
    /// Nested page fault exit when a validated page is first touched and the
    /// host has not mapped it yet (no KVM_PRE_FAULT_MEMORY), by backing size.
    case snpNPF4K
    case snpNPF2M

    // Guest kernel and firmware CPU work.
    /// Initialising one struct page (memmap_init_range / deferred init) and
    /// handing it to the allocator (__free_pages_core's per-page loop).
    case kernelStructPageInit
    /// One 4K page faulted in and cleared by a workload (anonymous fault + clear_page).
    case kernelTouchPage
    /// Fixed firmware work from reset to the OS loader (SEC, PEI, DXE, BDS).
    case firmwareFixed
    /// Fixed kernel work from the EFI stub to init, not counting memory-sized work.
    case kernelFixed
    /// Fixed user-space work from init to a shell.
    case userspaceFixed
    /// One `zone->lock` critical section around a 4 MiB unaccepted block:
    /// `__accept_page()`'s `list_del()` and counters, then
    /// `__free_pages_ok()` putting the accepted block into the buddy lists
    /// (mm/page_alloc.c). Serialised per zone (`QueuedSpinLock`).
    case kernelZoneLockSection
    /// One timer tick taken by an idle vCPU of a TD: the host's hrtimer
    /// for the guest's LAPIC timer kicks the halted vCPU, TDH.VP.ENTER, the
    /// guest's tick handler re-arms its TSC deadline, and TDVMCALL HLT exits
    /// again (one HLT exit per tick, as Dstack PR 1220 counted them).
    case kernelIdleTickExit

    // Forward-looking: a TDX module with 1G private mappings (issue 18 §3).
    /// TDH.MEM.PAGE.AUG at 1G plus guest_memfd clearing a 1G hugetlb folio.
    case tdxAug1G
    /// TDH.MEM.PAGE.DEMOTE of a 1G leaf into 512 2M leaves.
    case tdxDemote1G
    /// One clean, unmapped page-cache folio reclaimed (kswapd's
    /// `balance_pgdat()` or direct reclaim): isolated from the node's file
    /// LRU, `shrink_folio_list()` finding it unreferenced and clean,
    /// `__remove_mapping()` taking it out of the page cache, freed.
    case kernelReclaimPage

    // SNP guest work added with issue 16.
    /// `sev_evict_cache()` of one 4K page after validation (7b306dfa326f).
    case snpEvictCache4K
    /// One SVSM core-protocol call (SVSM_CORE_PVALIDATE) from a guest at VMPL>0.
    case snpSVSMCall

    /// A TDG.MEM.PAGE.ACCEPT at 2M interrupted between 4K chunks: the
    /// pending interrupt's TD exit, the host handling it, TDH.VP.ENTER, and
    /// the TDCALL re-executed (its zeroing is in the final success's bytes).
    case tdxAcceptInterruptExit

    /// One `unaccepted_memory_lock` critical section of `accept_memory()`
    /// (drivers/firmware/efi/unaccepted_memory.c): at `retry:` the walk of
    /// `accepting_list` and `list_add()`, or after `arch_accept_memory()`
    /// the `bitmap_clear()`, the next-run search and `list_del()`.
    /// Serialised over the guest (`QueuedSpinLock`); charged only where
    /// accepts run as actors (`ConcurrentAcceptance`).
    case kernelUnacceptedLockSection

    /// One KVM_HC_MAP_GPA_RANGE exit of a TDG.VP.VMCALL<MapGPA> (KVM hands
    /// the VMM at most 2 MiB at a time): the TD exit or the re-entry around
    /// it, KVM_EXIT_HYPERCALL to the VMM and back. The ioctls the VMM makes
    /// are charged as the host operations they are (BLOCK, TRACK, REMOVE).
    case tdxMapGPAExit

    /// A TDG.VP.VMCALL<MapGPA> KVM ended with TDVMCALL_STATUS_RETRY
    /// (`tdx_complete_vmcall_map_gpa()` found `kvm_vcpu_has_events()`
    /// between 2 MiB pieces): TDH.VP.ENTER with the status, the pending
    /// interrupt taken by the guest (the tick's handler), and the TDVMCALL
    /// issued again from R11 (`tdx_map_gpa()`'s loop): one TD exit and entry
    /// more than the uncut call.
    case tdxMapGPARetry

    /// Operations of a forward-looking feature or an option, reported only
    /// when counted, so that reports of runs without them are unchanged.
    public var isReportedOnlyWhenCounted: Bool {
        self == .tdxAug1G || self == .tdxDemote1G || self == .snpEvictCache4K || self == .snpSVSMCall
            || self == .tdxAcceptInterruptExit || self == .kernelReclaimPage || self == .kernelUnacceptedLockSection
            || self == .tdxMapGPAExit || self == .tdxMapGPARetry
    }
}

/// Counts of operations, indexed by `Op`. Cheap to add and to scale, which
/// is what bulk range operations need.
public struct OpCounts: Equatable, Sendable {
    public var vector = CountVector(width: Op.allCases.count)

    public init() {}

    /// The counts, indexed by `Op.index`.
    @inlinable public var counts: [UInt64] { vector.values }

    @inlinable public subscript(_ op: Op) -> UInt64 {
        get { vector[op.index] }
        set { vector[op.index] = newValue }
    }

    @inlinable public mutating func add(_ op: Op, _ n: UInt64 = 1) { vector.bump(op.index, n) }

    public mutating func add(_ other: OpCounts, times k: UInt64 = 1) { vector.add(other.vector, times: k) }

    public static func - (a: OpCounts, b: OpCounts) -> OpCounts {
        var r = OpCounts(); r.vector = a.vector - b.vector
        return r
    }

    public var isZero: Bool { vector.isZero }

    /// Non-zero counts in declaration order.
    public var nonZero: [(Op, UInt64)] { Op.allCases.compactMap { self[$0] == 0 ? nil : ($0, self[$0]) } }
}

extension Op {
    /// Stable names, in declaration order.
    static let names: [String] = [
        "tdx.accept.4k.success",
        "tdx.accept.4k.size_mismatch",
        "tdx.accept.4k.already_accepted",
        "tdx.accept.4k.ept_violation",
        "tdx.accept.4k.operand_invalid",
        "tdx.accept.2m.success",
        "tdx.accept.2m.size_mismatch",
        "tdx.accept.2m.already_accepted",
        "tdx.accept.2m.ept_violation",
        "tdx.accept.2m.operand_invalid",
        "tdx.accept.1g.success",
        "tdx.accept.1g.size_mismatch",
        "tdx.accept.1g.already_accepted",
        "tdx.accept.1g.ept_violation",
        "tdx.accept.1g.operand_invalid",
        "tdx.ept_violation_exit",
        "tdx.aug.4k",
        "tdx.aug.2m",
        "tdx.sept_add",
        "tdx.page_add",
        "tdx.demote.2m",
        "tdx.block",
        "tdx.track",
        "tdx.remove",
        "tdx.wbinvd.4k",
        "tdx.pamt_add",
        "tdx.pamt_remove",
        "kvm.vcpu_kick",
        "snp.psc.vmgexit",
        "snp.psc.entry.4k",
        "snp.psc.entry.2m",
        "snp.psc.msr_vmgexit",
        "snp.rmpupdate.4k",
        "snp.rmpupdate.2m",
        "snp.pvalidate.4k.success",
        "snp.pvalidate.4k.size_mismatch",
        "snp.pvalidate.4k.noupdate",
        "snp.pvalidate.4k.fail",
        "snp.pvalidate.2m.success",
        "snp.pvalidate.2m.size_mismatch",
        "snp.pvalidate.2m.noupdate",
        "snp.pvalidate.2m.fail",
        "snp.npf.4k",
        "snp.npf.2m",
        "kernel.struct_page_init",
        "kernel.touch_page",
        "firmware.fixed",
        "kernel.fixed",
        "userspace.fixed",
        "kernel.zone_lock_section",
        "kernel.idle_tick_exit",
        "tdx.aug.1g",
        "tdx.demote.1g",
        "kernel.reclaim_page",
        "snp.evict_cache.4k",
        "snp.svsm.call",
        "tdx.accept.interrupt_exit",
        "kernel.unaccepted_lock_section",
        "tdx.map_gpa_exit",
        "tdx.map_gpa_retry",
    ]
    /// Operations a calibration file may leave out (they take the built-in cost): added after
    /// files were written against the rest.
    static let addedWithDefaults: [Op] = [.kernelZoneLockSection, .kernelIdleTickExit, .tdxAug1G, .tdxDemote1G, .kernelReclaimPage, .snpEvictCache4K,
                                          .snpSVSMCall, .tdxAcceptInterruptExit, .kernelUnacceptedLockSection, .tdxMapGPAExit,
                                          .tdxMapGPARetry]
    /// The stable name used in the calibration file and JSON output.
    public var name: String { Op.names[rawValue] }
    /// Position in `allCases`.
    @inlinable public var index: Int { rawValue }
    public init?(name: String) {
        guard let i = Op.names.firstIndex(of: name) else { return nil }
        self.init(rawValue: i)
    }
}
