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
    /// `kick()` calls so far (`TDXVM.kickCalls`).
    var kickCalls: UInt64
    var upperOps: OpCounts
    var upperCalls: SEAMCALLCounts
    var upperCounters: KVMCounters
    /// Failures fired before the step (`FaultPlan.firedCount`).
    var faultsFired: Int
}

/// What stepping one chunk from a signature did, besides its final state:
/// the chunk's own work (without any context work), the context work it
/// did because its 1G or 512G region lacked a table or GUEST_INHIBIT
/// (`upper*`), and its pool events in order.
struct ChunkMemo {
    var ops: OpCounts
    var calls: SEAMCALLCounts
    var counters: KVMCounters
    var epochDelta: UInt64
    /// `kick()` calls the step made (each `tdx_track()`, and each BUSY
    /// retry of `tdh_do_no_vcpus()`). How many vCPUs each reaches is context
    /// (the vCPUs in guest mode when it runs): replay multiplies.
    var kickCalls: UInt64
    var events: [PoolEvent]
    var upperOps: OpCounts
    var upperCalls: SEAMCALLCounts
    var upperCounters: KVMCounters
    /// The host-trace exits the step made in its chunk (kind, level,
    /// count), repeated per replayed chunk (`HostTrace`).
    var trace: [TraceUnit] = []

    /// Every pool event takes a page outside the split path.
    var plainEvents: Bool { events.allSatisfy(\.isPlainPage) }

    /// True if `other` did the same work in its chunk: only the context
    /// work (upper tables, the 1G pre-check's lock, pool pages) may differ.
    func sameChunkWork(as other: ChunkMemo) -> Bool {
        ops == other.ops && calls == other.calls && counters == other.counters
            && epochDelta == other.epochDelta && kickCalls == other.kickCalls
    }
}

/// One kind of host-trace exit a memoised chunk step made, and how many.
struct TraceUnit: Equatable {
    var kind: HostTraceKind
    var level: PageLevel?
    var exits: UInt64

