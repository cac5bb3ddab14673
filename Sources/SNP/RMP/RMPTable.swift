public import MemoryModel

/// The Reverse Map Table, one entry per 4K page of host memory, kept as
/// runs of equal entries by host frame. Its writers are the instructions
/// that change it: RMPUPDATE and PSMASH (the host, through
/// `rmp_make_private()`, `rmp_make_shared()` and `snp_rmptable_psmash()` in
/// arch/x86/virt/svm/sev.c), PVALIDATE and RMPADJUST (the guest). Each
/// returns the instruction's result; none traps.
/// - Complexity: every operation is O(log runs + runs touched); a 2M
///   operation touches one run of 512 entries, not 512 entries.
public struct RMPTable: Sendable {
    package private(set) var entries = IntervalMap<HostFrameNumber, RMPEntry>(initial: .shared)

    public init() {}

    /// `snp_lookup_rmpentry()`: the entry covering `hfn`.
    /// - Complexity: O(log runs).
    public func lookup(_ hfn: HostFrameNumber) -> RMPEntry { entries.value(at: hfn) }

    /// The host frames of the RMP page (4K or 2M) holding `hfn`.
    public func pageFrames(_ hfn: HostFrameNumber) -> Range<HostFrameNumber> {
        lookup(hfn).pageSize2M ? hfn.region2M.frames : Range(start: hfn, count: 1)
    }

    /// The runs of entries over `frames`.
    /// - Complexity: O(log runs + k).
    public func runs(in frames: Range<HostFrameNumber>) -> [(range: Range<HostFrameNumber>, value: RMPEntry)] {
        entries.runs(in: frames)
    }

    /// True if no entry of `frames` is assigned (`is_pfn_range_shared()`
    /// in arch/x86/kvm/svm/sev.c).
    /// - Complexity: O(log runs + k).
    public func allShared(_ frames: Range<HostFrameNumber>) -> Bool { entries.allSatisfy(in: frames) { !$0.assigned } }

    /// RMPUPDATE to assigned, as `rmp_make_private(pfn, gpa, level, asid,
    /// false)`: the page (4K, or the 2M page at a 2M-aligned `hfn`) becomes
    /// the guest's at `gfn`, not validated, VMPL1–3 permissions cleared. A
    /// 2M update over any assigned 4K entry, or a 4K update inside an
    /// assigned 2M entry, fails with FAIL_OVERLAP (`RMPUPDATE_FAIL_OVERLAP`).
    /// - Complexity: O(log runs + k).
    public mutating func makePrivate(_ hfn: HostFrameNumber, gfn: GuestFrameNumber, level: PageLevel, asid: UInt32) -> RMPInstructionResult {
        guard level != .size1G, hfn.isAligned(to: level), gfn.isAligned(to: level) else { return .failInput }
        if let r = overlap(hfn, level) { return r }
        let frames = Range(start: hfn, count: level.pages)
        entries.assign(frames, RMPEntry(assigned: true, pageSize2M: level == .size2M, validated: false, asid: asid,
                                        gfnOffset: Int64(gfn.value) - Int64(hfn.value), vmplPerms: 0))
        return .success
    }

    /// RMPUPDATE to hypervisor-owned, as `rmp_make_shared(pfn, level)`.
    /// - Complexity: O(log runs + k).
    public mutating func makeShared(_ hfn: HostFrameNumber, level: PageLevel) -> RMPInstructionResult {
        guard level != .size1G, hfn.isAligned(to: level) else { return .failInput }
        if level == .size4K, lookup(hfn).assigned, lookup(hfn).pageSize2M { return .failOverlap }
        entries.assign(Range(start: hfn, count: level.pages), .shared)
        return .success
    }

    /// RMPUPDATE's overlap check for a change of `level` at `hfn`.
    private func overlap(_ hfn: HostFrameNumber, _ level: PageLevel) -> RMPInstructionResult? {
        if level == .size2M {
            return entries.allSatisfy(in: hfn.region2M.frames) { !$0.assigned || $0.pageSize2M } ? nil : .failOverlap
        }
        let e = lookup(hfn)
        return e.assigned && e.pageSize2M ? .failOverlap : nil
    }

    /// PSMASH of the 2M page holding `hfn` (`snp_rmptable_psmash()` aligns
    /// the frame down): 512 4K entries, each keeping the 2M entry's
    /// assigned, validated, ASID, GPA and permissions. FAIL_INPUT when the
    /// page is not an assigned 2M entry ([inferred] code: the APM lists
    /// the cases, the sources read do not quote the value KVM sees).
    /// - Complexity: O(log runs).
    public mutating func psmash(_ hfn: HostFrameNumber) -> RMPInstructionResult {
        let base = hfn.alignedDown(to: .size2M)
        var e = lookup(base)
        guard e.assigned, e.pageSize2M else { return .failInput }
        e.pageSize2M = false
        entries.assign(base.region2M.frames, e)
        return .success
    }

