public import MemoryModel
import TDXModule

/// What the host did to guest_memfd's pages under in-place conversion, as
/// a host report shows it (kept apart from `KVMCounters` so the other
/// policies' reports are unchanged).
public struct InPlaceStats: Sendable, Equatable {
    /// Pages the host pinned (`pin`), and pins refused on private pages.
    public var pagesPinned: UInt64 = 0
    public var pinsRefused: UInt64 = 0
    /// Host accesses to private pages answered with SIGBUS.
    public var sigbus: UInt64 = 0
    /// Conversions to private refused because a shared page still had host references.
    public var refusedForReferences: UInt64 = 0
}

/// guest_memfd in-place conversion (Ackerley Tng's series, v8, June 2026,
/// run with `kvm.vm_memory_attributes=N`; Yan Zhao's TDX huge pages on
/// top), following Ackerley's conversion steps 1–7 (docs/HOST.md):
///
/// 1. allocate the attribute entries (can fail: `gmem-attributes-nomem`);
/// 2. a. to private: unmap the range from host page tables and check that
///       no shared folio has references beyond guest_memfd's own
///       (a host pin or GUP: -EAGAIN, nothing changed);
///    b. to shared: no folio split: with the TDX huge pages series only
///       the private mapping is split (`kvm_split_cross_boundary_leafs()`)
///       and the 2 MiB folio stays in the file;
/// 3.–6. invalidate, zap (the point of no return), update the attributes.
///
/// Shared and private are the same pages of one file, so nothing is ever
/// backed twice (`doubleBackingAvoidedPages`).
extension TDXVM {
    func convertInPlace(_ frames: Range<GuestFrameNumber>, toPrivate: Bool) -> HostOutcome {
        if faults.fire(.gmemAttributesNoMem) { return .ioctlError("ENOMEM: guest_memfd attribute entries") }
        if toPrivate {
            if gmem.hasHostRefs(frames) {
                inPlace.refusedForReferences += 1
                return .ioctlError("EAGAIN: a shared page still has host references (pinned)")
            }
            if faults.fire(.gmemSafeRefcount) { return .ioctlError("EAGAIN: shared folio has an elevated refcount") }
            zapShared(frames)
            attributes.set(frames, private: true)
            return .ok
        }
        if let e = splitForConversion(frames, cause: .conversion) { return .ioctlError(e) }
        zapPrivate(frames)
        if isDead { return outcome }
        attributes.set(frames, private: false)
        return .ok
    }

    /// The host pins `frames` through guest_memfd's userspace mapping
    /// (`pin_user_pages()` by vhost or VFIO): each shared page gains a
    /// reference; a private page cannot be faulted into userspace
    /// (guest_memfd's fault handler returns VM_FAULT_SIGBUS), so GUP fails
    /// with -EFAULT and nothing is pinned.
    /// - Complexity: O(log runs + runs in `frames`).
    @discardableResult
    public func hostPin(_ frames: Range<GuestFrameNumber>) -> HostOutcome {
        guard !isDead else { return outcome }
        guard attributes.privateAttr.allSatisfy(in: frames, { !$0 }) else {
            inPlace.pinsRefused += 1
            note("host pin \(frames.lowerBound.address)+\(frames.count): EFAULT (private page)")
            return .ioctlError("EFAULT: pin of a private page")
        }
        gmem.allocate(frames)
        gmem.addHostRefs(frames, 1)
        inPlace.pagesPinned += UInt64(frames.count)
        note("host pin \(frames.lowerBound.address)+\(frames.count)")
        check()
        return .ok
    }

    /// `unpin_user_pages()`: drops one host reference from each page of
    /// `frames` that has one.
    /// - Complexity: O(log runs + runs in `frames`).
    public func hostUnpin(_ frames: Range<GuestFrameNumber>) {
        guard !isDead else { return }
        gmem.addHostRefs(frames, -1)
        note("host unpin \(frames.lowerBound.address)+\(frames.count)")
        check()
    }

    /// The VMM touches `frames` through guest_memfd's userspace mapping
    /// (in place), or with VM-wide attributes through its own shared memory.
    /// Shared pages fault in from the file (the same folio the guest
    /// uses); a private page makes guest_memfd's fault handler return
    /// VM_FAULT_SIGBUS: the VMM gets SIGBUS, the VM goes on. Returns the
    /// private pages touched.
    /// - Complexity: O(log runs + runs in `frames`).
    @discardableResult
    public func hostMap(_ frames: Range<GuestFrameNumber>) -> UInt64 {
        guard !isDead else { return 0 }
        if options.vmWideAttributes {
            // The VMM's shared memory has no private pages: a load or store
            // to any GPA's alias (a vhost-user backend walking guest memory)
            // populates it, also where the GPA is private and its real
            // contents are in guest_memfd: the double backing.
            vmmShared.assign(frames, true)
            note("host map \(frames.lowerBound.address)+\(frames.count): the VMM's shared memory populated")
            return 0
        }
        var sigbus: UInt64 = 0
        for (r, isPrivate) in attributes.privateAttr.runs(in: frames) {
            if isPrivate { sigbus += UInt64(r.count) } else { gmem.allocate(r) }
        }
        if sigbus > 0 {
            inPlace.sigbus += 1
            note("host map \(frames.lowerBound.address)+\(frames.count): SIGBUS to the VMM (\(sigbus) private pages)")
        }
        check()
        return sigbus
    }

    /// Shared pages backed in guest_memfd: with VM-wide attributes (the
    /// other policies) a shared page's contents live in the VMM's own
    /// memory and the file keeps its private folio unless the VMM punches
    /// it out, which a 4K page of a 2 MiB hugetlb folio cannot be; in
    /// place they are the same page, so these are the pages not backed
    /// twice.
    /// - Complexity: O(runs of the folio and attribute maps).
    public var doubleBackingAvoidedPages: UInt64 {
        guard options.conversionPolicy == .inPlace else { return 0 }
        var n: UInt64 = 0
        gmem.folioAllocated.forEachRun(in: .lowest ..< .highest) { frames, allocated in
            guard allocated else { return }
            n += attributes.privateAttr.measure(in: frames) { !$0 }
        }
        return n
    }
}
