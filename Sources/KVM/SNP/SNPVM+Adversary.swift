import CostModel
public import MemoryModel
import SNP

/// How the host answers the page-state changes of a range (issue 18 §5:
/// "answers page-state changes wrongly on SNP"). The VMM answers each
/// KVM_HC_MAP_GPA_RANGE exit `snp_begin_psc()` or `snp_begin_psc_msr()`
/// forwards; KVM writes the PSC descriptor's header back to the GHCB.
public enum SNPPSCAnswer: String, Sendable, CaseIterable, Equatable {
    /// Convert as asked (QEMU's `kvm_convert_memory()`).
    case honest = "psc-honest"
    /// Report success for a conversion the VMM did not perform.
    case skip = "psc-skip"
    /// Report success after performing the opposite conversion.
    case invert = "psc-invert"
    /// A modified KVM writes back a header whose `cur_entry` went backward
    /// (GHCB protocol only; the MSR protocol has no header, so it is
    /// answered honestly there).
    case backward = "psc-backward"
}

extension SNPVM {
    /// The host answers page-state changes of `frames` with `answer` from
    /// now on (`psc-honest` restores the honest VMM).
    /// - Complexity: O(log runs).
    public func answerPageStateChanges(_ frames: Range<GuestFrameNumber>, _ answer: SNPPSCAnswer) {
        pscAnswers.assign(frames, answer)
        note("adversary: \(answer.rawValue) \(frames.lowerBound)+\(frames.length)")
    }

    /// The answer to one KVM_HC_MAP_GPA_RANGE exit: per run of `pscAnswers`,
    /// the VMM converts (honest), does nothing (skip) or converts the other
    /// way (invert), and KVM completes the request; a `backward` run stops
    /// the request there with the header the guest's `vmgexit_psc()`
    /// refuses. What the guest sees of a skip or an invert is nothing: KVM
    /// reports success, and the guest's next access or PVALIDATE with the
    /// C-bit it chose meets attributes that disagree, a KVM_EXIT_MEMORY_FAULT
    /// the VMM converts on (`fault`), so the page ends as the guest asked.
    /// - Complexity: O(runs of `pscAnswers` in `frames`) plus the conversions.
    func answerMapGPARange(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, ghcb: Bool) -> PSCStatus {
        for (r, a) in pscAnswers.runs(in: frames) {
            switch a {
            case .honest:
                guard mapGPARange(r, toPrivate: toPrivate) == .ok else { return .generic }
                if toPrivate, prefaultOnPSC { prefault(r) }
            case .backward where !ghcb:
                guard mapGPARange(r, toPrivate: toPrivate) == .ok else { return .generic }
                if toPrivate, prefaultOnPSC { prefault(r) }
            case .skip:
                stats.add(.pscLies)
                note("adversary: psc-skip \(r.lowerBound)+\(r.length) \(toPrivate ? "private" : "shared"): success reported, nothing converted")
            case .invert:
                stats.add(.pscLies)
                note("adversary: psc-invert \(r.lowerBound)+\(r.length): asked \(toPrivate ? "private" : "shared"), converted \(toPrivate ? "shared" : "private")")
                _ = mapGPARange(r, toPrivate: !toPrivate)
            case .backward:
                stats.add(.pscLies)
                note("adversary: psc-backward \(r.lowerBound)+\(r.length): cur_entry written back below the guest's")
                return .processingWentBackward
            }
        }
        return .ok
    }
}

/// What a host does to the RMP without the guest asking (issue 18 §5: "a
/// host that accepts memory the guest has not asked for"). On SNP the host
/// cannot validate: PVALIDATE is a guest instruction, and every RMPUPDATE
/// leaves the entry's Validated bit clear (and the VMPL permissions
/// RMPADJUST gave), as `rmp_make_private()` and `rmp_make_shared()` write
/// it (arch/x86/virt/svm/sev.c; AMD APM vol. 2, RMPUPDATE). What it can do
/// is assign or take back pages on its own.
public enum SNPHostRMPAction: String, Sendable, CaseIterable {
    /// `assign RANGE`: RMPUPDATE to assigned for the guest's ASID at each
    /// page's own GPA. Pages not assigned yet are prepared as
    /// `sev_gmem_prepare()` would at their first fault (guest_memfd
    /// allocates, one 2M RMPUPDATE where the folio and range allow); pages
    /// assigned already are updated again at their entry's size (a 2M entry
    /// the range covers in part is PSMASHed and its NPT leaf zapped first),
    /// which clears Validated under a mapping the guest still uses.
    case assign
    /// `rmp-shared RANGE`: `rmp_make_shared()` of the range's assigned pages
    /// with their NPT mappings zapped, as `sev_gmem_invalidate()` returns
    /// pages guest_memfd frees, but without the guest's page-state change:
    /// the attributes stay private and the folios stay in the file, now
    /// hypervisor-owned (the host may read and write them).
    case rmpShared = "rmp-shared"
}

