public import MemoryModel

/// One 4K entry of the Reverse Map Table as the host reads it through
/// `snp_lookup_rmpentry()` (arch/x86/virt/svm/sev.c; the Milan-format
/// `struct rmpentry`: assigned, pagesize, immutable, gpa, asid, vmsa,
/// validated, with the VMPL permission masks RMPADJUST sets). A page of a
/// 2M entry reports the 2M-aligned entry's page size, as
/// `__snp_lookup_rmpentry()` does, so every 4K entry of a 2M page carries
/// `pageSize2M`.
///
/// The guest frame is kept as an offset from the host frame, so a
/// contiguous mapping of host to guest frames is one run of equal entries.
public struct RMPEntry: Sendable, Equatable {
    /// Hypervisor-owned, not assigned to any guest (after `rmp_make_shared()`).
    public static let shared = RMPEntry(assigned: false, pageSize2M: false, validated: false, asid: 0, gfnOffset: 0, vmplPerms: 0)

    public var assigned: Bool
    /// Part of a 2M RMP entry (the 2M-aligned entry's `pagesize` bit).
    public var pageSize2M: Bool
    public var validated: Bool
    public var asid: UInt32
    /// Guest frame minus host frame (the entry's GPA field, as an offset).
    public var gfnOffset: Int64
    /// RMPADJUST permissions of VMPL1–3, four bits each (read, write,
    /// execute-user, execute-supervisor), VMPL1 in the low nibble. VMPL0
    /// always has every permission; RMPUPDATE clears the others.
    public var vmplPerms: UInt16
    /// The page is a vCPU's VMSA (the entry's `vmsa` bit, set by the
    /// firmware's SNP_LAUNCH_UPDATE with page type SNP_PAGE_TYPE_VMSA);
    /// such pages are also immutable (`rmp_make_private(..., true)`).
    public var vmsa: Bool

    public init(assigned: Bool, pageSize2M: Bool, validated: Bool, asid: UInt32, gfnOffset: Int64, vmplPerms: UInt16, vmsa: Bool = false) {
        self.assigned = assigned; self.pageSize2M = pageSize2M; self.validated = validated
        self.asid = asid; self.gfnOffset = gfnOffset; self.vmplPerms = vmplPerms; self.vmsa = vmsa
    }

    /// The entry's page level (4K or 2M).
    public var level: PageLevel { pageSize2M ? .size2M : .size4K }

    /// The guest frame the entry is assigned to, for the host frame `hfn`.
    public func gfn(at hfn: HostFrameNumber) -> GuestFrameNumber {
        GuestFrameNumber(UInt64(Int64(hfn.value) + gfnOffset))
    }

    /// The permissions RMPADJUST gave `vmpl` (1...3); 0 for others.
    public func perms(vmpl: Int) -> UInt8 {
        guard (1...3).contains(vmpl) else { return 0 }
        return UInt8((vmplPerms >> UInt16(4 * (vmpl - 1))) & 0xf)
    }
}

/// RMPUPDATE's and PSMASH's return codes (AMD APM vol. 3; Linux's
/// `RMPUPDATE_FAIL_OVERLAP` is 7, arch/x86/include/asm/sev-host.h).
public enum RMPInstructionResult: UInt32, Sendable, Equatable {
    case success = 0
    case failInput = 1
    case failPermission = 2
    case failInUse = 3
    case failOverlap = 7
}

/// What the CPU does with a guest's PVALIDATE or RMPADJUST: a result in
/// EAX (with CF=1 reported as `PVALIDATE_FAIL_NOUPDATE`), or a nested page
/// fault with PFERR_GUEST_RMP set, which KVM handles in
/// `sev_handle_rmp_fault()` before the guest retries.
public enum RMPGuestOutcome: Sendable, Equatable {
    case result(PvalidateResult)
    /// #NPF with PFERR_GUEST_RMP and PFERR_GUEST_SIZEM: the instruction's
    /// size is smaller than the 2M RMP entry's.
    case npfSizeMismatch
    /// #NPF with PFERR_GUEST_RMP: the page is not assigned to this guest
    /// (or to another GPA).
    case npfRMPViolation
}
