import CostModel
import MemoryModel
import TDXModule

/// Memory attribute changes, guest_memfd conversions and hole punching,
/// with the S-EPT split placed where each `ConversionPolicy` places it
/// (seed 004 discussion, Ackerley's steps 1–7).
extension TDXVM {
    /// The folios overlapping `frames`, as ranges.
    func folios(overlapping frames: Range<UInt64>) -> [(range: Range<UInt64>, order: UInt8)] {
        var out: [(Range<UInt64>, UInt8)] = []
        var g = frames.lowerBound
        while g < frames.upperBound {
            let o = folioOrder.value(at: g)
            let size = UInt64(1) << UInt64(o)
            let start = alignDown(g, size)
            out.append((start..<(start + size), o))
            g = start + size
        }
        return out
    }

    /// Step 2b: split every huge folio overlapping `frames` into 4K folios
    /// (hugetlb restructuring; undoing HVO needs memory and can fail).
    func splitFolios(_ frames: Range<UInt64>) -> Bool {
        for (r, o) in folios(overlapping: frames) where o > 0 {
            if faults.fire(.folioSplitNoMem) { note("folio split \(hex16(r.lowerBound << 12)) failed: -ENOMEM undoing HVO"); return false }
            folioOrder.assign(r, 0)
            counters.bump(.foliosSplit)
            note("folio split \(hex16(r.lowerBound << 12)) order \(o) → 4K")
        }
        return true
    }

    /// Step 7 (FIXUP "Allow merging folios after to-private conversion"):
    /// a backing folio whose range is all private again is merged back.
    func mergeFolios(_ frames: Range<UInt64>) {
        guard options.mergeFoliosOnToPrivate, let s = slot(frames.lowerBound), s.backing.order > 0 else { return }
        let unit = UInt64(1) << UInt64(s.backing.order)
        var g = max(alignDown(frames.lowerBound, unit), alignUp(s.baseGFN, unit))
        while g < frames.upperBound && g + unit <= s.frames.upperBound {
            let r = g..<(g + unit)
            if folioOrder.value(at: g) != s.backing.order, privateAttr.allSatisfy(in: r, { $0 }) {
                folioOrder.assign(r, s.backing.order)
                counters.bump(.foliosMerged)
            }
            g += unit
        }
    }

    /// Splits private leaves crossing `frames` under the write `mmu_lock`.
    func splitForConversion(_ frames: Range<UInt64>, cause: SplitCause) -> String? {
        counters.bump(.writeLockAcquisitions)
        return splitCrossBoundaryLeafs(frames, cause: cause)
    }

    /// A 2M private leaf lies over folios smaller than 2M: KVM's rule
    /// "mapping size ≤ folio size" is broken.
    func checkMappingWithinFolios(_ frames: Range<UInt64>) {
        guard options.conversionPolicy != .multiFolio, !frames.isEmpty else { return }
        let chunks = (frames.lowerBound >> 9)..<(((frames.upperBound - 1) >> 9) + 1)
        for (r, e) in mirror2M.runs(in: chunks) where e == .leaf {
            for c in r where folioOrder.value(at: c << 9) < 9 {
                flag("2M mapping at \(hex16(c << 21)) is larger than its folio")
            }
        }
    }

    /// Private pages the guest had accepted in `frames`.
    func acceptedFrames(_ frames: Range<UInt64>) -> UInt64 {
        var n: UInt64 = 0
        for g in stride(from: frames.lowerBound, to: frames.upperBound, by: 512) {
            let end = min(frames.upperBound, alignDown(g, 512) + 512)
            let e = module.pde.value(at: g >> 9)
            if e.state == .mapped { n += end - g } else if e.state.isNonLeaf {
                n += module.pte.measure(in: g..<end) { $0.state == .mapped }
            }
        }
        return n
    }

    /// guest_memfd conversion ioctl for `frames`. Returns `.ok` or the
    /// ioctl's error; failures the reviewers call broken are flagged.
    @discardableResult
    public func convert(_ frames: Range<UInt64>, toPrivate: Bool) -> HostOutcome {
        guard !isDead else { return outcome }
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound, !frames.isEmpty else {
            return .ioctlError("EINVAL: conversion range \(hex16(frames.lowerBound << 12)) not inside one memslot")
        }
        counters.bump(.conversions)
        let r = toPrivate ? convertToPrivate(frames) : convertToShared(frames)
        if r != .ok { counters.bump(.conversionsFailed) }
        note("convert \(hex16(frames.lowerBound << 12))+\(frames.count) pages to \(toPrivate ? "private" : "shared"): \(r)")
        check()
        return r
    }

