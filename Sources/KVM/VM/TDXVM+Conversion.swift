public import CostModel
public import MemoryModel
import TDXModule

/// Memory attribute changes, guest_memfd conversions and hole punching,
/// with the S-EPT split placed where each `ConversionPolicy` places it
/// (seed 004 discussion, Ackerley's steps 1–7).
extension TDXVM {
    /// Step 2b: split every huge folio overlapping `frames` into 4K folios
    /// (hugetlb restructuring; undoing HVO needs memory and can fail).
    func splitFolios(_ frames: Range<GuestFrameNumber>) -> Bool {
        for (r, o) in gmem.folios(overlapping: frames) where o > 0 {
            if faults.fire(.folioSplitNoMem) { note("folio split \(r.lowerBound.address) failed: -ENOMEM undoing HVO"); return false }
            gmem.setOrder(r, 0)
            counters.bump(.foliosSplit)
            note("folio split \(r.lowerBound.address) order \(o) → 4K")
        }
        return true
    }

    /// Step 7 (FIXUP "Allow merging folios after to-private conversion"):
    /// a backing folio whose range is all private again is merged back.
    func mergeFolios(_ frames: Range<GuestFrameNumber>) {
        guard options.mergeFoliosOnToPrivate, let s = slot(frames.lowerBound), s.backing.order > 0 else { return }
        let unit = s.folioPages
        var g = max(frames.lowerBound.alignedDown(toMultipleOf: unit), s.baseGFN.alignedUp(toMultipleOf: unit))
        while g < frames.upperBound && g + unit <= s.frames.upperBound {
            let r = Range(start: g, count: unit)
            if gmem.folioOrder.value(at: g) != s.backing.order, attributes.allPrivate(r) {
                gmem.setOrder(r, s.backing.order)
                counters.bump(.foliosMerged)
            }
            g = g + unit
        }
    }

    /// Splits private leaves crossing `frames` under the write `mmu_lock`.
    func splitForConversion(_ frames: Range<GuestFrameNumber>, cause: SplitCause) -> String? {
        counters.bump(.writeLockAcquisitions)
        return splitCrossBoundaryLeafs(frames, cause: cause)
    }

    /// A 2M private leaf lies over folios smaller than 2M: KVM's rule
    /// "mapping size ≤ folio size" is broken.
    func checkMappingWithinFolios(_ frames: Range<GuestFrameNumber>) {
        guard options.conversionPolicy != .multiFolio, !frames.isEmpty else { return }
        for (r, e) in mmu.mirror2M.runs(in: frames.covering2M) where e == .leaf {
            for c in r where gmem.folioOrder.value(at: c.firstFrame) < UInt8(PageLevel.size2M.frameShift) {
                flag("2M mapping at \(c.firstFrame.address) is larger than its folio")
            }
        }
    }

    /// Private pages the guest had accepted in `frames`, for the report of
    /// a conversion that lost them (a diagnostic: KVM itself cannot know).
    /// Steps 512 frames from the range's start, so for an unaligned start
    /// it counts the head of each 2M chunk only, as it always has.
    func acceptedFrames(_ frames: Range<GuestFrameNumber>) -> UInt64 {
        var n: UInt64 = 0
        for g in stride(from: frames.lowerBound, to: frames.upperBound, by: Int(PageLevel.size2M.pages)) {
            let end = min(frames.upperBound, g.region2M.frames.upperBound)
            n += module.acceptedFrameCount(in: g..<end)
        }
        return n
    }

