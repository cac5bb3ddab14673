import CostModel
public import MemoryModel
import SNP

/// The result of a VMM operation on the SNP host.
public enum SNPHostOutcome: Sendable, Equatable {
    case ok
    /// The range is not inside guest_memfd memslots (-EINVAL).
    case invalid(String)
}

extension SNPVM {
    /// True if every frame of `frames` lies in one memslot.
    func inOneSlot(_ frames: Range<GuestFrameNumber>) -> Bool {
        guard let s = slot(frames.lowerBound) else { return false }
        return frames.upperBound <= s.frames.upperBound
    }

    /// The VMM's answer to a KVM_HC_MAP_GPA_RANGE exit (one per run of
    /// adjacent PSC entries, `snp_begin_psc()`) or a KVM_EXIT_MEMORY_FAULT:
    /// QEMU's `kvm_convert_memory()` with VM-wide attributes. It sets the
    /// attributes (KVM_SET_MEMORY_ATTRIBUTES, which zaps the NPT over the
    /// range) and discards the side the pages leave: converting to shared
    /// punches them out of guest_memfd (`ram_block_discard_guest_memfd_range()`),
    /// which returns their RMP entries to the hypervisor
    /// (`sev_gmem_invalidate()`); converting to private drops the VMM's
    /// shared copies, and guest_memfd allocates and prepares the private
    /// pages when the guest next faults them.
    ///
    /// Huge folios follow the hugetlb guest_memfd series (Ackerley Tng's
    /// 1G page support for guest_memfd, with Michael Roth's SNP testing):
    /// a huge folio any of whose pages becomes shared is split to 4K
    /// folios (its mappings zapped first), and a split range that is all
    /// private again is merged back to one folio ([inferred] from the
    /// series' description; the stored references do not quote its code).
    /// - Complexity: O(log runs + k) plus O(huge folios in the range).
    public func mapGPARange(_ frames: Range<GuestFrameNumber>, toPrivate: Bool) -> SNPHostOutcome {
        guard !frames.isEmpty, inOneSlot(frames) else {
            return .invalid("frames \(frames.lowerBound.address)+\(frames.length) are not inside one guest_memfd memslot")
        }
        note("map_gpa_range \(frames.lowerBound)+\(frames.length) \(toPrivate ? "private" : "shared")")
        if inPlace { return convertInPlace(frames, toPrivate: toPrivate) }
        // kvm_vm_set_mem_attributes() returns early when the range already
        // has the attributes: nothing is zapped.
        let unchanged = attributes.privateAttr.allSatisfy(in: frames) { $0 == toPrivate }
        if unchanged { if !toPrivate { discard(frames) }; return .ok }
        attributes.set(frames, private: toPrivate)
        zap(frames)
        if toPrivate {
            for (r, l) in npt.runs(in: frames) where l == .shared4K { npt.assign(r, .none) }
            // QEMU's kvm_convert_memory() to private: ram_block_discard_range() of the shared side.
            vmmShared.assign(frames, false)
            mergeFolios(frames)
        } else {
            splitFolios(frames)
            discard(frames)
        }
        return .ok
    }

    /// The huge-folio units (the slot's backing order) overlapping `frames`.
    func folioUnits(_ frames: Range<GuestFrameNumber>) -> [Range<GuestFrameNumber>] {
        guard let s = slot(frames.lowerBound), s.folioPages > 1 else { return [] }
        var out: [Range<GuestFrameNumber>] = []
        var u = frames.lowerBound.alignedDown(toMultipleOf: s.folioPages)
        while u < frames.upperBound {
            let r = Range(start: u, count: s.folioPages)
            if r.lowerBound >= s.baseGFN, r.upperBound <= s.frames.upperBound { out.append(r) }
            u = u + s.folioPages
        }
        return out
    }

    /// Splits each whole huge folio overlapping `frames` to 4K folios,
    /// after zapping its NPT mappings (guest_memfd's invalidation of the
    /// folio's range before the split): no mapping outlives its folio.
    /// RMP entries are left as they are; a 2M entry over split folios is
    /// PSMASHed when next invalidated or faulted at 4K.
    func splitFolios(_ frames: Range<GuestFrameNumber>) {
        for u in folioUnits(frames) {
            let order = gmem.folioOrder.value(at: u.lowerBound)
            guard order > 0, gmem.folioOrder.run(containing: u.lowerBound).range.upperBound >= u.upperBound else { continue }
            zap(u)
            gmem.setOrder(u, 0)
            stats.add(.folioSplits)
            note("gmem: split folio \(u.lowerBound)+\(u.length)")
        }
    }

