public import CostModel
public import MemoryModel
public import SNP

extension SNPVM: SNPGuestDoorReplay {
    /// `snp_begin_psc()`: at most VMGEXIT_PSC_MAX_COUNT (253) entries; each
    /// run of adjacent entries with the same operation and page size
    /// (starting 2M-aligned for 2M entries) becomes one
    /// KVM_HC_MAP_GPA_RANGE exit, answered by `mapGPARange`; a failure
    /// completes the request with VMGEXIT_PSC_ERROR_GENERIC.
    /// - Complexity: O(entries) plus the conversions.
    public func pageStateChange(_ entries: [PSCEntry]) -> PSCStatus {
        stats.add(.pscExits)
        ops.add(.snpPSCExit)
        guard entries.count <= 253 else { return .invalidHeader }
        var i = 0
        while i < entries.count {
            let start = entries[i]
            guard start.level != .size1G, start.gfn.isAligned(to: start.level) else { return .invalidEntry }
            var n = start.level.pages
            var j = i + 1
            while j < entries.count, entries[j].toPrivate == start.toPrivate, entries[j].level == start.level,
                  entries[j].gfn == start.gfn + n {
                n += start.level.pages
                j += 1
            }
            let two = start.level == .size2M
            stats.add(two ? .pscEntries2M : .pscEntries4K, UInt64(j - i))
            ops.add(two ? .snpPSCEntry2M : .snpPSCEntry4K, UInt64(j - i))
            stats.add(.mapGPARangeExits)
            let t0 = traceNow
            let st = answerMapGPARange(Range(start: start.gfn, count: n), toPrivate: start.toPrivate, ghcb: true)
            trace(start.toPrivate ? .pscPrivate : .pscShared, level: start.level, frames: Range(start: start.gfn, count: n),
                  answer: Self.traceAnswer(st), at: t0)
            guard st == .ok else { return st }
            i = j
        }
        return .ok
    }

    /// The guest's PVALIDATE: its access goes through the NPT (a missing
    /// mapping is a nested page fault KVM resolves, `fault`), then the RMP
    /// checks (`RMPTable.pvalidate`); an RMP #NPF goes to
    /// `handleRMPFault` and the instruction retries. Nil when retrying does
    /// not help (the host cannot resolve the fault).
    /// - Complexity: O(log runs).
    public func pvalidate(gfn: GuestFrameNumber, level: PageLevel, validate: Bool) -> PvalidateResult? {
        rmpInstruction(gfn: gfn, level: level) {
            $0.rmp.pvalidate($0.gmem.hfn(gfn), gfn: gfn, level: level, validate: validate, asid: $0.asid)
        }.map { r in
            switch (r, level) {
            case (.success, .size2M): stats.add(.pvalidate2MSuccess); ops.add(.snpPvalidate2MSuccess)
            case (.success, _): stats.add(.pvalidate4KSuccess); ops.add(.snpPvalidate4KSuccess)
            case (.noUpdate, _): stats.add(.pvalidateNoUpdate); ops.add(level == .size2M ? .snpPvalidate2MNoUpdate : .snpPvalidate4KNoUpdate)
            case (.failSizeMismatch, _): stats.add(.pvalidateSizeMismatch); ops.add(.snpPvalidate2MSizeMismatch)
            default: stats.add(.pvalidateFailed); ops.add(level == .size2M ? .snpPvalidate2MFail : .snpPvalidate4KFail)
            }
            return r
        }
    }

    /// RMPADJUST by the guest at VMPL0 (an SVSM such as COCONUT-SVSM
    /// granting VMPL1 access after validating a page): as `pvalidate`, a 4K
    /// RMPADJUST of a 2M entry is a size-mismatch #NPF the host resolves by
    /// PSMASH (`sev_handle_rmp_fault()` case 1).
    /// - Complexity: O(log runs).
    public func rmpadjust(gfn: GuestFrameNumber, level: PageLevel, vmpl: Int, perms: UInt8) -> PvalidateResult? {
        rmpInstruction(gfn: gfn, level: level) {
            $0.rmp.rmpadjust($0.gmem.hfn(gfn), gfn: gfn, level: level, vmpl: vmpl, perms: perms, asid: $0.asid)
        }.map { r in
            stats.add(r == .success ? .rmpadjustSuccess : .rmpadjustFailed)
            return r
        }
    }

    /// Runs a guest RMP instruction on private `gfn`, resolving its nested
    /// page faults; at most 8 tries (a PVALIDATE needs 4: fault at 2M,
    /// size-mismatch PSMASH, fault at 4K, success).
    private func rmpInstruction(gfn: GuestFrameNumber, level: PageLevel, _ body: (SNPVM) -> RMPGuestOutcome) -> PvalidateResult? {
        guard level != .size1G, gfn.isAligned(to: level) else { return .failInput }
        guard slot(gfn) != nil else { return nil }
        for _ in 0..<8 {
            if !nptMapsPrivate(gfn) {
                guard fault(gfn, isPrivate: true) else { return nil }
                continue
            }
            switch body(self) {
            case .result(let r): return r
            case .npfSizeMismatch: handleRMPFault(gfn, sizeMismatch: true)
            case .npfRMPViolation: handleRMPFault(gfn)
            }
        }
        return nil
    }

    /// A guest load or store. Private pages (by the attributes: the guest
    /// sets the C-bit on what it has made private) fault in through
    /// guest_memfd; a private page that is not validated raises #VC
    /// 0x404 (SVM_EXIT_NOT_VALIDATED), which Linux does not handle: the
    /// guest terminates itself. Shared pages fault in from the VMM's memory.
    /// - Complexity: O(log runs).
    public func access(gfn: GuestFrameNumber) -> String? { access(gfn: gfn, cBit: attributes.isPrivate(gfn)) }

