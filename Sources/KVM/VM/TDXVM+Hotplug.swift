import MemoryModel
import TDXModule

/// Memory devices plugged into a running TD (issue 16 §4): what QEMU does
/// on `device_add pc-dimm` or a virtio-mem plug, and on their removal.
extension TDXVM {
    /// KVM_SET_USER_MEMORY_REGION2 for a memory device's backend after the
    /// TD runs (QEMU's `kvm_set_phys_mem()` when the device's memory region
    /// is mapped): a new memslot bound to a new guest_memfd. Nothing is
    /// mapped in the S-EPT: the first access or ACCEPT faults it in (AUG),
    /// and the page is PENDING until the guest accepts it.
    /// - Complexity: O(slots + log runs).
    public func addMemslot(_ s: Memslot) throws {
        guard !isDead else { throw CocomemError(.invalidArgument, "the TD is no longer running") }
        try gmem.bindLate(s)
        lpageInfo.addSlot(s, misaligned: !s.userspaceAddrAligned && !options.gmemIgnoresUaddrAlignment)
        note("memslot \(s.id) added: \(s.baseGFN.address)+\(s.pages) pages")
    }

    /// Deleting a memory device's memslot (KVM_SET_USER_MEMORY_REGION2 with
    /// size 0) and closing its guest_memfd: `kvm_arch_flush_shadow_memslot()`
    /// zaps the range, TDH.MEM.RANGE.BLOCK, TRACK and TDH.MEM.PAGE.REMOVE
    /// for every private page still in the S-EPT, accepted or pending, and
    /// the file's folios go back to the host. `lpage_info` of the slot is
    /// left as it was (not modelled).
    ///
    /// `ejectingVCPU`: the vCPU whose write to QEMU's ACPI memory hotplug
    /// register (the `_EJ0` method's, port I/O at 0x0a00: TDVMCALL<IO>,
    /// `tdx_emulate_io()`, KVM_EXIT_IO) runs the removal in its own thread:
    /// `acpi_memory_hotplug_write()` → `hotplug_handler_unplug()` → the
    /// DIMM's region leaves the address space → this deletion. That vCPU is
    /// in QEMU, `vcpu->mode` OUTSIDE_GUEST_MODE, for the whole deletion, so
    /// `tdx_track()`'s `kvm_make_all_cpus_request()` sends it no IPI
    /// (`kvm_request_needs_ipi()`); it re-enters the TD (TDH.VP.ENTER) when
    /// the write returns. nil: the deletion comes from outside the guest
    /// (the monitor's `device_del` of a virtio-mem backend, a host script).
    /// - Complexity: O(log runs + leaves zapped).
    @discardableResult
    public func deleteMemslot(id: Int, ejectingVCPU: Int? = nil) -> HostOutcome {
        guard let s = slots.first(where: { $0.id == id }) else { return .ioctlError("EINVAL: no memslot \(id)") }
        let inIOExit = ejectingVCPU.flatMap { isInGuestMode(vcpu: $0) ? $0 : nil }
        if let v = inIOExit {
            module.exit(vcpu: v)
            note("vCPU \(v): TDVMCALL<IO> to the ACPI memory hotplug register, in QEMU (outside guest mode) while the DIMM is removed")
        }
        defer {
            if let v = inIOExit, !isDead {
                module.enter(vcpu: v)
                note("vCPU \(v): the eject write returns, TDH.VP.ENTER")
            }
        }
        let o = punchHole(s.frames)
        guard o == .ok else { return o }
        gmem.unbind(id: id)
        note("memslot \(id) deleted")
        return .ok
    }
}