    /// The records of one step, summed per kind and level in first-seen order.
    static func units(_ records: [HostTraceRecord]) -> [TraceUnit] {
        var out: [TraceUnit] = []
        for r in records {
            if let i = out.firstIndex(where: { $0.kind == r.kind && $0.level == r.level }) { out[i].exits += r.exits }
            else { out.append(TraceUnit(kind: r.kind, level: r.level, exits: r.exits)) }
        }
        return out
    }
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
    // Context: the 1G-level and 512G-level maps of the chunk's regions.
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
    /// The context bits of `key` that belong to the 512G region (mirror
    /// PDPT, S-EPT PML4E) and to the 1G region (mirror PD, S-EPT PDPTE,
    /// GUEST_INHIBIT at 1G). Bit fields of the packed key, not page shifts.
    static let context512G: UInt64 = 1 << 1 | 1 << 3
    static let context1G: UInt64 = 1 << 0 | 1 << 2 | 1 << 4

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
///
/// Context-dependent work is recomputed for the whole span, not per chunk:
/// - the PD and PDPT links (and the 1G pre-check's write lock) happen once
///   per 1G or 512G region the span enters without them. A span may run on
///   into such regions when a step from each context a chunk meets there
///   (first of its 512G region, first of its 1G region, any other) has been
///   memoised and did the same chunk work; each region's first chunk then
///   adds its memo's context work, counted per region arithmetically;
/// - the S-EPT pool pages are a bump allocator: pages taken outside the
///   split path are taken at once, with a PAMT.ADD per 2M pool range they
///   open; a sequence with split-cache events is run on the pool's state
///   (its offset in a 2M range, the cache's fill) until that state repeats,
///   and the repeating part is multiplied (`replayPoolEvents`).
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
    /// it, the chunk is not inside one slot, an entry is blocked, or a 1G
    /// leaf maps it (a 1G region is one entry: stepped, never replayed).
    func chunkStateOf(_ c: GuestRegion2M) -> ChunkState? {
        let g = c.firstFrame, frames = c.frames
        guard let s = slot(g), s.frames.upperBound >= frames.upperBound, let h = hostRegion(c),
              !mmu.mirror1G.value(at: g.region1G), let sept = module.chunkSnapshot(c, host: h) else { return nil }
        let pd = sept.pde, pt = sept.pte
        let leafDelta = SEPTEntry(.mapped, mapping: g, to: h.firstFrame).hfnDelta
        guard let m = uniform(mmu.mirror2M, c.only), let m4 = uniform(mmu.mirror4K, frames),
              pd.bepoch == 0, pt.bepoch == 0, pd.hfnDelta == (pd.state.isLeaf ? leafDelta : 0),
              pt.hfnDelta == (pt.state.isLeaf ? leafDelta : 0),
              let li = uniform(lpageInfo.lpage2M, c.only), let p = uniform(attributes.privateAttr, frames),
              let sh = uniform(mmu.sharedMapped, frames), let al = uniform(gmem.folioAllocated, frames),
              let o = uniform(gmem.folioOrder, frames), let rc = uniform(tdx.pamtRefcount, h.only),
              li.disallow < 255, rc < 1023, sept.inUse < 1023,
              // A frame the host refuses to AUG (`refuse-aug`) answers unlike its neighbours: its chunk is stepped.
              uniform(faults.refusedAUG, frames) == false
        else { return nil }
        let inhibit1G = lpageInfo.lpage1G.value(at: g.region1G).guestInhibit
        // Where a fault may still map the whole 1G region, what a step does
        // depends on the region beyond the chunk (its attributes, its
        // `disallow_lpage`): stepped, never replayed.
        if module.features.privateMappings1G && o >= UInt8(PageLevel.size1G.frameShift) && !inhibit1G { return nil }
        return ChunkState(mirror: m, mirror4K: m4, pde: pd.state, pte: pt.state, disallow: li.disallow,
                          inhibit2M: li.guestInhibit, isPrivate: p, shared: sh, allocated: al, order: o,
                          refcount: rc, pamtInstalled: sept.pamtInstalled, inUse: sept.inUse,
                          mirrorPD: mmu.mirrorPD.value(at: g.region1G), mirrorPDPT: mmu.mirrorPDPT.value(at: g.region512G),
                          septPD: sept.pdpte, septPDPT: sept.pml4e,
                          inhibit1G: inhibit1G)
    }

    var replayAllowed: Bool { !faults.isArmed && !options.checkInvariants && !isDead && !module.hasEntryLockState }

    /// Whether the guest's accept of chunk state `st` may replay: as
    /// `replayAllowed`, except that failures armed only at conversion
    /// points (`FaultPoint.reachableFromPrivateAccept`) cannot fire while a
    /// private chunk is accepted, so they do not stop its replay. (Before,
    /// any armed failure, even one the accepts never reach, made a host
    /// file step every 4K page of every accept after it.)
    func acceptReplayAllowed(_ st: ChunkState) -> Bool {
        guard !options.checkInvariants, !isDead, !module.hasEntryLockState else { return false }
        return !faults.isArmed || (st.isPrivate && !faults.isArmedOnPrivateAccept)
    }

    func snapshot() -> StepSnapshot {
        StepSnapshot(ops: ops, contextOps: contextOps, calls: module.calls, contextCalls: contextCalls,
                     counters: counters, contextCounters: contextCounters, epoch: module.tdEpoch, kickCalls: kickCalls,
                     upperOps: upperOps, upperCalls: upperCalls, upperCounters: upperCounters,
                     faultsFired: faults.firedCount)
    }

    /// Starts recording a chunk step; `finishChunkStep` memoises it.
    func beginChunkStep(gfn: GuestFrameNumber, key: ReplayKey) {
        stepSignature = (gfn, key, snapshot())
        poolEvents = []
        recordingPoolEvents = true
        if hostTrace != nil { hostTrace!.capture = [] }
    }

