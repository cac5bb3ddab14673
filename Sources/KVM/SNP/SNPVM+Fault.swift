import CostModel
import MemoryModel
import SNP

extension SNPVM {
    /// True if the NPT maps `gfn` as private memory.
    func nptMapsPrivate(_ gfn: GuestFrameNumber) -> Bool {
        let l = npt.value(at: gfn)
        return l == .private4K || l == .private2M
    }

    /// `kvm_mmu_page_fault()` → `kvm_tdp_mmu_map()` for a guest access to
    /// `gfn` with the C-bit set (`isPrivate`) or clear. An access whose
    /// C-bit disagrees with the memory attributes exits to userspace
    /// (KVM_EXIT_MEMORY_FAULT), which converts the page (QEMU's
    /// `kvm_convert_memory()`) before the access retries. A private fault
    /// takes the page from guest_memfd (`kvm_gmem_get_pfn()`), which
    /// prepares it (`kvm_gmem_prepare_folio()` → `sev_gmem_prepare()`),
    /// and maps it at the largest level KVM allows. Returns false when the
    /// fault cannot be resolved (no memslot, an RMPUPDATE failure).
    /// `exit` false: KVM_PRE_FAULT_MEMORY's `kvm_tdp_map_page()`, the same
    /// mapping with no exit (nothing traced, no nested page fault charged).
    /// - Complexity: O(log runs).
    @discardableResult
    func fault(_ gfn: GuestFrameNumber, isPrivate: Bool, exit: Bool = true) -> Bool {
        guard let s = slot(gfn) else {
            warn("fault at \(gfn.address) outside every memslot")
            return false
        }
        // The host trace's record of the exit: at the fault's time, over what KVM mapped for it (the
        // page, or its 2M range when KVM mapped 2M); the exit itself carries the one GPA.
        let npfKind: HostTraceKind = isPrivate ? .npfPrivate : .npfShared
        var t0 = traceNow
        if isPrivate != attributes.isPrivate(gfn) {
            if exit { trace(npfKind, frames: gfn.only, at: t0) }
            stats.add(.memoryFaultExits)
            trace(.memoryFault, frames: gfn.only)
            guard mapGPARange(gfn.only, toPrivate: isPrivate) == .ok else { return false }
            // The vCPU re-enters and the access faults again.
            t0 = traceNow
        }
        guard isPrivate else {
            // The shared page: in place, guest_memfd's own page (the same file);
            // with VM-wide attributes, the VMM's memory for the GPA.
            if inPlace { gmem.allocate(gfn.only) } else { vmmShared.assign(gfn.only, true) }
            npt.assign(gfn.only, .shared4K)
            stats.add(.npfShared)
            if exit { trace(npfKind, frames: gfn.only, at: t0) }
            return true
        }
        gmem.allocate(gfn.only)
        guard gmemPrepare(gfn) else {
            if exit { trace(npfKind, frames: gfn.only, at: t0) }
            return false
        }
        if maxMappingLevel(gfn, slot: s) == .size2M {
            npt.assign(gfn.region2M.frames, .private2M)
            if exit { stats.add(.npfPrivate2M); ops.add(.snpNPF2M); trace(npfKind, frames: gfn.region2M.frames, at: t0) }
            else { stats.add(.prefaultPages2M) }
            return true
        }
        npt.assign(gfn.only, .private4K)
        if exit { stats.add(.npfPrivate4K); ops.add(.snpNPF4K); trace(npfKind, frames: gfn.only, at: t0) }
        else { stats.add(.prefaultPages4K) }
        // An NPT mapping smaller than the page's 2M RMP entry: the retried
        // access raises an RMP #NPF (`sev_handle_rmp_fault()` case 2), whose
        // PSMASH lets the next fault map the page at 4K.
        if rmpEntry(gfn).pageSize2M {
            handleRMPFault(gfn)
            guard !rmpEntry(gfn).pageSize2M else { return false }
            return fault(gfn, isPrivate: true)
        }
        return true
    }

