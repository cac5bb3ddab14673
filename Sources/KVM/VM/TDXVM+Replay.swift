import CostModel
import MemoryModel
import TDXModule

/// Tallies a chunk step changes, snapshotted so that a replay can add the
/// difference (minus the context-dependent part) `k` times.
struct StepSnapshot {
    var ops: OpCounts
    var contextOps: OpCounts
    var calls: SEAMCALLCounts
    var contextCalls: SEAMCALLCounts
    var counters: KVMCounters
    var contextCounters: KVMCounters
    var epoch: UInt64
    var kicks: UInt64
}

/// What stepping one chunk from a signature did, besides its final state.
struct ChunkMemo {
    var ops: OpCounts
    var calls: SEAMCALLCounts
    var counters: KVMCounters
    var epochDelta: UInt64
    var kicked: Bool
    var events: [PoolEvent]
}

/// The uniform per-chunk state packed into a replay key. Context bits
/// (upper tables, 1G GUEST_INHIBIT) go into `ReplayKey.context`.
struct ChunkState: Equatable {
    var mirror: MirrorEntry
    var mirror4K: Bool
    var pde: SEPTState
    var pte: SEPTState
    var disallow: UInt32
    var inhibit2M: Bool
    var isPrivate: Bool
    var shared: Bool
    var allocated: Bool
    var order: UInt8
    var refcount: UInt32
    var pamtInstalled: Bool
    var inUse: UInt32
    // Context.
    var mirrorPD: Bool
    var mirrorPDPT: Bool
    var septPD: Bool
    var septPDPT: Bool
    var inhibit1G: Bool

    /// Bit fields, not page shifts: each field at a fixed offset of the key.
    var key: ReplayKey {
        var s = UInt64(mirror.rawValue) | UInt64(mirror4K ? 1 : 0) << 2 | UInt64(pde.rawValue) << 3 | UInt64(pte.rawValue) << 6
        s |= UInt64(min(disallow, 255)) << 9 | UInt64(inhibit2M ? 1 : 0) << 17 | UInt64(isPrivate ? 1 : 0) << 18
        s |= UInt64(shared ? 1 : 0) << 19 | UInt64(allocated ? 1 : 0) << 20 | UInt64(order) << 21
        s |= UInt64(min(refcount, 1023)) << 26 | UInt64(pamtInstalled ? 1 : 0) << 36 | UInt64(min(inUse, 1023)) << 37
        let c = UInt64(mirrorPD ? 1 : 0) | UInt64(mirrorPDPT ? 1 : 0) << 1 | UInt64(septPD ? 1 : 0) << 2
            | UInt64(septPDPT ? 1 : 0) << 3 | UInt64(inhibit1G ? 1 : 0) << 4
        return ReplayKey(state: s, context: c)
    }
}

extension ChunkState {
    /// Unpacks `key` (the bit fields of `key`); nil if it is not a packed chunk state.
    init?(key k: ReplayKey) {
        let s = k.state, c = k.context
        guard let m = MirrorEntry(rawValue: UInt8(s & 3)), let d = SEPTState(rawValue: UInt8(s >> 3 & 7)),
              let t = SEPTState(rawValue: UInt8(s >> 6 & 7)) else { return nil }
        // Bit fields of the packed key (see `key`), not page shifts.
        self.init(mirror: m, mirror4K: s >> 2 & 1 == 1, pde: d, pte: t, disallow: UInt32(s >> 9 & 255),
                  inhibit2M: s >> 17 & 1 == 1, isPrivate: s >> 18 & 1 == 1, shared: s >> 19 & 1 == 1,
                  allocated: s >> 20 & 1 == 1, order: UInt8(s >> 21 & 31), refcount: UInt32(s >> 26 & 1023),
                  pamtInstalled: s >> 36 & 1 == 1, inUse: UInt32(s >> 37 & 1023), mirrorPD: c & 1 == 1,
                  mirrorPDPT: c >> 1 & 1 == 1, septPD: c >> 2 & 1 == 1, septPDPT: c >> 3 & 1 == 1,
                  inhibit1G: c >> 4 & 1 == 1)
    }
}

/// Bulk replay: a 2M chunk whose every map is uniform has a signature; the
/// first chunk with a signature is stepped and memoised, and the following
/// chunks with the same signature get the memoised final state and tallies.
/// Context-dependent work (S-EPT pool pages and their PAMT, split-cache
/// top-ups) is re-run per replayed chunk in the recorded order.
extension TDXVM {
    /// The uniform value of `map` over `r`, or nil.
    @inline(__always)
    func uniform<K, V>(_ map: IntervalMap<K, V>, _ r: Range<K>) -> V? {
        let run = map.run(containing: r.lowerBound)
        return run.range.upperBound >= r.upperBound ? run.value : nil
    }

