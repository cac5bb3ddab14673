import MemoryModel
import SNP

/// KVM_PRE_FAULT_MEMORY on the SNP host (`--snp-prefault` with `--host
/// snp`): the VMM, having converted a range to private for a page-state
/// change, asks KVM to map it before the guest touches it (QEMU's
/// "i386/kvm: Prefault memory on page state change", 2025, the same
/// behaviour the guest-facing `SNPPlatform.prefaultOnPSC` models).
/// `kvm_arch_vcpu_pre_fault_memory()` refuses unless
/// `kvm->arch.pre_fault_allowed`, which `snp_launch_finish()` sets; it maps
/// each page with `kvm_tdp_map_page()` and PFERR_PRIVATE_ACCESS for a
/// private GPA: the private fault path (`kvm_gmem_get_pfn()`,
/// `sev_gmem_prepare()`'s RMPUPDATE, the NPT leaf at the largest level
/// allowed) with no exit. The guest's PVALIDATE then finds the page mapped
/// and assigned: no nested page fault, so the host trace has the
/// page-state change and nothing after it.
extension SNPVM {
    /// Maps every private frame of `frames` the NPT does not map yet, as
    /// `fault(_:isPrivate:exit:)` with no exit; 4K runs by `replayingFrames`.
    /// - Complexity: O(k × log runs) for k 2M ranges in `frames`.
    func prefault(_ frames: Range<GuestFrameNumber>) {
        guard !frames.isEmpty else { return }
        guard launchFinished else {
            stats.add(.prefaultRefused)
            note("KVM_PRE_FAULT_MEMORY \(frames.lowerBound)+\(frames.length): -EOPNOTSUPP before SNP_LAUNCH_FINISH")
            return
        }
        var g = frames.lowerBound
        while g < frames.upperBound {
            if nptMapsPrivate(g) || !attributes.isPrivate(g) {
                g = min(frames.upperBound, npt.run(containing: g).range.upperBound, attributes.privateAttr.run(containing: g).range.upperBound)
                continue
            }
            let chunkEnd = min(frames.upperBound, g.alignedDown(to: .size2M) + PageLevel.size2M.pages)
            guard fault(g, isPrivate: true, exit: false) else { return }
            g = g + 1
            guard g < chunkEnd, npt.value(at: g - 1) == .private4K else { g = max(g, chunkEnd); continue }
            let stop = replayingFrames(g..<chunkEnd) { f in
                self.nptMapsPrivate(f) || !self.attributes.isPrivate(f) || self.fault(f, isPrivate: true, exit: false)
            }
            if stop != nil { return }
            g = chunkEnd
        }
    }
}
