import CostModel
public import MemoryModel
import SNP

/// Everything the SNP host keeps about one guest frame.
struct SNPFrameState: Equatable {
    var npt: NPTLeaf
    var rmp: RMPEntry
    var isPrivate: Bool
    var folioOrder: UInt8
    var allocated: Bool
    var vmmShared: Bool
    var hostRefs: UInt32
}

extension SNPVM {
    func frameState(_ g: GuestFrameNumber) -> SNPFrameState {
        SNPFrameState(npt: npt.value(at: g), rmp: rmpEntry(g), isPrivate: attributes.isPrivate(g),
                      folioOrder: gmem.folioOrder.value(at: g), allocated: gmem.folioAllocated.value(at: g),
                      vmmShared: vmmShared.value(at: g), hostRefs: gmem.hostRefs.value(at: g))
    }

    /// The end of the run from `g` over which every per-frame map is
    /// constant, at most `limit` (which must lie in `g`'s memslot).
    func uniformEnd(_ g: GuestFrameNumber, limit: GuestFrameNumber) -> GuestFrameNumber {
        let hfn = gmem.hfn(g)
        let rmpEnd = rmp.entries.run(containing: hfn).range.upperBound
        guard limit > g else { return limit }
        return min(npt.run(containing: g).range.upperBound, attributes.privateAttr.run(containing: g).range.upperBound,
                   gmem.folioOrder.run(containing: g).range.upperBound, gmem.folioAllocated.run(containing: g).range.upperBound,
                   vmmShared.run(containing: g).range.upperBound, gmem.hostRefs.run(containing: g).range.upperBound,
                   g + min(rmpEnd - hfn, limit - g))
    }

    /// Puts every frame of `frames` (one memslot) into `s`.
    func apply(_ s: SNPFrameState, to frames: Range<GuestFrameNumber>) {
        npt.assign(frames, s.npt)
        attributes.set(frames, private: s.isPrivate)
        gmem.replace(frames, allocated: s.allocated, order: s.folioOrder)
        gmem.setHostRefs(frames, s.hostRefs)
        vmmShared.assign(frames, s.vmmShared)
        rmp.replace(Range(start: gmem.hfn(frames.lowerBound), count: frames.length), with: s.rmp)
    }

    /// Events that change more than the frame they happen for: a step that
    /// counts one is never replayed.
    static let wideEvents: [SNPHostStat] = [.folioSplits, .folioMerges, .psmashRMPFault, .psmashInvalidate, .psmashFailed,
                                            .rmpupdatePrivate2M, .rmpupdateShared2M, .npfPrivate2M, .rmpupdateFailed,
                                            .prefaultPages2M, .hostPsmash, .hostAssigned2M, .hostMadeShared2M]

    /// Runs `step` on each frame of `frames` in ascending order, stopping
    /// at the first for which it returns false (returned). Without
    /// `stepByStep`, after stepping a frame whose operations left it at 4K
    /// (no 2M NPT leaf or RMP entry) and raised no warning, the following
    /// frames of the same 2M range that now hold the state the stepped
    /// frame started from would take the same operations to the same end
    /// state: they are replayed as one assignment and the stepped frame's
    /// counters times their number. A step with an event that reaches
    /// beyond its frame (`wideEvents`) is not replayed. The last frame of each 2M range and of
    /// the memslot is always stepped, since what completes a range (a
    /// folio merge) happens only there. Tests hold both paths equal.
    /// - Complexity: O(k × log runs) for k stepped frames.
    func replayingFrames(_ frames: Range<GuestFrameNumber>, stepByStep: Bool = false,
                         _ step: (GuestFrameNumber) -> Bool) -> GuestFrameNumber? {
        var g = frames.lowerBound
        while g < frames.upperBound {
            let pre = frameState(g), s0 = stats, o0 = ops, w0 = warnings.count, l0 = log.count
            let mark = beginTraceCapture()
            let ok = step(g)
            let traced = endTraceCapture(mark)
            guard ok else { return g }
            let post = frameState(g)
            g = g + 1
            guard !stepByStep, g < frames.upperBound, let s = slot(g), slot(g - 1)?.id == s.id,
                  post.npt != .private2M, !post.rmp.pageSize2M, warnings.count == w0 else { continue }
            let ds = stats - s0, dops = ops - o0
            guard Self.wideEvents.allSatisfy({ ds[$0] == 0 }) else { continue }
            let regionLast = g.alignedDown(to: .size2M) + (PageLevel.size2M.pages - 1)
            let end = uniformEnd(g, limit: min(frames.upperBound, regionLast, s.frames.upperBound - 1))
            guard end > g, frameState(g) == pre else { continue }
            let n = end - g
            let t0 = traceNow
            apply(post, to: g..<end)
            replayedFrames += n
            stats.add(ds, times: n)
            ops.add(dops, times: n)
            traceReplay(traced, frames: g..<end, times: n, start: t0)
            // A merge depends only on the attributes the run leaves: in
            // stepping it happens at the run's last frame or not at all.
            if post.isPrivate, !pre.isPrivate { mergeFolios(g..<end) }
            if log.count > l0 { note("(the same for the \(n) frames \(g)..<\(end))") }
            g = end
        }
        return nil
    }