    /// A guest load or store to `gfn` with the C-bit as the guest's page
    /// tables have it (`cBit`), which need not agree with the memory
    /// attributes: a disagreeing access is a KVM_EXIT_MEMORY_FAULT whose
    /// conversion (QEMU's `kvm_convert_memory()`) precedes the retry (`fault`).
    /// - Complexity: O(log runs).
    public func access(gfn: GuestFrameNumber, cBit: Bool) -> String? {
        guard slot(gfn) != nil else { return "access to \(gfn.address) outside every memslot" }
        guard cBit else {
            if npt.value(at: gfn) != .shared4K || attributes.isPrivate(gfn) { fault(gfn, isPrivate: false) }
            return nil
        }
        for _ in 0..<8 {
            if !nptMapsPrivate(gfn) {
                guard fault(gfn, isPrivate: true) else { return "access to \(gfn.address) never completes: the host cannot map it" }
                continue
            }
            let hfn = gmem.hfn(gfn)
            let e = rmp.lookup(hfn)
            guard e.assigned, e.asid == asid, e.gfn(at: hfn) == gfn else {
                handleRMPFault(gfn)
                continue
            }
            if e.validated { return nil }
            return "SNP: #VC exception, error code 0x404 (SVM_EXIT_NOT_VALIDATED) at \(gfn.address): the guest terminated itself (GHCB_SEV_ES_GEN_REQ)"
        }
        return "access to \(gfn.address) never completes: the host keeps answering its RMP faults"
    }

    /// `access(gfn:cBit:)` of each frame of `frames`: where the attributes
    /// agree with `cBit`, by runs (`access(_:)`); elsewhere frame by frame
    /// (each disagreeing access converts only its own page).
    /// - Complexity: O(k × log runs), plus O(frames) where they disagree.
    public func access(_ frames: Range<GuestFrameNumber>, cBit: Bool) -> String? {
        for (r, p) in attributes.privateAttr.runs(in: frames) {
            if p == cBit {
                if let why = access(r) { return why }
                continue
            }
            for g in r { if let why = access(gfn: g, cBit: cBit) { return why } }
        }
        return nil
    }

    /// `access(gfn:)` of each frame of `frames` in ascending order, by runs
    /// (`replayingFrames`), stopping at the first that kills the guest.
    /// - Complexity: O(k × log runs) for k runs of state and 2M ranges.
    public func access(_ frames: Range<GuestFrameNumber>) -> String? {
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound else {
            return access(gfn: frames.lowerBound)
        }
        var why: String?
        var g = frames.lowerBound
        while g < frames.upperBound, why == nil {
            // A run the guest can already touch changes nothing: skipped whole.
            let end = uniformEnd(g, limit: frames.upperBound), st = frameState(g)
            let privateOK = st.isPrivate && (st.npt == .private4K || st.npt == .private2M) && st.rmp.validated
            if privateOK || (!st.isPrivate && st.npt == .shared4K) { g = end; continue }
            _ = replayingFrames(g..<end) { f in
                why = self.access(gfn: f)
                return why == nil
            }
            g = end
        }
        return why
    }

    /// `snp_begin_psc_msr()`: a GHCB MSR page-state request names one 4K
    /// page; KVM forwards it as a KVM_HC_MAP_GPA_RANGE exit of one page
    /// (`mapGPARange`) and `snp_complete_psc_msr()` answers with the
    /// userspace result.
    /// - Complexity: as `mapGPARange` of one frame.
    public func msrPageStateChange(gfn: GuestFrameNumber, toPrivate: Bool) -> PSCStatus {
        stats.add(.pscMSRExits)
        ops.add(.snpMSRPSCExit)
        stats.add(.mapGPARangeExits)
        let t0 = traceNow
        let st = answerMapGPARange(gfn.only, toPrivate: toPrivate, ghcb: false)
        trace(toPrivate ? .pscMSRPrivate : .pscMSRShared, level: .size4K, frames: gfn.only, answer: Self.traceAnswer(st), at: t0)
        return st
    }

    public var operations: OpCounts { ops }

    /// `msrPageStateChange(gfn:toPrivate: true)` then
    /// `pvalidate(gfn:level: .size4K, validate: true)` of each frame of
    /// `frames`, by runs (`replayingFrames`).
    /// - Complexity: O(k × log runs) for k runs of state and 2M ranges.
    public func msrValidate4K(_ frames: Range<GuestFrameNumber>) -> (gfn: GuestFrameNumber, psc: PSCStatus, result: PvalidateResult?)? {
        var failure: (PSCStatus, PvalidateResult?)? = nil
        let g = replayingFrames(frames) { g in
            let st = self.msrPageStateChange(gfn: g, toPrivate: true)
            guard st == .ok else { failure = (st, nil); return false }
            let r = self.pvalidate(gfn: g, level: .size4K, validate: true)
            if r != .success { failure = (.ok, r) }
            return r == .success
        }
        guard let g, let failure else { return nil }
        return (g, failure.0, failure.1)
    }

    /// `pvalidate(gfn:level: .size4K, validate: true)` of each frame of
    /// `frames`, by runs (`replayingFrames`).
    /// - Complexity: O(k × log runs) for k runs of state and 2M ranges.
    public func pvalidate4K(_ frames: Range<GuestFrameNumber>) -> (gfn: GuestFrameNumber, result: PvalidateResult?)? {
        var failed: PvalidateResult?? = nil
        let g = replayingFrames(frames) { g in
            let r = self.pvalidate(gfn: g, level: .size4K, validate: true)
            if r != .success { failed = .some(r) }
            return r == .success
        }
        guard let g, let failed else { return nil }
        return (g, failed)
    }
}
