public import MemoryModel
import TDXModule

/// A host that attacks its guest (issue 18 §5), built only from what a real
/// host kernel can do to a TD's private memory: the SEAMCALLs KVM already
/// issues, in an order the guest did not ask for. The TDX module still
/// enforces its rules, so each attack is a sequence the module accepts.
extension TDXVM {
    /// `remove`: the host takes private pages away from a running TD, as
    /// KVM's own zap does (`kvm_zap_gfn_range()` →
    /// `tdx_sept_remove_private_spte()`: TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK
    /// with the vCPUs kicked, TDH.MEM.PAGE.REMOVE, TDH.PHYMEM.PAGE.WBINVD).
    /// A 2M leaf crossing the range is split first
    /// (`kvm_split_cross_boundary_leafs()`). The pages' contents are gone
    /// for good: the host frame is written back and reset.
    /// - Complexity: O(log runs) per 2M chunk, plus the zaps.
    @discardableResult
    public func hostRemove(_ frames: Range<GuestFrameNumber>) -> HostOutcome {
        guard !isDead else { return outcome }
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound, !frames.isEmpty else {
            return .ioctlError("EINVAL: remove range \(frames.lowerBound.address) not inside one memslot")
        }
        if let e = splitForConversion(frames, cause: .punchHole) { return .ioctlError(e) }
        zapPrivate(frames)
        note("adversary: removed \(frames.lowerBound.address)+\(frames.count) private pages")
        check()
        return isDead ? outcome : .ok
    }

    /// `readd`: the host maps private pages again without the guest asking,
    /// as `KVM_PRE_FAULT_MEMORY` (`kvm_arch_vcpu_pre_fault_memory()` →
    /// `kvm_tdp_map_page()`) does for a runnable TD: TDH.MEM.PAGE.AUG, so
    /// each page is PENDING until the guest accepts it again (and ACCEPT
    /// zeroes it).
    /// - Complexity: O(log runs) per frame.
    @discardableResult
    public func hostReadd(_ frames: Range<GuestFrameNumber>) -> HostOutcome {
        guard !isDead else { return outcome }
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound, !frames.isEmpty else {
            return .ioctlError("EINVAL: readd range \(frames.lowerBound.address) not inside one memslot")
        }
        for g in frames where !isDead && !isMapped(g) {
            switch privateFault(gfn: g, acceptLevel: nil) {
            case .mapped, .retry, .refused, .userspaceExit: continue
            case .failed(let e):
                if !isDead { outcome = .ioctlError("KVM_PRE_FAULT_MEMORY: \(e)") }
                return outcome
            }
        }
        note("adversary: re-added \(frames.lowerBound.address)+\(frames.count) pages (PENDING)")
        check()
        return isDead ? outcome : .ok
    }

    /// `remap`: the host moves private pages to other host frames. The
    /// module allows a GPA to change frames only through REMOVE and a new
    /// AUG, so this is `remove` then `readd`, with the old folio released
    /// in between as a host reusing the memory would. The model's
    /// guest_memfd lays host frames out by offset, so the new frame has the
    /// same number: what shows is what the guest sees, a PENDING page whose
    /// contents are gone.
    /// - Complexity: as `hostRemove` plus `hostReadd`.
    @discardableResult
    public func hostRemap(_ frames: Range<GuestFrameNumber>) -> HostOutcome {
        let r = hostRemove(frames)
        guard r == .ok else { return r }
        return hostReadd(frames)
    }

    /// `refuse-aug`: from now on the host never AUGs `frames`; the guest's
    /// ACCEPT (or access) faults again for ever. The TDX module cannot
    /// force the host to back memory: this is a denial of service the
    /// guest sees only as a vCPU that makes no progress.
    /// - Complexity: O(log runs).
    public func hostRefuseAUG(_ frames: Range<GuestFrameNumber>) {
        faults.refuseAUG(frames)
        note("adversary: refuses to AUG \(frames.lowerBound.address)+\(frames.count)")
    }
}
