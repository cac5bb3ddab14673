/// TDX module completion status codes (RAX), values as in the module's
/// `include/auto_gen/tdx_error_codes_defs.h` and Linux `tdx_errno.h`.
public enum TDXStatus: UInt64, Sendable, CustomStringConvertible {
    case success = 0
    case operandInvalid = 0xC000_0100_0000_0000
    case operandBusy = 0x8000_0200_0000_0000
    case pageAlreadyAccepted = 0x0000_0B0A_0000_0000
    case pageSizeMismatch = 0xC000_0B0B_0000_0000

    public var description: String {
        switch self {
        case .success: "TDX_SUCCESS"
        case .operandInvalid: "TDX_OPERAND_INVALID"
        case .operandBusy: "TDX_OPERAND_BUSY"
        case .pageAlreadyAccepted: "TDX_PAGE_ALREADY_ACCEPTED"
        case .pageSizeMismatch: "TDX_PAGE_SIZE_MISMATCH"
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
}

import MemoryModel
public typealias MemoryModelPageLevel = PageLevel