    /// Memoises the step begun at `gfn` if the chunk ended uniform; returns
    /// its final key (nil if the chunk is not uniform) and whether this step
    /// was memoised. A caller keeping its own memo of the step (the guest's
    /// acceptor) must keep it only when this step was: a replay needs the
    /// host's memo of the same step behind it.
    func finishChunkStep(gfn: GuestFrameNumber) -> (final: ReplayKey, memoised: Bool)? {
        recordingPoolEvents = false
        let captured = hostTrace?.capture ?? []
        if hostTrace != nil { hostTrace!.capture = nil }
        guard let st = chunkStateOf(gfn.region2M) else { stepSignature = nil; return nil }
        let final = st.key
        // Memoised only if the step was allowed when it began, the VM is
        // alive and no injected failure fired during it.
        guard let (g, sig, s0) = stepSignature, g == gfn, !options.checkInvariants, !isDead,
              faults.firedCount == s0.faultsFired
        else { stepSignature = nil; return (final, false) }
        stepSignature = nil
        let memo = ChunkMemo(ops: (ops - s0.ops) - (contextOps - s0.contextOps),
                             calls: (module.calls - s0.calls) - (contextCalls - s0.contextCalls),
                             counters: (counters - s0.counters) - (contextCounters - s0.contextCounters),
                             epochDelta: module.tdEpoch - s0.epoch, kickCalls: kickCalls - s0.kickCalls,
                             events: poolEvents, upperOps: upperOps - s0.upperOps, upperCalls: upperCalls - s0.upperCalls,
                             upperCounters: upperCounters - s0.upperCounters, trace: TraceUnit.units(captured))
        let key = MemoKey(signature: sig, final: final)
        if replayMemo.updateValue(memo, forKey: key) == nil { memoFinals[sig, default: []].append(final) }
        return (final, true)
    }

    /// Consecutive chunks from `c` (at most `limit`) that replay like a
    /// chunk with signature `sig`: the same chunk state, and for each
    /// context a chunk meets (see `variants`) a memoised step that did the
    /// same chunk work.
    /// - Complexity: O(runs of the maps in the span + memoised finals).
    func chunksSharing(_ sig: ReplayKey, fromChunk c: GuestRegion2M, limit: UInt64) -> UInt64 {
        guard let st = ChunkState(key: sig), limit > 0 else { return 0 }
        let finals = memoFinals[sig] ?? []
        guard !finals.isEmpty else { return chunksSharingUnmemoised(sig, st, fromChunk: c, limit: limit) }
        var n: UInt64 = 0
        while n < limit, let cur = chunkStateOf(c + n)?.key, cur.state == sig.state {
            let len = runSpan(fromChunk: c + n, limit: limit - n)
            guard len > 0 else { break }
            if replays(Range(start: c + n, count: len), raw: cur.context, like: sig, finals: finals, spanStart: c) {
                n += len
                continue
            }
            // The run's first chunk may still replay (a region's later chunks lack a memo).
            if replays(Range(start: c + n, count: 1), raw: cur.context, like: sig, finals: finals, spanStart: c) { n += 1 }
            break
        }
        return n
    }

    /// Without a memo for `sig`, only chunks whose neighbours' context no
    /// step can change are counted (a step that creates an upper table or
    /// sets GUEST_INHIBIT at 1G changes its region's context: such a chunk
    /// is counted alone).
    func chunksSharingUnmemoised(_ sig: ReplayKey, _ st: ChunkState, fromChunk c: GuestRegion2M, limit: UInt64) -> UInt64 {
        let settled = st.mirrorPD && st.mirrorPDPT && st.septPD && st.septPDPT
            && (st.inhibit1G || options.acceptLevelPolicy != .guestInhibit)
        if !settled { return chunkStateOf(c)?.key == sig ? 1 : 0 }
        var n: UInt64 = 0
        while n < limit, chunkStateOf(c + n)?.key == sig {
            let len = runSpan(fromChunk: c + n, limit: limit - n)
            guard len > 0 else { break }
            n += len
        }
        return n
    }