    /// Merges each split huge-folio unit overlapping `frames` whose pages
    /// are all private again.
    func mergeFolios(_ frames: Range<GuestFrameNumber>) {
        for u in folioUnits(frames) {
            let order = backingOrder(u.lowerBound)
            guard gmem.folioOrder.run(containing: u.lowerBound).range.upperBound < u.upperBound
                    || gmem.folioOrder.value(at: u.lowerBound) != order,
                  attributes.allPrivate(u) else { continue }
            gmem.setOrder(u, order)
            stats.add(.folioMerges)
            note("gmem: merge folio \(u.lowerBound)+\(u.length)")
        }
    }

    /// `kvm_gmem_punch_hole()` on `frames` after any split: the pages'
    /// folios are freed and `sev_gmem_invalidate()` runs on each.
    func discard(_ frames: Range<GuestFrameNumber>) {
        zap(frames)
        gmemInvalidate(frames)
        for (r, order) in gmem.folioOrder.runs(in: frames) { gmem.free(r, order: order) }
    }

    /// `sev_gmem_invalidate()` over the folios of `frames` being freed: an
    /// assigned 2M entry whose whole 2M page is freed as part of a folio of
    /// at least 2M goes back with one 2M RMPUPDATE; any other 2M entry is
    /// PSMASHed and its freed pages returned at 4K; 4K entries at 4K. Each
    /// RMPUPDATE (`rmp_make_shared()`) is charged (`ops`), as on the
    /// guest-facing platform (`SNPPlatform.makeShared`): the VMM's punch
    /// hole runs while the vCPU waits in its KVM_HC_MAP_GPA_RANGE exit.
    /// (Before session 16 these were counted in `stats` but not charged.)
    /// - Complexity: O(log runs + k), k runs and 2M entries in `frames`.
    func gmemInvalidate(_ frames: Range<GuestFrameNumber>) {
        let h0 = gmem.hfn(frames.lowerBound)
        let hosts = Range(start: h0, count: frames.length)
        for (r, e) in rmp.runs(in: hosts) where e.assigned {
            guard e.pageSize2M else { continue }
            var base = r.lowerBound.alignedDown(to: .size2M)
            while base < r.upperBound {
                let page = base.region2M.frames
                let whole = hosts.lowerBound <= page.lowerBound && page.upperBound <= hosts.upperBound
                if whole, gmem.hasHugeFolio(frames.lowerBound + (base - h0)) {
                    _ = rmp.makeShared(base, level: .size2M)
                    stats.add(.rmpupdateShared2M)
                    ops.add(.snpRMPUpdate2M)
                } else if rmp.psmash(base) == .success {
                    stats.add(.psmashInvalidate)
                } else {
                    stats.add(.psmashFailed)
                    warn("SEV: Failed to PSMASH RMP entry for PFN \(base.value)")
                }
                base = base + PageLevel.size2M.pages
            }
        }
        if let n = rmp.makeShared4K(hosts) {
            stats.add(.rmpupdateShared4K, n)
            ops.add(.snpRMPUpdate4K, n)
        }
    }

    /// fallocate(FALLOC_FL_PUNCH_HOLE) on guest_memfd by the VMM: huge
    /// folios the hole covers only in part are split first, then the
    /// hole's folios are freed with their RMP entries.
    /// - Complexity: as `mapGPARange`.
    public func punchHole(_ frames: Range<GuestFrameNumber>) -> SNPHostOutcome {
        guard !frames.isEmpty, inOneSlot(frames) else {
            return .invalid("frames \(frames.lowerBound.address)+\(frames.length) are not inside one guest_memfd memslot")
        }
        stats.add(.punchHoles)
        for u in folioUnits(frames) where !(frames.lowerBound <= u.lowerBound && u.upperBound <= frames.upperBound) {
            splitFolios(u)
        }
        discard(frames)
        return .ok
    }

