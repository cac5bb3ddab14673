/// The module version and the features the host reads from it, as options.
public struct TDXModuleFeatures: Sendable, Equatable {
    /// Reported version string (informational).
    public var version: String = "1.5.28.00.972"
    /// TDX_FEATURES0 bit 51, ENHANCED_DEMOTE_INTERRUPTIBILITY: DEMOTE does not
    /// check for pending interrupts, so it never returns
    /// TDX_INTERRUPTED_RESTARTABLE (modules from TDX_1.5.28.00.972).
    public var enhancedDemoteInterruptibility = true
    /// Dynamic PAMT: PAMT_4K is a bitmap and 4K entries for a 2M range are
    /// installed with TDH.PHYMEM.PAMT.ADD (DPAMT v4).
    public var dynamicPAMT = true
    /// Which TDG.MEM.PAGE.ACCEPT walk cases the module follows.
    public var acceptWalkCases: AcceptWalkCases = .moduleCode
    /// Forward-looking (issue 18 §3): a module that maps private memory at
    /// 1G. The public module source (TDX_1.5.01) already has the 1G level
    /// in TDH.MEM.PAGE.DEMOTE, PROMOTE and REMOVE
    /// (`verify_page_info_input(..., LVL_PD/LVL_PT, LVL_PDPT)`) and in
    /// RANGE.BLOCK (up to the EPT's page-walk level), but TDH.MEM.PAGE.AUG
    /// and TDG.MEM.PAGE.ACCEPT stop at `LVL_PD` (2M): a 1G ACCEPT is
    /// TDX_OPERAND_INVALID. With this option AUG accepts `LVL_PDPT`
    /// (`check_and_lock_free_range_hpa()` over a 1G-aligned host range, the
    /// PAMT_1G entry the static PAMT already has) and ACCEPT at 1G follows
    /// `check_tdaccept_failure()` with the 1G entry as the requested level,
    /// as it does at 2M. No public module has it: the name says what it is,
    /// not a version.
    public var privateMappings1G = false

    public init() {}

    /// Modules before TDX_1.5.28.00.972: no enhanced demote interruptibility.
    public static var legacy: TDXModuleFeatures {
        var f = TDXModuleFeatures(); f.version = "1.5.06.00.744"; f.enhancedDemoteInterruptibility = false; f.dynamicPAMT = false
        return f
    }
}

/// The spec and the open-source module disagree on one ACCEPT walk case: an
/// accepted (present) leaf above the requested level.
public enum AcceptWalkCases: String, Sendable, CaseIterable {
    /// `check_tdaccept_failure()` in `tdg_mem_page_accept.c`: TDX_PAGE_ALREADY_ACCEPTED.
    case moduleCode = "module"
    /// Spec Table 8.2 "TDG.MEM.PAGE.ACCEPT SEPT Walk Cases" as Sean
    /// Christopherson quotes it: "Leaf SEPT_PRESENT, Smaller →
    /// TDACCEPT_SIZE_MISMATCH".
    case specTable82 = "spec"
}

/// TD life cycle as far as memory SEAMCALLs care.
public enum TDLifecycle: String, Sendable {
    /// Before TDH.MR.FINALIZE: PAGE.ADD builds the initial image, no TLB
    /// tracking is required.
    case building
    /// Runnable: REMOVE/DEMOTE/PROMOTE/UNBLOCK need blocked and tracked entries.
    case runnable
    /// TDH.MNG.VPFLUSHDONE done: pages may be reclaimed.
    case teardown
}

/// Something a vCPU inside the TD holds that a host SEAMCALL can collide with.
public enum VCPUHold: Equatable, Sendable {
    /// Zero-step mitigation in TDH.VP.ENTER takes the S-EPT tree lock
    /// (`tdx_handle_ept_violation` comment), contending with every
    /// SEAMCALL that takes the tree lock.
    case treeLock
    /// The vCPU is inside TDG.MEM.PAGE.ACCEPT and holds the guest-side lock
    /// of the entry mapping `gfn` at `level`. [inferred] a host try-lock of
    /// the same entry fails while it is held.
    case guestEntry(gfn: GuestFrameNumber, level: PageLevel)
}

public import MemoryModel