    /// True if every chunk of `run` (one chunk state, raw context `raw`) of
    /// a span starting at `spanStart` replays like `sig` for every memoised final.
    func replays(_ run: Range<GuestRegion2M>, raw: UInt64, like sig: ReplayKey, finals: [ReplayKey], spanStart: GuestRegion2M) -> Bool {
        finals.allSatisfy { f in
            guard let m = replayMemo[MemoKey(signature: sig, final: f)] else { return false }
            return variants(of: sig, final: f, run: run, raw: raw, spanStart: spanStart).allSatisfy { v in
                guard v.count > 0, v.key != sig else { return true }
                guard m.plainEvents, let mv = replayMemo[MemoKey(signature: v.key, final: f)] else { return false }
                return mv.plainEvents && mv.sameChunkWork(as: m)
            }
        }
    }

    /// The contexts the chunks of `run` meet when a span from `spanStart`
    /// is stepped in order, each chunk ending in `final`, with how many
    /// chunks meet each: the first chunk of the span in its 512G region
    /// sees the raw context; the first in its 1G region sees its 512G
    /// region as an earlier step left it (`final`'s) and its own 1G region
    /// raw; every other chunk sees `final`'s context.
    /// - Complexity: O(1).
    func variants(of sig: ReplayKey, final: ReplayKey, run: Range<GuestRegion2M>, raw: UInt64,
                  spanStart: GuestRegion2M) -> [(key: ReplayKey, count: UInt64)] {
        let len = run.upperBound - run.lowerBound
        let first512G = Self.firstsInRegion(run, regionFrames: GuestRegion512G.frames, spanStart: spanStart)
        let first1G = Self.firstsInRegion(run, regionFrames: PageLevel.size1G.pages, spanStart: spanStart)
        let f = final.context
        return [(ReplayKey(state: sig.state, context: raw), first512G),
                (ReplayKey(state: sig.state, context: raw & ~ChunkState.context512G | f & ChunkState.context512G), first1G - first512G),
                (ReplayKey(state: sig.state, context: f), len - first1G)]
    }

    /// Chunks of `run` that are the first of a span from `spanStart` in a
    /// region of `regionFrames` frames: the span's first chunk and each
    /// chunk that starts a region.
    /// - Complexity: O(1).
    static func firstsInRegion(_ run: Range<GuestRegion2M>, regionFrames n: UInt64, spanStart s: GuestRegion2M) -> UInt64 {
        let a = run.lowerBound.firstFrame.value, b = run.upperBound.firstFrame.value
        let starts = divRoundUp(b, n) - divRoundUp(a, n)
        return starts + (run.contains(s) && !s.firstFrame.isMultiple(of: n) ? 1 : 0)
    }

