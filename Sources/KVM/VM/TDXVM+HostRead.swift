public import MemoryModel

/// What a host read of guest memory returns, page by page (`hostread
/// RANGE`, issue 18 §5): the read QEMU's `dump-guest-memory` and `gcore` of
/// the VMM make through the VMM's mapping of guest RAM, which is what
/// intel/lkvs's `tdx_memory_confident` test checks (a secret the guest
/// holds in a tmpfs file is found in a legacy VM's dump and must not be
/// found in a TD's).
public struct HostRead: Equatable, Sendable {
    /// Shared pages: the VMM's mapping reads the guest's own contents.
    public var guestData: UInt64 = 0
    /// Private pages read through the VMM's own shared memory (VM-wide
    /// attributes): the page there is not the guest's (the guest's
    /// contents are in guest_memfd, which the VMM does not map); it holds
    /// zeros, or what a host process wrote through the alias (`hostmap`).
    public var notGuestData: UInt64 = 0
    /// Of `notGuestData`, pages a host process had populated (the VMM's page exists).
    public var hostWritten: UInt64 = 0
    /// Private pages read through guest_memfd's mapping (in place): the
    /// fault handler refuses private pages and the VMM gets SIGBUS.
    public var sigbus: UInt64 = 0
    public init() {}
}

extension TDXVM {
    /// A host read of `frames` through the VMM's mapping. Only shared pages
    /// read the guest's contents: with VM-wide attributes a private GPA's
    /// alias is the VMM's own memory (QEMU's RAM block, freed by
    /// `ram_block_discard_range()` when the range converted to private), in
    /// place `kvm_gmem_fault_user_mapping()` returns VM_FAULT_SIGBUS for a
    /// private page. The model keeps no contents: what it tells is whose
    /// page a read reaches. The read does not change host memory here (a
    /// read fault on the VMM's memory maps the zero page for anonymous
    /// memory and allocates for shmem; `hostmap` is the touch that populates).
    /// The host kernel's own reads of private frames through its direct map
    /// are not modelled.
    /// - Complexity: O(log runs + runs in `frames`).
    public func hostRead(_ frames: Range<GuestFrameNumber>) -> HostRead {
        var r = HostRead()
        for (run, isPrivate) in attributes.privateAttr.runs(in: frames) {
            let n = UInt64(run.count)
            if !isPrivate { r.guestData += n; continue }
            if options.vmWideAttributes {
                r.notGuestData += n
                r.hostWritten += vmmShared.measure(in: run) { $0 }
            } else {
                r.sigbus += n
            }
        }
        note("host read \(frames.lowerBound.address)+\(frames.count): \(r.guestData) pages of the guest's data (shared), "
             + "\(r.notGuestData) private read as the VMM's own memory, \(r.sigbus) SIGBUS")
        return r
    }
}