    func convertToShared(_ frames: Range<UInt64>) -> HostOutcome {
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
        case .multiFolio:
            if let e = splitForConversion(frames, cause: .conversion) { return fail(e) }
        }
        zapPrivate(frames)
        if isDead { return outcome }
        privateAttr.assign(frames, false)
        return .ok
    }

    func convertToPrivate(_ frames: Range<UInt64>) -> HostOutcome {
        if faults.fire(.sharedRefcountBusy) { return .ioctlError("EAGAIN: shared folio has an elevated refcount") }
        zapShared(frames)
        privateAttr.assign(frames, true)
        if options.conversionPolicy != .multiFolio { mergeFolios(frames) }
        return .ok
    }

    func zapShared(_ frames: Range<UInt64>) {
        let n = sharedMapped.measure(in: frames) { $0 }
        if n > 0 {
            sharedMapped.assign(frames, false)
            counters.bump(.zapsShared4K, n)
        }
    }

    /// KVM_SET_MEMORY_ATTRIBUTES (P15): to shared, split private leaves
    /// crossing the range first (`kvm_arch_pre_set_memory_attributes`), then
    /// unmap and update; -ENOMEM fails the ioctl (earlier splits stay).
    @discardableResult
    public func setMemoryAttributes(_ frames: Range<UInt64>, private isPrivate: Bool) -> HostOutcome {
        guard !isDead else { return outcome }
        if !isPrivate {
            if let e = splitForConversion(frames, cause: .attributes) { return .ioctlError(e) }
            zapPrivate(frames)
        } else {
            zapShared(frames)
        }
        privateAttr.assign(frames, isPrivate)
        check()
        return .ok
    }

    /// fallocate(PUNCH_HOLE) on guest_memfd (P16): hugetlb holes must be
    /// huge-page aligned; split private leaves crossing the hole, zap, free
    /// the folios.
    @discardableResult
    public func punchHole(_ frames: Range<UInt64>) -> HostOutcome {
        guard !isDead else { return outcome }
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound else {
            return .ioctlError("EINVAL: hole not inside one memslot")
        }
        let unit = UInt64(1) << UInt64(s.backing.order)
        guard frames.lowerBound % unit == 0, frames.upperBound % unit == 0 else {
            return .ioctlError("EINVAL: hole not aligned to the \(s.backing.rawValue) folio size")
        }
        counters.bump(.punchHoles)
        if let e = splitForConversion(frames, cause: .punchHole) { return .ioctlError(e) }
        zapPrivate(frames)
        zapShared(frames)
        if isDead { return outcome }
        folioAllocated.assign(frames, false)
        folioOrder.assign(frames, s.backing.order)
        note("punch hole \(hex16(frames.lowerBound << 12))+\(frames.count) pages")
        check()
        return .ok
    }

    /// A guest access to `gfn` while it is shared: KVM maps it at 4K in the shared EPT.
    public func sharedFault(gfn: UInt64) -> OpCounts {
        let before = ops
        counters.bump(.eptViolations)
        ops.add(.tdxEPTViolationExit)
        gmemAllocate(gfn..<(gfn + 1))
        sharedMapped.assign(gfn..<(gfn + 1), true)
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
    public func convertInPieces(_ frames: Range<UInt64>, toPrivate: Bool, stepByStep: Bool = false) -> HostOutcome {
        var g = frames.lowerBound
        while g < frames.upperBound {
            if !stepByStep, g % 512 == 0, g + 512 <= frames.upperBound, replayAllowed,
               let s = slot(g), s.backing.order <= 9, let st = chunkStateOf(g >> 9) {
                let key = PieceKey(toPrivate: toPrivate, signature: st.key)
                if let final = pieceMemo[key] {
                    let k = chunksSharing(st.key, fromChunk: g >> 9, limit: (frames.upperBound - g) / 512)
                    if k > 0 {
                        _ = replay(signature: st.key, final: final, fromChunk: g >> 9, count: k)
                        g += k * 512
                        continue
                    }
                }
                beginChunkStep(gfn: g, key: st.key)
                for p in g..<(g + 512) {
                    let o = convert(p..<(p + 1), toPrivate: toPrivate)
                    if o != .ok { recordingPoolEvents = false; stepSignature = nil; return o }
                }
                if let final = finishChunkStep(gfn: g), replayMemo[MemoKey(signature: st.key, final: final)] != nil {
                    pieceMemo[key] = final
                }
                g += 512
                continue
            }
            let o = convert(g..<(g + 1), toPrivate: toPrivate)
            if o != .ok { return o }
            g += 1
        }
        return .ok
    }
}