    /// `sev_gmem_prepare()`: nothing when the page's RMP entry is already
    /// assigned; else one 2M RMPUPDATE when the folio is at least 2M and
    /// the whole 2M host range is still hypervisor-owned
    /// (`is_large_rmp_possible()`), otherwise a 4K RMPUPDATE of the page.
    /// The model prepares on each fault of an unassigned page rather than
    /// once per folio: guest_memfd prepares a folio once, and a page is
    /// prepared exactly when its RMP entry is assigned, so the two agree;
    /// a 1G folio is prepared 2M at a time (the RMP has no 1G entries).
    /// - Complexity: O(log runs).
    func gmemPrepare(_ gfn: GuestFrameNumber) -> Bool {
        let hfn = gmem.hfn(gfn)
        if rmp.lookup(hfn).assigned { return true }
        let base = hfn.alignedDown(to: .size2M)
        // A 2M entry only over a 2M range that is all private: with VM-wide attributes a range with a
        // shared page has no huge folio (split at conversion); in place the folio stays, and the
        // order guest_memfd reports is capped at the mixed range [inferred: an RMP entry assigning a
        // shared page to the guest would make the host's access to it fault].
        let large = gmem.hasHugeFolio(gfn) && attributes.allPrivate(gfn.region2M.frames) && rmp.allShared(base.region2M.frames)
        let r = large
            ? rmp.makePrivate(base, gfn: gfn.alignedDown(to: .size2M), level: .size2M, asid: asid)
            : rmp.makePrivate(hfn, gfn: gfn, level: .size4K, asid: asid)
        guard r == .success else {
            stats.add(.rmpupdateFailed)
            warn("SEV: Failed to update RMP entry: GFN \(gfn) PFN \(hfn.value) level \(large ? 2 : 1) error \(r.rawValue)")
            return false
        }
        stats.add(large ? .rmpupdatePrivate2M : .rmpupdatePrivate4K)
        ops.add(large ? .snpRMPUpdate2M : .snpRMPUpdate4K)
        note("sev_gmem_prepare \(gfn) \(large ? "2M" : "4K")")
        return true
    }

    /// The largest NPT level for a private fault at `gfn`: 2M only when
    /// guest_memfd's folio is at least 2M (`max_order`), the 2M range lies
    /// in the memslot (`lpage_info` disallows it at the slot's edges), the
    /// range's attributes are all private (KVM_LPAGE_MIXED_FLAG) and the
    /// RMP entry is 2M (`sev_gmem_max_mapping_level()`).
    /// - Complexity: O(log runs).
    func maxMappingLevel(_ gfn: GuestFrameNumber, slot s: Memslot) -> PageLevel {
        let region = gfn.region2M.frames
        guard gmem.hasHugeFolio(gfn), region.lowerBound >= s.baseGFN, region.upperBound <= s.frames.upperBound,
              attributes.allPrivate(region), rmpEntry(gfn).pageSize2M else { return .size4K }
        return .size2M
    }

    /// `sev_handle_rmp_fault()`: a nested page fault with
    /// PFERR_GUEST_RMP set at `gfn`. For a private page whose RMP entry is
    /// 2M (a 4K PVALIDATE or RMPADJUST, or an NPT mapping smaller than the
    /// entry), PSMASH it and zap the NPT from `gfn` for 512 frames
    /// (`kvm_zap_gfn_range(kvm, gfn, gfn + PTRS_PER_PMD)`: from the
    /// faulting frame, not the 2M boundary, so an unaligned fault also zaps
    /// a 2M leaf of the next range). A 4K entry is a spurious fault,
    /// ignored; a shared or unassigned page is only warned about.
    /// `sizeMismatch`: the fault has PFERR_GUEST_SIZEM (a 4K PVALIDATE or
    /// RMPADJUST), which changes only what the host trace records.
    /// - Complexity: O(log runs).
    func handleRMPFault(_ gfn: GuestFrameNumber, sizeMismatch: Bool = false) {
        stats.add(.npfRMP)
        trace(sizeMismatch ? .npfRMPSizeMismatch : .npfRMP, frames: gfn.only)
        guard attributes.isPrivate(gfn) else {
            warn("SEV: Unexpected RMP fault for non-private GPA \(gfn.address)")
            return
        }
        guard slot(gfn) != nil else { return }
        let hfn = gmem.hfn(gfn)
        let e = rmp.lookup(hfn)
        guard e.assigned else {
            warn("SEV: Unexpected RMP fault, no assigned RMP entry found for GPA \(gfn.address)")
            return
        }
        guard e.pageSize2M else {
            stats.add(.npfRMPSpurious)
            return
        }
        if rmp.psmash(hfn) == .success {
            stats.add(.psmashRMPFault)
            note("psmash (rmp fault) \(gfn)")
        } else {
            stats.add(.psmashFailed)
            warn("SEV: Unable to split RMP entry for GPA \(gfn.address)")
        }
        zap(Range(start: gfn, count: PageLevel.size2M.pages))
    }

    /// `kvm_zap_gfn_range()`: every NPT leaf overlapping `frames` is
    /// removed (a 2M leaf as a whole).
    /// - Complexity: O(log runs + k).
    func zap(_ frames: Range<GuestFrameNumber>) {
        guard !frames.isEmpty else { return }
        stats.add(.zaps)
        var lo = frames.lowerBound, hi = frames.upperBound
        if npt.value(at: lo) == .private2M { lo = lo.alignedDown(to: .size2M) }
        if npt.value(at: hi - 1) == .private2M { hi = (hi - 1).alignedDown(to: .size2M) + PageLevel.size2M.pages }
        npt.assign(lo..<hi, .none)
    }
}
