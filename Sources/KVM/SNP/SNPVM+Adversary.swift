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
            case .backward where !ghcb:
                guard mapGPARange(r, toPrivate: toPrivate) == .ok else { return .generic }
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