    /// Converts each frame of `frames` on its own, as a guest making pages
    /// shared or private one 4K PSC entry at a time (one
    /// KVM_HC_MAP_GPA_RANGE exit per page), by runs (`replayingFrames`).
    /// - Complexity: O(k × log runs).
    public func convertInPieces(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, stepByStep: Bool = false) {
        guard !stepByStep else { return convertFrames(frames, toPrivate: toPrivate, stepByStep: true) }
        let lo = frames.lowerBound.alignedUp(toMultipleOf: PageLevel.size2M.pages)
        let hi = max(lo, frames.upperBound.alignedDown(toMultipleOf: PageLevel.size2M.pages))
        guard lo < hi, inOneSlot(frames) else { return convertFrames(frames, toPrivate: toPrivate, stepByStep: false) }
        convertFrames(frames.lowerBound..<lo, toPrivate: toPrivate, stepByStep: false)
        replayingUnits(lo..<hi, unit: PageLevel.size2M.pages) { convertFrames($0, toPrivate: toPrivate, stepByStep: false) }
        convertFrames(hi..<frames.upperBound, toPrivate: toPrivate, stepByStep: false)
    }

    /// `convertInPieces` of `frames` by runs of frames only.
    func convertFrames(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, stepByStep: Bool) {
        guard !frames.isEmpty else { return }
        _ = replayingFrames(frames, stepByStep: stepByStep) { g in
            self.stats.add(.pscExits)
            self.stats.add(.pscEntries4K)
            self.ops.add(.snpPSCExit)
            self.ops.add(.snpPSCEntry4K)
            self.stats.add(.mapGPARangeExits)
            return self.mapGPARange(g.only, toPrivate: toPrivate) == .ok
        }
    }

    /// `pvalidate4K` frame by frame, never replaying (for the tests).
    package func pvalidate4KStepping(_ frames: Range<GuestFrameNumber>) -> GuestFrameNumber? {
        replayingFrames(frames, stepByStep: true) { self.pvalidate(gfn: $0, level: .size4K, validate: true) == .success }
    }
}

/// What `beginReplayWindow` remembers until `finishReplayWindow`.
struct SNPReplayWindow {
    var frames: Range<GuestFrameNumber>
    var pre: SNPFrameState
    var stats: SNPHostStats
    var ops: OpCounts
    var warnings: Int
    /// The host trace's capture of the first unit (`beginTraceCapture`).
    var traceMark: Int? = nil
}

extension SNPVM {
    /// True if every frame of `frames` (in one memslot) holds the same state.
    func isUniform(_ frames: Range<GuestFrameNumber>) -> Bool {
        guard let s = slot(frames.lowerBound), frames.upperBound <= s.frames.upperBound else { return false }
        return uniformEnd(frames.lowerBound, limit: frames.upperBound) == frames.upperBound
    }

    /// Replay of whole units: `frames` (a multiple of `unit` frames, in
    /// one memslot, all in one state) is worked through unit by unit by
    /// `body` in the same way, so after stepping the first unit, if that
    /// unit ended in one state and the rest is untouched, the rest is
    /// replayed: the unit's end state assigned, its counters times the
    /// number of units. Otherwise every unit is stepped.
    /// - Complexity: O(one unit's steps + log runs) when replayed.
    func replayingUnits(_ frames: Range<GuestFrameNumber>, unit: UInt64, _ body: (Range<GuestFrameNumber>) -> Void) {
        var g = frames.lowerBound
        while g < frames.upperBound {
            let r = g..<min(g + unit, frames.upperBound)
            let all = g..<frames.upperBound
            let window = all.length >= 2 * unit && all.length % unit == 0 && isUniform(all)
                ? SNPReplayWindow(frames: all, pre: frameState(g), stats: stats, ops: ops, warnings: warnings.count,
                                  traceMark: beginTraceCapture()) : nil
            body(r)
            g = r.upperBound
            if let window, finish(window, stepped: r) { return }
        }
    }

    /// Checks a window after its first `stepped` unit and replays the rest.
    private func finish(_ w: SNPReplayWindow, stepped: Range<GuestFrameNumber>) -> Bool {
        let traced = endTraceCapture(w.traceMark)
        let rest = stepped.upperBound..<w.frames.upperBound
        guard !rest.isEmpty, rest.length % stepped.length == 0, warnings.count == w.warnings, isUniform(stepped),
              isUniform(rest), frameState(rest.lowerBound) == w.pre else { return false }
        let post = frameState(stepped.lowerBound)
        let k = rest.length / stepped.length
        let ds = stats - w.stats, dops = ops - w.ops
        let t0 = traceNow
        apply(post, to: rest)
        replayedFrames += rest.length
        stats.add(ds, times: k)
        ops.add(dops, times: k)
        traceReplay(traced, frames: rest, times: k, start: t0)
        if post.isPrivate, !w.pre.isPrivate { mergeFolios(rest) }
        note("(the same for the \(k) following units of \(stepped.length) frames to \(rest.upperBound))")
        return true
    }

    /// `SNPGuestDoorReplay`: the guest is about to work through `frames`
    /// in units of the same operations; remembered if `frames` is uniform.
    public func beginReplayWindow(_ frames: Range<GuestFrameNumber>) {
        // A window the guest left unfinished (it died in its first unit) ends its capture here.
        if let w = pendingWindow { _ = endTraceCapture(w.traceMark) }
        pendingWindow = isUniform(frames)
            ? SNPReplayWindow(frames: frames, pre: frameState(frames.lowerBound), stats: stats, ops: ops, warnings: warnings.count,
                              traceMark: beginTraceCapture()) : nil
    }

    /// `SNPGuestDoorReplay`: the guest worked through the window's first
    /// unit `stepped`; true if the rest was replayed (the guest skips it).
    public func finishReplayWindow(stepped: Range<GuestFrameNumber>) -> Bool {
        defer { pendingWindow = nil }
        guard let w = pendingWindow else { return false }
        guard w.frames.lowerBound == stepped.lowerBound else { _ = endTraceCapture(w.traceMark); return false }
        return finish(w, stepped: stepped)
    }
}
