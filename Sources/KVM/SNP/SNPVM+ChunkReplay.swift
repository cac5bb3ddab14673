import CostModel
package import MemoryModel
import SNP

/// A host state a chunk key stands for: the frame state and what else a
/// call's requests depend on (the slot's backing, the 2M phase of its host
/// frames, the VMM's page-state-change answer).
struct SNPChunkState: Equatable {
    var frame: SNPFrameState
    var backingOrder: UInt8
    var hfnPhase: UInt64
    var psc: SNPPSCAnswer
}

struct SNPChunkMemoKey: Hashable {
    var pre: UInt64
    var frames: UInt64
}

/// One stepped call: the state it left and the counters it added.
struct SNPChunkMemo {
    var post: UInt64
    var stats: SNPHostStats
    var ops: OpCounts
    var logged: Bool
    /// The host-trace exits the call made (`SNPVM+Trace`), repeated per replayed call.
    var trace: [SNPTraceUnit] = []
}

/// The call being stepped, from `beginChunkStep` to `endChunkStep`.
struct SNPChunkStep {
    var frames: Range<GuestFrameNumber>
    var pre: UInt64
    var stats: SNPHostStats
    var ops: OpCounts
    var warnings: Int
    var log: Int
    var traceMark: Int?
}

extension SNPVM: SNPGuestChunkReplay {
    /// Counters that mean a call failed or met a refusal: such a call is not remembered.
    static let chunkStepFailures: [SNPHostStat] = [.rmpupdateFailed, .psmashFailed, .pvalidateFailed, .rmpadjustFailed,
                                                   .pscLies, .inPlaceSIGBUS, .inPlacePinsRefused, .inPlaceRefusedForReferences]

    /// The state of the 2M chunk at `g` (2M-aligned) if it is uniform and
    /// cannot reach outside itself: in one memslot whose folios are at most
    /// 2M (a 1G folio's allocation or merge would change frames outside),
    /// one page-state-change answer over it.
    /// - Complexity: O(log runs).
    func chunkState(at g: GuestFrameNumber) -> SNPChunkState? {
        let n = PageLevel.size2M.pages
        guard g.isAligned(to: .size2M), let s = slot(g), g + n <= s.frames.upperBound,
              s.backing.order <= UInt8(PageLevel.size2M.frameShift), isUniform(Range(start: g, count: n)),
              pscAnswers.run(containing: g).range.upperBound >= g + n else { return nil }
        return SNPChunkState(frame: frameState(g), backingOrder: s.backing.order,
                             hfnPhase: gmem.hfn(g).value % n, psc: pscAnswers.value(at: g))
    }

    /// The key of `st`, interned (keys are 1 + the index of first sight, so deterministic).
    func key(of st: SNPChunkState) -> UInt64 {
        if let i = chunkStates.firstIndex(of: st) { return UInt64(i) + 1 }
        chunkStates.append(st)
        return UInt64(chunkStates.count)
    }

    /// - Complexity: O(log runs × (chunks + runs)) over `frames`.
    package func chunkKey(_ frames: Range<GuestFrameNumber>) -> UInt64? {
        guard !frames.isEmpty, frames.length % PageLevel.size2M.pages == 0,
              let st = chunkState(at: frames.lowerBound) else { return nil }
        let k = key(of: st)
        return framesSharing(k, from: frames.lowerBound, limit: frames.length) == frames.length ? k : nil
    }

    /// - Complexity: O(log runs) per run of constant state and per chunk boundary crossed.
    package func framesSharing(_ key: UInt64, from: GuestFrameNumber, limit: UInt64) -> UInt64 {
        let n = PageLevel.size2M.pages
        guard key >= 1, key <= UInt64(chunkStates.count), from.isAligned(to: .size2M), let s = slot(from) else { return 0 }
        let want = chunkStates[Int(key - 1)]
        let end = min(from + limit / n * n, s.frames.upperBound.alignedDown(to: .size2M))
        var g = from
        while g < end {
            // Each chunk start is checked whole; inside a chunk runs of the same state continue it.
            guard let st = chunkState(at: g.alignedDown(to: .size2M)), st == want else { break }
            let e = min(uniformEnd(g, limit: end), pscAnswers.run(containing: g).range.upperBound)
            g = max(e.alignedDown(to: .size2M), g.alignedDown(to: .size2M) + n)
        }
        return g > from ? min(g, end) - from : 0
    }

    package func beginChunkStep(_ frames: Range<GuestFrameNumber>) -> UInt64? {
        if let old = chunkStep { _ = endTraceCapture(old.traceMark) }
        chunkStep = chunkKey(frames).map {
            SNPChunkStep(frames: frames, pre: $0, stats: stats, ops: ops, warnings: warnings.count, log: log.count,
                         traceMark: beginTraceCapture())
        }
        return chunkStep?.pre
    }

    package func endChunkStep(_ frames: Range<GuestFrameNumber>) -> UInt64? {
        defer { chunkStep = nil }
        guard let st = chunkStep else { return nil }
        let traced = endTraceCapture(st.traceMark)
        guard st.frames == frames, warnings.count == st.warnings else { return nil }
        let ds = stats - st.stats
        guard Self.chunkStepFailures.allSatisfy({ ds[$0] == 0 }), let post = chunkKey(frames) else { return nil }
        chunkMemos[SNPChunkMemoKey(pre: st.pre, frames: frames.length)] =
            SNPChunkMemo(post: post, stats: ds, ops: ops - st.ops, logged: log.count > st.log, trace: traced)
        return post
    }

    /// - Complexity: O(log runs).
    package func replayChunkSteps(pre: UInt64, post: UInt64, from: GuestFrameNumber, frames: UInt64, calls: UInt64) -> Bool {
        guard calls > 0, let m = chunkMemos[SNPChunkMemoKey(pre: pre, frames: frames)], m.post == post,
              post <= UInt64(chunkStates.count), let s = slot(from), from + frames * calls <= s.frames.upperBound else { return false }
        let r = Range(start: from, count: frames * calls)
        let t0 = traceNow
        apply(chunkStates[Int(post - 1)].frame, to: r)
        replayedFrames += r.length
        replayedCalls += calls
        stats.add(m.stats, times: calls)
        ops.add(m.ops, times: calls)
        traceReplay(m.trace, frames: r, times: calls, start: t0)
        if m.logged { note("(the same for \(calls) accept_memory() calls of \(frames) frames to \(r.upperBound))") }
        return true
    }
}