extension SNPVM {
    /// `action` on the private-attribute frames of `frames` (shared GPAs are
    /// left alone: their guest_memfd pages are gone or must stay
    /// hypervisor-owned for the host to map them). Nothing here exits: the
    /// host trace records nothing.
    /// - Complexity: O(log runs + k) for k runs and 2M ranges in `frames`.
    public func hostRMPUpdate(_ frames: Range<GuestFrameNumber>, _ action: SNPHostRMPAction) -> SNPHostOutcome {
        guard !frames.isEmpty, inOneSlot(frames) else {
            return .invalid("frames \(frames.lowerBound.address)+\(frames.length) are not inside one guest_memfd memslot")
        }
        note("adversary: \(action.rawValue) \(frames.lowerBound)+\(frames.length)")
        for (r, p) in attributes.privateAttr.runs(in: frames) where p {
            switch action {
            case .assign:
                reassign(r)
                prepareUnasked(r)
            case .rmpShared:
                let before = stats
                zap(r)
                gmemInvalidate(r)
                let d = stats - before
                stats.add(.hostMadeShared4K, d[.rmpupdateShared4K])
                stats.add(.hostMadeShared2M, d[.rmpupdateShared2M])
                stats.add(.hostPsmash, d[.psmashInvalidate])
                ops.add(.snpRMPUpdate4K, d[.rmpupdateShared4K])
                ops.add(.snpRMPUpdate2M, d[.rmpupdateShared2M])
            }
        }
        return .ok
    }

    /// RMPUPDATE to assigned again of the pages of `frames` (private, one
    /// memslot) assigned to this guest at their GPA: Validated and the VMPL
    /// permissions cleared, the entry's size kept; a 2M entry covered in
    /// part is PSMASHed first and its NPT leaf zapped, so that no 2M leaf
    /// stays over 4K entries.
    func reassign(_ frames: Range<GuestFrameNumber>) {
        let h0 = gmem.hfn(frames.lowerBound)
        let hosts = Range(start: h0, count: frames.length)
        for edge in [hosts.lowerBound, hosts.upperBound - 1] {
            let e = rmp.lookup(edge), page = edge.alignedDown(to: .size2M).region2M.frames
            guard e.assigned, e.asid == asid, e.pageSize2M, page.lowerBound < hosts.lowerBound || page.upperBound > hosts.upperBound else { continue }
            if rmp.psmash(edge) == .success {
                stats.add(.hostPsmash)
                zap(Range(start: e.gfn(at: page.lowerBound), count: PageLevel.size2M.pages))
            }
        }
        for (r, e) in rmp.runs(in: hosts) where e.assigned && e.asid == asid && !e.vmsa && e.gfn(at: r.lowerBound) == frames.lowerBound + (r.lowerBound - h0) {
            var n = e
            n.validated = false
            n.vmplPerms = 0
            rmp.replace(r, with: n)
            if e.pageSize2M {
                stats.add(.hostAssigned2M, r.length / PageLevel.size2M.pages)
                ops.add(.snpRMPUpdate2M, r.length / PageLevel.size2M.pages)
            } else {
                stats.add(.hostAssigned4K, r.length)
                ops.add(.snpRMPUpdate4K, r.length)
            }
        }
    }

    /// `sev_gmem_prepare()` of the pages of `frames` not assigned yet, with
    /// no fault: guest_memfd allocates their folios, a 2M RMPUPDATE where
    /// `is_large_rmp_possible()`, else 4K ones (by runs). The NPT is left
    /// alone (the guest's first access maps them).
    func prepareUnasked(_ frames: Range<GuestFrameNumber>) {
        var g = frames.lowerBound
        while g < frames.upperBound {
            let hfn = gmem.hfn(g)
            let run = rmp.entries.run(containing: hfn)
            let end = min(frames.upperBound, g + (run.range.upperBound - hfn), g.alignedDown(to: .size2M) + PageLevel.size2M.pages)
            guard !run.value.assigned else { g = end; continue }
            gmem.allocate(g..<end)
            let two = stats[.rmpupdatePrivate2M]
            guard gmemPrepare(g) else { return }
            if stats[.rmpupdatePrivate2M] > two {
                stats.add(.hostAssigned2M)
                g = g.alignedDown(to: .size2M) + PageLevel.size2M.pages
                continue
            }
            stats.add(.hostAssigned4K)
            // The rest of the run cannot be 2M any more (its 2M range has an assigned page): 4K each.
            let rest = (g + 1)..<end
            if !rest.isEmpty {
                let hr = Range(start: hfn + 1, count: rest.length)
                rmp.replace(hr, with: RMPEntry(assigned: true, pageSize2M: false, validated: false, asid: asid,
                                               gfnOffset: Int64((g + 1).value) - Int64((hfn + 1).value), vmplPerms: 0))
                stats.add(.rmpupdatePrivate4K, rest.length)
                stats.add(.hostAssigned4K, rest.length)
                ops.add(.snpRMPUpdate4K, rest.length)
            }
            g = end
        }
    }
}
