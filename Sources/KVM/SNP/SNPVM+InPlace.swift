public import MemoryModel
import SNP

/// guest_memfd in-place conversion on the SEV-SNP host (Ackerley Tng's
/// series, v8, June 2026, with `kvm.vm_memory_attributes=N`; QEMU's SNP
/// support for it, May 2026), following the same conversion steps as the
/// TDX host's `in-place` policy (`TDXVM+InPlace`, docs/HOST.md):
///
/// - to private: a shared page the host still holds a reference to (a pin)
///   refuses the conversion (-EAGAIN, nothing changed), and the PSC fails
///   (VMGEXIT_PSC_ERROR_GENERIC: the guest terminates itself,
///   GHCB_TERM_PSC [the VMM's reaction to -EAGAIN is not in the sources
///   read; the model does not retry]); otherwise the attributes change and
///   the shared mappings are zapped. The pages stay in the file: the next
///   private fault prepares them (`sev_gmem_prepare()`, RMPUPDATE).
/// - to shared: no folio split (the 2M folio stays in the file, as with the
///   TDX huge-page series on top of in-place); the private mappings are
///   zapped and the pages' RMP entries returned to the hypervisor as
///   `sev_gmem_invalidate()` does (PSMASH of a 2M entry only partly
///   converted, RMPUPDATE to shared) [inferred: a page the host may map must
///   be hypervisor-owned in the RMP, and the stored references do not quote
///   the series' SNP conversion hook]; the pages stay in the file.
///
/// Shared and private are the same pages of one file: the VMM has no
/// separate shared memory (`vmmShared` stays empty), so no GPA is backed
/// twice.
extension SNPVM {
    func convertInPlace(_ frames: Range<GuestFrameNumber>, toPrivate: Bool) -> SNPHostOutcome {
        if toPrivate {
            if gmem.hasHostRefs(frames) {
                stats.add(.inPlaceRefusedForReferences)
                note("in-place: conversion of \(frames.lowerBound)+\(frames.length) to private refused: EAGAIN (host references)")
                return .invalid("EAGAIN: a shared page still has host references (pinned)")
            }
            if attributes.privateAttr.allSatisfy(in: frames, { $0 }) { return .ok }
            attributes.set(frames, private: true)
            zap(frames)
            for (r, l) in npt.runs(in: frames) where l == .shared4K { npt.assign(r, .none) }
            return .ok
        }
        if attributes.privateAttr.allSatisfy(in: frames, { !$0 }) { return .ok }
        attributes.set(frames, private: false)
        zap(frames)
        gmemInvalidate(frames)
        return .ok
    }

    /// The host pins `frames` through guest_memfd's userspace mapping
    /// (`pin_user_pages()` by vhost or VFIO), in place only: each shared
    /// page gains a reference; a private page cannot be faulted into
    /// userspace (guest_memfd's fault handler returns VM_FAULT_SIGBUS), so
    /// GUP fails and nothing is pinned. Returns whether it pinned.
    /// - Complexity: O(log runs + runs in `frames`).
    @discardableResult
    public func hostPin(_ frames: Range<GuestFrameNumber>) -> Bool {
        guard inPlace, attributes.privateAttr.allSatisfy(in: frames, { !$0 }) else {
            stats.add(.inPlacePinsRefused)
            note("host pin \(frames.lowerBound)+\(frames.length): EFAULT (private page or no in-place mapping)")
            return false
        }
        gmem.allocate(frames)
        gmem.addHostRefs(frames, 1)
        note("host pin \(frames.lowerBound)+\(frames.length)")
        return true
    }

    /// `unpin_user_pages()`: one reference fewer on each page that has one.
    /// - Complexity: O(log runs + runs in `frames`).
    public func hostUnpin(_ frames: Range<GuestFrameNumber>) {
        gmem.addHostRefs(frames, -1)
        note("host unpin \(frames.lowerBound)+\(frames.length)")
    }

    /// The VMM's loads and stores to `frames`. In place, through guest_memfd's
    /// mapping: shared pages fault in from the file, private ones are SIGBUS
    /// to the VMM (counted; the VM goes on). With VM-wide attributes, through
    /// its own memory, which any GPA's alias populates, private or not: the
    /// double backing. Returns the private pages touched.
    /// - Complexity: O(log runs + runs in `frames`).
    @discardableResult
    public func hostMap(_ frames: Range<GuestFrameNumber>) -> UInt64 {
        guard inPlace else {
            vmmShared.assign(frames, true)
            note("host map \(frames.lowerBound)+\(frames.length): the VMM's shared memory populated")
            return 0
        }
        var sigbus: UInt64 = 0
        for (r, p) in attributes.privateAttr.runs(in: frames) {
            if p { sigbus += r.length } else { gmem.allocate(r) }
        }
        if sigbus > 0 {
            stats.add(.inPlaceSIGBUS)
            note("host map \(frames.lowerBound)+\(frames.length): SIGBUS to the VMM (\(sigbus) private pages)")
        }
        return sigbus
    }
}

extension SNPVM {
    /// Shared pages guest_memfd holds in place (the pages VM-wide attributes
    /// would keep in the VMM's own memory instead).
    /// - Complexity: O(runs).
    public var inPlaceSharedPages: UInt64 {
        var n: UInt64 = 0
        gmem.folioAllocated.forEachRun(in: .lowest ..< .highest) { r, a in
            if a { n += attributes.privateAttr.measure(in: r) { !$0 } }
        }
        return n
    }
}
