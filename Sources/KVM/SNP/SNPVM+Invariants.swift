import MemoryModel
import SNP

extension SNPVM {
    /// The SNP host's invariants, from what the code relies on; returns the
    /// violations (never traps). `package`: for the checker and tests.
    /// - `snp.npt-level-equals-rmp-level`: a private NPT leaf is as large
    ///   as the RMP entry of its pages (`sev_gmem_max_mapping_level()` caps
    ///   it; a smaller leaf is an RMP #NPF that `sev_handle_rmp_fault()`
    ///   PSMASHes away), so no 2M RMP entry lies under a split NPT range.
    /// - `snp.npt-private-is-assigned`: a private leaf maps pages assigned
    ///   to this guest's ASID at that GPA, with private attributes.
    /// - `snp.npt-within-folio`: no 2M leaf over a folio smaller than 2M.
    /// - `snp.assigned-is-private-and-backed`: an assigned page is private
    ///   and allocated in guest_memfd (conversion to shared and punching
    ///   return entries through `sev_gmem_invalidate()`).
    /// - `snp.validated-is-assigned`: only assigned pages are validated.
    /// - `snp.shared-leaf-is-shared`: a leaf from the VMM's memory maps a
    ///   shared page (KVM_SET_MEMORY_ATTRIBUTES zaps it on conversion).
    /// - `snp.no-host-reference-on-private`: no private page keeps a host
    ///   reference (in place, a pinned page refuses conversion to private).
    /// - `snp.in-place-no-vmm-shared`: in place, the VMM has no shared memory
    ///   of its own (shared pages are guest_memfd's).
    /// - Complexity: O(runs of the maps).
    package func checkInvariants() -> [String] {
        var v: [String] = []
        for s in gmem.slots {
            let h0 = gmem.hfn(s.baseGFN)
            var g = s.baseGFN
            while g < s.frames.upperBound, v.count < 8 {
                let end = uniformEnd(g, limit: s.frames.upperBound)
                let st = frameState(g)
                let at = "\(g)+\(end - g)"
                if st.npt == .private4K || st.npt == .private2M {
                    let level: PageLevel = st.npt == .private2M ? .size2M : .size4K
                    if st.rmp.assigned, st.rmp.level != level {
                        v.append("snp.npt-level-equals-rmp-level: \(at) mapped \(level) over a \(st.rmp.level) RMP entry")
                    }
                    if !st.rmp.assigned || st.rmp.asid != asid || st.rmp.gfn(at: h0 + (g - s.baseGFN)) != g || !st.isPrivate {
                        v.append("snp.npt-private-is-assigned: \(at) mapped private but not assigned to the guest there")
                    }
                    if level == .size2M, st.folioOrder < UInt8(PageLevel.size2M.frameShift) {
                        v.append("snp.npt-within-folio: \(at) mapped 2M over 4K folios")
                    }
                }
                if st.rmp.assigned, !st.isPrivate || !st.allocated {
                    v.append("snp.assigned-is-private-and-backed: \(at) assigned but \(st.isPrivate ? "not allocated" : "shared")")
                }
                if st.rmp.validated, !st.rmp.assigned { v.append("snp.validated-is-assigned: \(at)") }
                if st.npt == .shared4K, st.isPrivate { v.append("snp.shared-leaf-is-shared: \(at) private but mapped from the VMM") }
                if st.hostRefs > 0, st.isPrivate { v.append("snp.no-host-reference-on-private: \(at) private with \(st.hostRefs) host references") }
                if inPlace, st.vmmShared { v.append("snp.in-place-no-vmm-shared: \(at) backed by the VMM's own memory under in-place conversion") }
                g = end
            }
        }
        return v
    }
}