    /// The checks PVALIDATE and RMPADJUST share: the entry must be
    /// assigned to this guest at this GPA (else an RMP #NPF), a 4K
    /// instruction on a 2M entry is a size-mismatch #NPF, and a 2M
    /// instruction on 4K entries fails with FAIL_SIZEMISMATCH.
    private func guestCheck(_ hfn: HostFrameNumber, gfn: GuestFrameNumber, level: PageLevel, asid: UInt32) -> RMPGuestOutcome? {
        guard level != .size1G, hfn.isAligned(to: level), gfn.isAligned(to: level) else { return .result(.failInput) }
        let e = lookup(hfn)
        guard e.assigned, e.asid == asid, e.gfn(at: hfn) == gfn else { return .npfRMPViolation }
        if level == .size4K, e.pageSize2M { return .npfSizeMismatch }
        if level == .size2M, !e.pageSize2M { return .result(.failSizeMismatch) }
        return nil
    }

    /// PVALIDATE by the guest with `asid` of `gfn` (backed by `hfn`) at
    /// `level`: sets or clears the Validated bit; CF=1 (no update) when it
    /// already has the requested value.
    /// - Complexity: O(log runs).
    public mutating func pvalidate(_ hfn: HostFrameNumber, gfn: GuestFrameNumber, level: PageLevel, validate: Bool, asid: UInt32) -> RMPGuestOutcome {
        if let o = guestCheck(hfn, gfn: gfn, level: level, asid: asid) { return o }
        var e = lookup(hfn)
        if e.validated == validate { return .result(.noUpdate) }
        e.validated = validate
        entries.assign(Range(start: hfn, count: level.pages), e)
        return .result(.success)
    }

    /// RMPADJUST by the guest at VMPL0 (an SVSM) giving `vmpl` (1...3) the
    /// permissions `perms` on `gfn` at `level`. The page must be validated
    /// (FAIL_PERMISSION otherwise: [inferred] from the APM's description).
    /// - Complexity: O(log runs).
    public mutating func rmpadjust(_ hfn: HostFrameNumber, gfn: GuestFrameNumber, level: PageLevel, vmpl: Int, perms: UInt8, asid: UInt32) -> RMPGuestOutcome {
        guard (1...3).contains(vmpl) else { return .result(.failInput) }
        if let o = guestCheck(hfn, gfn: gfn, level: level, asid: asid) { return o }
        var e = lookup(hfn)
        guard e.validated else { return .result(.failPermission) }
        let shift = UInt16(4 * (vmpl - 1))
        e.vmplPerms = (e.vmplPerms & ~(0xf << shift)) | (UInt16(perms & 0xf) << shift)
        entries.assign(Range(start: hfn, count: level.pages), e)
        return .result(.success)
    }

    /// Bulk replay of 4K PVALIDATEs that each succeed on a run of
    /// identical 4K entries: the caller stepped the first frame and checked
    /// that the others start in that frame's old state.
    package mutating func replace(_ frames: Range<HostFrameNumber>, with e: RMPEntry) { entries.assign(frames, e) }
}

extension RMPTable {
    /// `rmp_make_shared(pfn, PG_LEVEL_4K)` of every assigned 4K entry of
    /// `frames`, by runs. Nil (nothing changed) when a 2M entry lies in
    /// `frames` (FAIL_OVERLAP: the caller PSMASHes first).
    /// - Returns: the number of RMPUPDATEs.
    /// - Complexity: O(log runs + k).
    package mutating func makeShared4K(_ frames: Range<HostFrameNumber>) -> UInt64? {
        let rs = entries.runs(in: frames)
        guard !rs.contains(where: { $0.value.assigned && $0.value.pageSize2M }) else { return nil }
        var n: UInt64 = 0
        for (r, e) in rs where e.assigned { n += r.length }
        entries.assign(frames, .shared)
        return n
    }

    /// SNP_LAUNCH_UPDATE's RMP effect on `frames` (4K pages, one run of
    /// host frames backing the guest frames from `gfn`): each page
    /// `rmp_make_private()` at 4K in `sev_gmem_post_populate()`, then
    /// validated by the firmware as it measures it. Nil (nothing changed)
    /// when a page is already assigned.
    /// - Complexity: O(log runs + k).
    package mutating func launchUpdate(_ frames: Range<HostFrameNumber>, gfn: GuestFrameNumber, asid: UInt32) -> Bool {
        guard allShared(frames) else { return false }
        entries.assign(frames, RMPEntry(assigned: true, pageSize2M: false, validated: true, asid: asid,
                                        gfnOffset: Int64(gfn.value) - Int64(frames.lowerBound.value), vmplPerms: 0))
        return true
    }

    /// `snp_launch_update_vmsa()`'s RMP effect on one vCPU's VMSA page at
    /// `hfn`: `rmp_make_private(pfn, INITIAL_VMSA_GPA, PG_LEVEL_4K, asid,
    /// true)` (assigned, immutable, 4K), then SEV_CMD_SNP_LAUNCH_UPDATE with
    /// SNP_PAGE_TYPE_VMSA, after which the firmware has set the entry's VMSA
    /// and validated bits. False (nothing changed) when the page is assigned.
    /// - Complexity: O(log runs).
    package mutating func launchUpdateVMSA(_ hfn: HostFrameNumber, gfn: GuestFrameNumber, asid: UInt32) -> Bool {
        guard !lookup(hfn).assigned else { return false }
        entries.assign(Range(start: hfn, count: 1), RMPEntry(assigned: true, pageSize2M: false, validated: true, asid: asid,
                                                             gfnOffset: Int64(gfn.value) - Int64(hfn.value), vmplPerms: 0, vmsa: true))
        return true
    }
}