    /// Host 2M region backing guest chunk `c`, if its memslot maps
    /// the chunk onto one aligned 2M host range.
    func hostRegion(_ c: GuestRegion2M) -> HostRegion2M? {
        let h = hfn(c.firstFrame)
        return h.isAligned(to: .size2M) ? h.region2M : nil
    }

    /// The packed state of chunk `c`, or nil if any map is not uniform over
    /// it, the chunk is not inside one slot, or an entry is blocked.
    func chunkStateOf(_ c: GuestRegion2M) -> ChunkState? {
        let g = c.firstFrame, frames = c.frames
        guard let s = slot(g), s.frames.upperBound >= frames.upperBound, let h = hostRegion(c),
              let sept = module.chunkSnapshot(c, host: h) else { return nil }
        let pd = sept.pde, pt = sept.pte
        let leafDelta = SEPTEntry(.mapped, mapping: g, to: h.firstFrame).hfnDelta
        guard let m = uniform(mmu.mirror2M, c.only), let m4 = uniform(mmu.mirror4K, frames),
              pd.bepoch == 0, pt.bepoch == 0, pd.hfnDelta == (pd.state.isLeaf ? leafDelta : 0),
              pt.hfnDelta == (pt.state.isLeaf ? leafDelta : 0),
              let li = uniform(lpageInfo.lpage2M, c.only), let p = uniform(attributes.privateAttr, frames),
              let sh = uniform(mmu.sharedMapped, frames), let al = uniform(gmem.folioAllocated, frames),
              let o = uniform(gmem.folioOrder, frames), let rc = uniform(tdx.pamtRefcount, h.only),
              li.disallow < 255, rc < 1023, sept.inUse < 1023
        else { return nil }
        return ChunkState(mirror: m, mirror4K: m4, pde: pd.state, pte: pt.state, disallow: li.disallow,
                          inhibit2M: li.guestInhibit, isPrivate: p, shared: sh, allocated: al, order: o,
                          refcount: rc, pamtInstalled: sept.pamtInstalled, inUse: sept.inUse,
                          mirrorPD: mmu.mirrorPD.value(at: g.region1G), mirrorPDPT: mmu.mirrorPDPT.value(at: g.region512G),
                          septPD: sept.pdpte, septPDPT: sept.pml4e,
                          inhibit1G: lpageInfo.lpage1G.value(at: g.region1G).guestInhibit)
    }

    var replayAllowed: Bool { !faults.isArmed && !options.checkInvariants && !isDead }

    func snapshot() -> StepSnapshot {
        StepSnapshot(ops: ops, contextOps: contextOps, calls: module.calls, contextCalls: contextCalls,
                     counters: counters, contextCounters: contextCounters, epoch: module.tdEpoch, kicks: counters[.vcpuKicks])
    }

    /// Starts recording a chunk step; `finishChunkStep` memoises it.
    func beginChunkStep(gfn: GuestFrameNumber, key: ReplayKey) {
        stepSignature = (gfn, key, snapshot())
        poolEvents = []
        recordingPoolEvents = true
    }

    /// Memoises the step begun at `gfn` if the chunk ended uniform; returns its final key.
    func finishChunkStep(gfn: GuestFrameNumber) -> ReplayKey? {
        recordingPoolEvents = false
        guard let st = chunkStateOf(gfn.region2M) else { stepSignature = nil; return nil }
        let final = st.key
        guard let (g, sig, s0) = stepSignature, g == gfn, replayAllowed else { stepSignature = nil; return final }
        stepSignature = nil
        let memo = ChunkMemo(ops: (ops - s0.ops) - (contextOps - s0.contextOps),
                             calls: (module.calls - s0.calls) - (contextCalls - s0.contextCalls),
                             counters: (counters - s0.counters) - (contextCounters - s0.contextCounters),
                             epochDelta: module.tdEpoch - s0.epoch, kicked: counters[.vcpuKicks] > s0.kicks,
                             events: poolEvents)
        replayMemo[MemoKey(signature: sig, final: final)] = memo
        return final
    }

    /// Consecutive chunks from `c` (at most `limit`) with signature `sig`.
    func chunksSharing(_ sig: ReplayKey, fromChunk c: GuestRegion2M, limit: UInt64) -> UInt64 {
        // A step that creates an upper table or sets GUEST_INHIBIT at 1G
        // changes its neighbours' context: such a chunk replays alone.
        guard let st = ChunkState(key: sig), limit > 0 else { return 0 }
        let settled = st.mirrorPD && st.mirrorPDPT && st.septPD && st.septPDPT
            && (st.inhibit1G || options.acceptLevelPolicy != .guestInhibit)
        if !settled { return chunkStateOf(c)?.key == sig ? 1 : 0 }
        var n: UInt64 = 0
        while n < limit, chunkStateOf(c + n)?.key == sig {
            n += runSpan(fromChunk: c + n, limit: limit - n)
        }
        return n
    }