    /// guest_memfd conversion ioctl for `frames`. Returns `.ok` or the
    /// ioctl's error; failures the reviewers call broken are flagged.
    /// - Complexity: O(log runs) per 2M chunk touched, plus the splits and zaps.
    @discardableResult
    public func convert(_ frames: Range<GuestFrameNumber>, toPrivate: Bool) -> HostOutcome {
        guard !isDead else { return outcome }
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound, !frames.isEmpty else {
            return .ioctlError("EINVAL: conversion range \(frames.lowerBound.address) not inside one memslot")
        }
        counters.bump(.conversions)
        if hostTrace != nil { hostTrace!.add(toPrivate ? .mapGPAPrivate : .mapGPAShared, level: nil, frames: frames) }
        let r = options.conversionPolicy == .inPlace ? convertInPlace(frames, toPrivate: toPrivate)
            : toPrivate ? convertToPrivate(frames) : convertToShared(frames)
        // QEMU's kvm_convert_memory(): to private, ram_block_discard_range()
        // frees the VMM's shared pages of the range.
        if r == .ok && toPrivate && options.vmWideAttributes { vmmShared.assign(frames, false) }
        if r != .ok { counters.bump(.conversionsFailed) }
        note("convert \(frames.lowerBound.address)+\(frames.count) pages to \(toPrivate ? "private" : "shared"): \(r)")
        check()
        return r
    }

    func convertToShared(_ frames: Range<GuestFrameNumber>) -> HostOutcome {
        func fail(_ e: String) -> HostOutcome { .ioctlError(e) }
        switch options.conversionPolicy {
        case .wipHugetlb:
            guard splitFolios(frames) else { return fail("ENOMEM: folio split") }
            checkMappingWithinFolios(frames)
            if let e = splitForConversion(frames, cause: .conversion) { return fail(e) }
        case .zapBeforeFolioSplit:
            if let e = splitForConversion(frames, cause: .conversion) { return fail(e) }
            let accepted = acceptedFrames(frames)
            zapPrivate(frames)
            if isDead { return outcome }
            guard splitFolios(frames) else {
                flag("conversion to shared failed after private memory was zapped")
                if accepted > 0 { flag("memory left neither private-mapped nor shared (\(accepted) accepted pages lost)") }
                return fail("ENOMEM: folio split after zap")
            }
        case .septSplitFirst:
            if let e = splitForConversion(frames, cause: .conversion) { return fail(e) }
            guard splitFolios(frames) else { return fail("ENOMEM: folio split") }
        case .multiFolio, .inPlace:
            if let e = splitForConversion(frames, cause: .conversion) { return fail(e) }
        }
        zapPrivate(frames)
        if isDead { return outcome }
        attributes.set(frames, private: false)
        return .ok
    }

    func convertToPrivate(_ frames: Range<GuestFrameNumber>) -> HostOutcome {
        if faults.fire(.sharedRefcountBusy) { return .ioctlError("EAGAIN: shared folio has an elevated refcount") }
        zapShared(frames)
        attributes.set(frames, private: true)
        if options.conversionPolicy != .multiFolio { mergeFolios(frames) }
        return .ok
    }

    /// `kvm_unmap_gfn_range()` on the shared root, counted.
    func zapShared(_ frames: Range<GuestFrameNumber>) {
        let n = mmu.zapShared(frames)
        if n > 0 { counters.bump(.zapsShared4K, n) }
    }

    /// KVM_SET_MEMORY_ATTRIBUTES (P15): to shared, split private leaves
    /// crossing the range first (`kvm_arch_pre_set_memory_attributes`), then
    /// unmap and update; -ENOMEM fails the ioctl (earlier splits stay).
    /// - Complexity: O(log runs + leaves zapped).
    @discardableResult
    public func setMemoryAttributes(_ frames: Range<GuestFrameNumber>, private isPrivate: Bool) -> HostOutcome {
        guard !isDead else { return outcome }
        guard options.vmWideAttributes else {
            return .ioctlError("ENOTTY: KVM_SET_MEMORY_ATTRIBUTES on the VM with vm_memory_attributes=N (attributes live in guest_memfd)")
        }
        if !isPrivate {
            if let e = splitForConversion(frames, cause: .attributes) { return .ioctlError(e) }
            zapPrivate(frames)
        } else {
            zapShared(frames)
        }
        attributes.set(frames, private: isPrivate)
        check()
        return .ok
    }