    /// How many chunks from `c` lie inside the current run of every map
    /// (the chunk's own maps and the 1G- and 512G-level context maps) and
    /// the same slot, so that they have `c`'s state and raw context.
    /// - Complexity: O(log runs).
    func runSpan(fromChunk c: GuestRegion2M, limit: UInt64) -> UInt64 {
        let g = c.firstFrame
        guard let s = slot(g) else { return 0 }
        // Only called on chunks with a signature, whose host range is aligned.
        let h = hfn(g).region2M
        let sept = module.runEnds(frame: g, chunk: c, host: h)
        var endG = s.frames.upperBound
        for r in [mmu.mirror4K.run(containing: g).range, attributes.privateAttr.run(containing: g).range,
                  mmu.sharedMapped.run(containing: g).range, gmem.folioAllocated.run(containing: g).range,
                  gmem.folioOrder.run(containing: g).range, faults.refusedAUG.run(containing: g).range] {
            endG = min(endG, r.upperBound)
        }
        endG = min(endG, sept.frame)
        var endC = endG.region2M
        for r in [mmu.mirror2M.run(containing: c).range, lpageInfo.lpage2M.run(containing: c).range] {
            endC = min(endC, r.upperBound)
        }
        endC = min(endC, sept.chunk)
        // Context runs end at region boundaries; a run reaching past endC's
        // region (the last run reaches `.highest`) does not bound it.
        let upper = module.upperRunEnds(frame: g)
        for e in [mmu.mirrorPD.run(containing: g.region1G).range.upperBound, upper.pd,
                  mmu.mirror1G.run(containing: g.region1G).range.upperBound,
                  lpageInfo.lpage1G.run(containing: g.region1G).range.upperBound] where e <= endC.region1G {
            endC = min(endC, e.firstFrame.region2M)
        }
        for e in [mmu.mirrorPDPT.run(containing: g.region512G).range.upperBound, upper.pdpt]
            where e <= endC.firstFrame.region512G {
            endC = min(endC, e.firstFrame.region2M)
        }
        let hostEnd = min(tdx.pamtRefcount.run(containing: h).range.upperBound, sept.host)
        let left = hostEnd - h
        if left < endC - c { endC = c + left }
        return endC > c ? min(endC - c, limit) : 0
    }

    /// Puts chunks `[c, c + k)` into `final` and adds the memo's chunk work
    /// `k` times, the context work of each region the span enters without
    /// its tables once per such region, and the pool events of every chunk.
    /// Returns the context operations, or nil, changing nothing, when no
    /// step from `signature` to `final` is memoised (`forgetReplaySteps()`
    /// dropped it, or the step that left `final` was not memoised): the
    /// caller steps the chunks instead. (Before, it returned no operations
    /// and changed nothing while the guest charged its own memo, so a guest
    /// memo that outlived the host's made replay apply no host state at all.)
    /// - Complexity: O(runs of the maps in the span), independent of `k`.
    func replay(signature: ReplayKey, final: ReplayKey, fromChunk c: GuestRegion2M, count k: UInt64) -> OpCounts? {
        guard k > 0, let memo = replayMemo[MemoKey(signature: signature, final: final)],
              let st = ChunkState(key: final), slot(c.firstFrame) != nil else { return nil }
        stepSignature = nil
        let context0 = contextOps
        // The contexts the chunks meet, read before anything changes.
        var plan: [(key: ReplayKey, count: UInt64)] = []
        var n: UInt64 = 0
        while n < k, let cur = chunkStateOf(c + n)?.key {
            let len = runSpan(fromChunk: c + n, limit: k - n)
            guard len > 0 else { break }
            plan += variants(of: signature, final: final, run: Range(start: c + n, count: len), raw: cur.context, spanStart: c)
            n += len
        }
        if n < k { plan.append((signature, k - n)) }
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
        if st.inhibit1G { lpageInfo.setGuestInhibit(g1) }
        ops.add(memo.ops, times: k)
        module.addCalls(memo.calls, times: k)
        counters.add(memo.counters, times: k)
        module.advanceEpoch(by: memo.epochDelta * k, kicked: memo.kickCalls > 0)
        // Each kick reaches the vCPUs in guest mode now (context, like the pool's pages).
        addKicks(memo.kickCalls * k * UInt64(vcpusInGuestMode))
        var plainPages: UInt64 = 0
        var plain = true
        for (v, m) in plan where m > 0 {
            let mv = v == signature ? memo : replayMemo[MemoKey(signature: v, final: final)] ?? memo
            addUpperWork(mv, times: m)
            if mv.plainEvents { plainPages += UInt64(mv.events.count) * m } else { plain = false }
        }
        // chunksSharing spans other contexts only with plain events, so a
        // sequence with split-cache events is the signature's own, k times.
        if plain { takeSeptPages(plainPages) } else { replayPoolEvents(memo.events, times: k) }
        for u in memo.trace { hostTrace?.add(u.kind, level: u.level, frames: frames, exits: u.exits * k) }
        replayedChunks += k
        note("replayed \(k) chunks from \(g.address) like the memoised step")
        return contextOps - context0
    }