    /// How many chunks from `c` lie inside the current run of every map, the
    /// same slot and the same 1G region (so they share a signature with `c`
    /// if `c` has it).
    func runSpan(fromChunk c: GuestRegion2M, limit: UInt64) -> UInt64 {
        let g = c.firstFrame
        guard let s = slot(g) else { return 0 }
        // Only called on chunks with a signature, whose host range is aligned.
        let h = hfn(g).region2M
        let sept = module.runEnds(frame: g, chunk: c, host: h)
        var endG = min(s.frames.upperBound, g.region1G.frames.upperBound)
        for r in [mmu.mirror4K.run(containing: g).range, attributes.privateAttr.run(containing: g).range,
                  mmu.sharedMapped.run(containing: g).range, gmem.folioAllocated.run(containing: g).range,
                  gmem.folioOrder.run(containing: g).range] {
            endG = min(endG, r.upperBound)
        }
        endG = min(endG, sept.frame)
        var endC = endG.region2M
        for r in [mmu.mirror2M.run(containing: c).range, lpageInfo.lpage2M.run(containing: c).range] {
            endC = min(endC, r.upperBound)
        }
        endC = min(endC, sept.chunk)
        let hostEnd = min(tdx.pamtRefcount.run(containing: h).range.upperBound, sept.host)
        let left = hostEnd - h
        if left < endC - c { endC = c + left }
        return endC > c ? min(endC - c, limit) : 0
    }

    /// Puts chunks `[c, c + k)` into `final` and adds the memo's tallies `k`
    /// times, re-running its pool events per chunk.
    func replay(signature: ReplayKey, final: ReplayKey, fromChunk c: GuestRegion2M, count k: UInt64) -> OpCounts {
        stepSignature = nil
        guard k > 0, let memo = replayMemo[MemoKey(signature: signature, final: final)],
              let st = ChunkState(key: final), slot(c.firstFrame) != nil else { return OpCounts() }
        let context0 = contextOps
        let chunks = Range(start: c, count: k), frames = chunks.frames
        let g = c.firstFrame
        let h = hfn(g)
        let hosts = Range(start: h.region2M, count: k)
        let leaf = SEPTEntry(.mapped, mapping: g, to: h).hfnDelta
        mmu.setMirror2M(chunks, st.mirror)
        mmu.setMirror4K(frames, st.mirror4K)
        module.replaceEntries(chunks: chunks, pde: SEPTEntry(st.pde, hfnDelta: st.pde.isLeaf ? leaf : 0),
                              frames: frames, pte: SEPTEntry(st.pte, hfnDelta: st.pte.isLeaf ? leaf : 0),
                              hostRanges: hosts, pamtInstalled: st.pamtInstalled, inUse: st.inUse)
        lpageInfo.replace(chunks, LpageInfo(disallow: st.disallow, guestInhibit: st.inhibit2M))
        attributes.set(frames, private: st.isPrivate)
        mmu.mapShared(frames, st.shared)
        gmem.replace(frames, allocated: st.allocated, order: st.order)
        tdx.setRefcount(hosts, st.refcount)
        let g1 = frames.covering1G
        let g512 = frames.covering512G
        if st.mirrorPD { mmu.linkPD(g1) }
        if st.mirrorPDPT { mmu.linkPDPT(g512) }
        module.markUpperTables(pd: st.septPD ? g1 : nil, pdpt: st.septPDPT ? g512 : nil)
        if st.inhibit1G { for i in g1 { lpageInfo.setGuestInhibit(i) } }
        ops.add(memo.ops, times: k)
        module.addCalls(memo.calls, times: k)
        counters.add(memo.counters, times: k)
        module.advanceEpoch(by: memo.epochDelta * k, kicked: memo.kicked)
        for _ in 0..<k {
            for e in memo.events {
                switch e {
                case .septPage(let via): _ = allocSeptPage(viaSplitCache: via)
                case .splitTopup: _ = topUpSplitCache()
                case .dequeueGuestPair: _ = dequeueGuestPair()
                }
            }
        }
        note("replayed \(k) chunks from \(g.address) like the memoised step")
        return contextOps - context0
    }
}

/// Memo key: signature and final state together.
struct MemoKey: Hashable {
    var signature: ReplayKey
    var final: ReplayKey
}