    /// fallocate(PUNCH_HOLE) on guest_memfd (P16): hugetlb holes must be
    /// huge-page aligned; split private leaves crossing the hole, zap, free
    /// the folios.
    /// - Complexity: O(log runs + leaves zapped).
    @discardableResult
    public func punchHole(_ frames: Range<GuestFrameNumber>) -> HostOutcome {
        guard !isDead else { return outcome }
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound else {
            return .ioctlError("EINVAL: hole not inside one memslot")
        }
        let unit = s.folioPages
        guard frames.lowerBound.isMultiple(of: unit), frames.upperBound.isMultiple(of: unit) else {
            return .ioctlError("EINVAL: hole not aligned to the \(s.backing.rawValue) folio size")
        }
        counters.bump(.punchHoles)
        if let e = splitForConversion(frames, cause: .punchHole) { return .ioctlError(e) }
        zapPrivate(frames)
        zapShared(frames)
        if isDead { return outcome }
        gmem.free(frames, order: s.backing.order)
        note("punch hole \(frames.lowerBound.address)+\(frames.count) pages")
        check()
        return .ok
    }

    /// A guest access to `gfn` while it is shared: KVM maps it at 4K in the shared EPT.
    /// - Complexity: O(log runs).
    public func sharedFault(gfn: GuestFrameNumber) -> OpCounts {
        let before = ops
        counters.bump(.eptViolations)
        ops.add(.tdxEPTViolationExit)
        if hostTrace != nil { hostTrace!.add(.sharedExit, level: nil, frames: gfn.only) }
        gmem.allocate(gfn.only)
        mmu.mapShared(gfn.only, true)
        // VM-wide attributes: the shared EPT maps the VMM's page for the GPA.
        if options.vmWideAttributes { vmmShared.assign(gfn.only, true) }
        return ops - before
    }

    func check() { if options.checkInvariants { _ = checkInvariants() } }
}

/// Memo key for bulk piecewise conversion: direction and chunk signature.
struct PieceKey: Hashable {
    var toPrivate: Bool
    var signature: ReplayKey
}

extension TDXVM {
    /// Converts `frames` one 4K page at a time (each page its own conversion
    /// ioctl, in address order). 2M chunks inside the range whose state is
    /// uniform are stepped once per distinct state and replayed for the
    /// rest; the result equals `stepByStep` (tests hold them equal). Chunks
    /// backed by 1G folios are always stepped, since a folio split or merge
    /// reaches beyond the chunk.
    /// - Complexity: O(distinct chunk states × 512 + runs) in bulk, O(pages) stepping.
    @discardableResult
    public func convertInPieces(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, stepByStep: Bool = false) -> HostOutcome {
        let chunk = PageLevel.size2M.pages
        var g = frames.lowerBound
        while g < frames.upperBound {
            if !stepByStep, g.isAligned(to: .size2M), g + chunk <= frames.upperBound, replayAllowed,
               let s = slot(g), s.backing.order <= UInt8(PageLevel.size2M.frameShift), let st = chunkStateOf(g.region2M) {
                let key = PieceKey(toPrivate: toPrivate, signature: st.key)
                if let final = pieceMemo[key] {
                    let k = chunksSharing(st.key, fromChunk: g.region2M, limit: (frames.upperBound - g) / chunk)
                    // No host memo behind `final` any more (`forgetReplaySteps()`): stepped.
                    if k > 0, replay(signature: st.key, final: final, fromChunk: g.region2M, count: k) != nil {
                        g = g + k * chunk
                        continue
                    }
                }
                beginChunkStep(gfn: g, key: st.key)
                for p in g.region2M.frames {
                    let o = convert(p.only, toPrivate: toPrivate)
                    if o != .ok { recordingPoolEvents = false; stepSignature = nil; return o }
                }
                if let f = finishChunkStep(gfn: g), f.memoised { pieceMemo[key] = f.final }
                g = g + chunk
                continue
            }
            let o = convert(g.only, toPrivate: toPrivate)
            if o != .ok { return o }
            g = g + 1
        }
        return .ok
    }
}
