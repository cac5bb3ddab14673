/// TDX module completion status codes (RAX, upper 32 bits; the operand id
/// in the low 32 bits is left out), values as in the module's
/// `include/auto_gen/tdx_error_codes_defs.h` and Linux
/// `arch/x86/kvm/vmx/tdx_errno.h`. Bit 63 marks an error; codes with bit 63
/// clear are success with a warning.
public enum TDXStatus: UInt64, Sendable, CaseIterable, CustomStringConvertible {
    case success = 0
    case interruptedResumable = 0x8000_0003_0000_0000
    case interruptedRestartable = 0x8000_0004_0000_0000
    case operandInvalid = 0xC000_0100_0000_0000
    case operandAddrRangeError = 0xC000_0101_0000_0000
    case operandBusy = 0x8000_0200_0000_0000
    case previousTLBEpochBusy = 0x8000_0201_0000_0000
    /// `sept_lock_acquire_guest()` found the entry's host-priority bit set.
    /// The TD dispatcher converts it to TDX_OPERAND_BUSY before the guest
    /// sees it (`tdx_td_dispatcher.c`), so it never reaches RAX in TDX_1.5.01.
    case operandBusyHostPriority = 0x8000_0204_0000_0000
    case pageMetadataIncorrect = 0xC000_0300_0000_0000
    case hpaRangeNotFree = 0xC000_0304_0000_0000
    case lifecycleStateIncorrect = 0xC000_0607_0000_0000
    case eptWalkFailed = 0xC000_0B00_0000_0000
    case gpaRangeNotBlocked = 0xC000_0B06_0000_0000
    case gpaRangeAlreadyBlocked = 0x0000_0B07_0000_0000
    case tlbTrackingNotDone = 0xC000_0B08_0000_0000
    case eptInvalidPromoteConditions = 0xC000_0B09_0000_0000
    case pageAlreadyAccepted = 0x0000_0B0A_0000_0000
    case pageSizeMismatch = 0xC000_0B0B_0000_0000
    case eptEntryStateIncorrect = 0xC000_0B0D_0000_0000
    /// Linux's own code (`TDX_ERROR | GENMASK_ULL(47, 40)`, class 0xFF,
    /// never used by the module): the host kernel's SEAMCALL wrapper failed
    /// before calling the module, e.g. `tdh_mem_page_demote()` finding no
    /// PAMT pages in its cache.
    case swError = 0x8000_FF00_0000_0000

    /// Bit 63 clear: success, possibly with a warning.
    public var isSuccessOrWarning: Bool { rawValue >> 63 == 0 }

    public var description: String {
        switch self {
        case .success: "TDX_SUCCESS"
        case .interruptedResumable: "TDX_INTERRUPTED_RESUMABLE"
        case .interruptedRestartable: "TDX_INTERRUPTED_RESTARTABLE"
        case .operandInvalid: "TDX_OPERAND_INVALID"
        case .operandAddrRangeError: "TDX_OPERAND_ADDR_RANGE_ERROR"
        case .operandBusy: "TDX_OPERAND_BUSY"
        case .previousTLBEpochBusy: "TDX_PREVIOUS_TLB_EPOCH_BUSY"
        case .operandBusyHostPriority: "TDX_OPERAND_BUSY_HOST_PRIORITY"
        case .pageMetadataIncorrect: "TDX_PAGE_METADATA_INCORRECT"
        case .hpaRangeNotFree: "TDX_HPA_RANGE_NOT_FREE"
        case .lifecycleStateIncorrect: "TDX_LIFECYCLE_STATE_INCORRECT"
        case .eptWalkFailed: "TDX_EPT_WALK_FAILED"
        case .gpaRangeNotBlocked: "TDX_GPA_RANGE_NOT_BLOCKED"
        case .gpaRangeAlreadyBlocked: "TDX_GPA_RANGE_ALREADY_BLOCKED"
        case .tlbTrackingNotDone: "TDX_TLB_TRACKING_NOT_DONE"
        case .eptInvalidPromoteConditions: "TDX_EPT_INVALID_PROMOTE_CONDITIONS"
        case .pageAlreadyAccepted: "TDX_PAGE_ALREADY_ACCEPTED"
        case .pageSizeMismatch: "TDX_PAGE_SIZE_MISMATCH"
        case .eptEntryStateIncorrect: "TDX_EPT_ENTRY_STATE_INCORRECT"
        case .swError: "TDX_SW_ERROR"
        }
    }
}

/// What one TDG.MEM.PAGE.ACCEPT TDCALL does from the guest's point of view:
/// it returns a status, or the TD exits to the host with an EPT violation
/// whose extended exit qualification carries the accept level, and the
/// TDCALL re-executes once the host has acted.
public enum AcceptCallResult: Equatable, Sendable {
    case status(TDXStatus)
    case eptViolation(acceptLevel: MemoryModelPageLevel)
    /// A 2M ACCEPT stopped between 4K chunks on a pending interrupt
    /// (`interrupt_occurred` in `tdg_mem_page_accept()`): the page is still
    /// PENDING with its ACCEPT_COUNTER at `chunksDone`, RIP is not advanced
    /// and RAX not written; the interrupt is delivered (an external
    /// interrupt: a TD exit to the host and TDH.VP.ENTER again) and the
    /// same TDCALL re-executes, resuming at the counter.
    case interrupted(chunksDone: Int)
}

public import MemoryModel
public typealias MemoryModelPageLevel = PageLevel