    /// Adds a memo's context work (upper tables, the pre-check's lock) `m` times.
    func addUpperWork(_ memo: ChunkMemo, times m: UInt64) {
        ops.add(memo.upperOps, times: m); contextOps.add(memo.upperOps, times: m); upperOps.add(memo.upperOps, times: m)
        module.addCalls(memo.upperCalls, times: m)
        contextCalls.add(memo.upperCalls, times: m); upperCalls.add(memo.upperCalls, times: m)
        counters.add(memo.upperCounters, times: m)
        contextCounters.add(memo.upperCounters, times: m); upperCounters.add(memo.upperCounters, times: m)
    }

    /// Runs the pool events of one chunk `k` times, as `allocSeptPage`,
    /// `topUpSplitCache` and `dequeueGuestPair` would in that order. The
    /// pool's state between chunks is its offset in a 2M pool range and
    /// the split cache's fill; once that state repeats, the chunks between
    /// the two visits repeat too, and whole repetitions are added at once.
    /// - Complexity: O(events × 512 × cache states), independent of `k`,
    ///   plus O(events) per chunk while the buddy placement's isolated free
    ///   pages last (their phases never repeat): O(`host-free-4k`) at most.
    func replayPoolEvents(_ events: [PoolEvent], times k: UInt64) {
        guard k > 0, !events.isEmpty else { return }
        let dpamt = module.features.dynamicPAMT, minCache = tdx.minSplitCache
        // The allocator's phase (offset in its 2M range, or an isolated
        // page's number, which never repeats) decides which pages open a range.
        let start = tdx.allocatorTaken
        var pool = start, cache = tdx.splitCache, topups: UInt64 = 0
        var seen: [PoolPhase: (chunk: UInt64, pool: UInt64, topups: UInt64)] = [:]
        var i: UInt64 = 0
        var skipped = false
        while i < k {
            if !skipped {
                let a = tdx.allocatorPhase(pool)
                let phase = PoolPhase(isolated: a.isolated, offset: a.offset, cache: cache)
                if let prev = seen[phase] {
                    // Chunks prev.chunk ..< i repeat from here on.
                    let period = i - prev.chunk, reps = (k - i) / period
                    pool += reps * (pool - prev.pool)
                    topups += reps * (topups - prev.topups)
                    i += reps * period
                    skipped = true
                    continue
                }
                seen[phase] = (i, pool, topups)
            }
            for e in events {
                switch e {
                case .septPage(let via):
                    if dpamt && via && tdx.allocatorPageOpensRange(pool) { cache -= TrustDomain.dpamtEntryPages }
                    pool += 1
                case .upperTablePage: pool += 1
                case .splitTopup:
                    if cache < minCache { cache = minCache; topups += 1 }
                case .dequeueGuestPair:
                    if dpamt { cache -= TrustDomain.dpamtEntryPages }
                }
            }
            i += 1
        }
        let opened = tdx.takePoolPages(pool - start)
        tdx.setSplitCache(cache)
        pamtAddPoolRanges(opened)
        counters.bump(.splitCacheTopups, topups)
        contextCounters.bump(.splitCacheTopups, topups)
    }
}

/// The pool's state between two chunks' events (`replayPoolEvents`).
struct PoolPhase: Hashable {
    var isolated: Bool
    var offset: UInt64
    var cache: UInt64
}

/// Memo key: signature and final state together.
struct MemoKey: Hashable {
    var signature: ReplayKey
    var final: ReplayKey
}