    /// KVM_SEV_SNP_LAUNCH_UPDATE of `frames` (`sev_gmem_post_populate()`):
    /// each page assigned at 4K, measured and validated by the firmware.
    /// - Complexity: O(log runs + k).
    public func launchUpdate(_ frames: Range<GuestFrameNumber>) -> SNPHostOutcome {
        // After LAUNCH_FINISH the launch is over: Jethro Beekman's "KVM: SEV: Track SNP launch state and
        // disallow invalid userspace interactions" returns -EINVAL; without it the call reaches the
        // firmware after the launch, which that patch's message says ends in a host page fault from an
        // RMP violation. Either way nothing is added.
        guard !launchFinished else { return .invalid("SNP_LAUNCH_UPDATE after SNP_LAUNCH_FINISH: the launch is over (-EINVAL)") }
        guard !frames.isEmpty, inOneSlot(frames) else {
            return .invalid("frames \(frames.lowerBound.address)+\(frames.length) are not inside one guest_memfd memslot")
        }
        guard attributes.allPrivate(frames) else { return .invalid("SNP_LAUNCH_UPDATE of memory that is not private") }
        gmem.allocate(frames)
        guard rmp.launchUpdate(Range(start: gmem.hfn(frames.lowerBound), count: frames.length), gfn: frames.lowerBound, asid: asid) else {
            return .invalid("SNP_LAUNCH_UPDATE of pages already assigned")
        }
        stats.add(.rmpupdatePrivate4K, frames.length)
        ops.add(.snpRMPUpdate4K, frames.length)
        return .ok
    }
}

extension SNPVM {
    /// INITIAL_VMSA_GPA (arch/x86/kvm/svm/sev.c): the GPA
    /// `snp_launch_update_vmsa()` gives each VMSA page's RMP entry.
    public static let initialVMSAGPA: UInt64 = 0xFFFF_FFFF_F000

    /// The host frame of vCPU `i`'s VMSA page. The page comes from the host
    /// allocator (`snp_safe_alloc_page()`, which allocates two pages and
    /// frees the 2M-aligned one, the erratum workaround that keeps a VMSA off
    /// a huge page's first RMP entry); where the allocator puts it no source
    /// gives: the model puts vCPU `i`'s at host frame 0x1001 + 2i, in the
    /// first 1G that no guest_memfd file uses [assumed placement].
    public func vmsaHostFrame(vcpu i: Int) -> HostFrameNumber { HostFrameNumber(0x1001 + 2 * UInt64(i)) }

    /// KVM_SEV_SNP_LAUNCH_FINISH's `snp_launch_update_vmsa()`: for each vCPU,
    /// the boot vCPU first, `rmp_make_private(pfn, INITIAL_VMSA_GPA,
    /// PG_LEVEL_4K, asid, true)` of its VMSA page and SEV_CMD_SNP_LAUNCH_UPDATE
    /// with SNP_PAGE_TYPE_VMSA, which leaves the entry assigned, validated,
    /// immutable and marked VMSA. Each is a 4K RMPUPDATE (`ops`) and a page of
    /// host memory (`vmsaPages`). Idempotent: a second call finds the pages
    /// assigned and changes nothing (KVM refuses a second LAUNCH_FINISH).
    /// - Complexity: O(vCPUs × log runs).
    public func launchFinish() {
        guard !launchFinished, vmsaPages == 0 else { return }
        // snp_launch_finish(): "Now that there will be no more SNP_LAUNCH_UPDATE ioctls, private pages can
        // be given to the guest simply by marking the RMP entry as private. This can happen on first access
        // and also with KVM_PRE_FAULT_MEMORY": kvm->arch.pre_fault_allowed = true.
        launchFinished = true
        let gfn = GuestFrameNumber(Self.initialVMSAGPA >> 12)
        for i in 0..<vcpus {
            let hfn = vmsaHostFrame(vcpu: i)
            guard rmp.launchUpdateVMSA(hfn, gfn: gfn, asid: asid) else {
                warn("SEV: VMSA page of vCPU \(i) at PFN \(hfn.value) already assigned")
                continue
            }
            vmsaPages += 1
            stats.add(.launchUpdateVMSA)
            ops.add(.snpRMPUpdate4K)
        }
        note("snp_launch_update_vmsa: \(vmsaPages) VMSA pages")
    }

    /// The VMSA entries in the RMP (each vCPU's, after `launchFinish()`).
    /// - Complexity: O(vCPUs × log runs).
    public var vmsaEntries: Int {
        (0..<vcpus).filter { i in
            let e = rmp.lookup(vmsaHostFrame(vcpu: i))
            return e.assigned && e.vmsa && e.validated && e.asid == asid && e.gfn(at: vmsaHostFrame(vcpu: i)).value == Self.initialVMSAGPA >> 12
        }.count
    }
}
