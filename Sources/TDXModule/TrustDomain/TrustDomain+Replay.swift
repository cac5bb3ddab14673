package import MemoryModel

/// Bulk replay support for the host model: puts ranges into a state that
/// stepping the same SEAMCALLs chunk by chunk would have produced, and adds
/// the recorded call counts. Used only by KVM's replay (`TDXVM+Replay`),
/// which tests hold equal to stepping; no real interface has these, hence
/// `package`.
extension TrustDomain {
    /// The S-EPT and PAMT state of one 2M guest chunk mapped at 2M host
    /// region `host`, when every map is uniform over it.
    package struct ChunkSnapshot: Equatable {
        package var pde: SEPTEntry
        package var pte: SEPTEntry
        package var pamtInstalled: Bool
        package var inUse: UInt32
        /// The 1G- and 512G-level entries above are NL_MAPPED.
        package var pdpte: Bool
        package var pml4e: Bool
    }

    /// The uniform state of chunk `c` (whose host frames lie in `host`), or
    /// nil if an entry map is not uniform over it or a 1G leaf maps it.
    /// - Complexity: O(log runs).
    package func chunkSnapshot(_ c: GuestRegion2M, host: HostRegion2M) -> ChunkSnapshot? {
        func uniform<K, V>(_ m: IntervalMap<K, V>, _ r: Range<K>) -> V? {
            let run = m.run(containing: r.lowerBound)
            return run.range.upperBound >= r.upperBound ? run.value : nil
        }
        guard let d = uniform(pde, c.only), let t = uniform(pte, c.frames),
              let p = uniform(pamt4K, host.only), let u = uniform(hpa4KInUse, host.only) else { return nil }
        let g = c.firstFrame
        // Under a 1G leaf (or a blocked 1G entry) the chunk's state is the
        // 1G entry's, shared with 511 other chunks: never replayed per chunk.
        let e1 = pdpte.value(at: g.region1G).state
        guard e1 == .free || e1 == .nlMapped else { return nil }
        return ChunkSnapshot(pde: d, pte: t, pamtInstalled: p, inUse: u,
                             pdpte: pdpte.value(at: g.region1G).state == .nlMapped, pml4e: pml4e.value(at: g.region512G))
    }

    /// Where the current runs of the entry maps end: the 4K run holding
    /// `frame`, the 2M run holding `chunk`, and the PAMT runs holding `host`.
    /// - Complexity: O(log runs).
    package func runEnds(frame: GuestFrameNumber, chunk: GuestRegion2M, host: HostRegion2M)
        -> (frame: GuestFrameNumber, chunk: GuestRegion2M, host: HostRegion2M) {
        (pte.run(containing: frame).range.upperBound, pde.run(containing: chunk).range.upperBound,
         min(pamt4K.run(containing: host).range.upperBound, hpa4KInUse.run(containing: host).range.upperBound))
    }

    /// Where the current runs of the 1G-level (`pdpte`) and 512G-level
    /// (`pml4e`) entry maps holding `frame` end.
    /// - Complexity: O(log runs).
    package func upperRunEnds(frame: GuestFrameNumber) -> (pd: GuestRegion1G, pdpt: GuestRegion512G) {
        (pdpte.run(containing: frame.region1G).range.upperBound, pml4e.run(containing: frame.region512G).range.upperBound)
    }

    /// Sets the 2M entries of `chunks`, the 4K entries of `frames`, and the
    /// PAMT state of `hostRanges`.
    /// - Complexity: O(log runs).
    package func replaceEntries(chunks: Range<GuestRegion2M>, pde e2: SEPTEntry, frames: Range<GuestFrameNumber>, pte e4: SEPTEntry,
                                hostRanges: Range<HostRegion2M>, pamtInstalled: Bool, inUse: UInt32) {
        pde.assign(chunks, e2)
        pte.assign(frames, e4)
        pamt4K.assign(hostRanges, pamtInstalled)
        hpa4KInUse.assign(hostRanges, inUse)
    }

    /// Marks the 1G-level (`pd`) and 512G-level (`pdpt`) entries NL_MAPPED.
    package func markUpperTables(pd: Range<GuestRegion1G>?, pdpt: Range<GuestRegion512G>?) {
        if let pd { pdpte.assign(pd, SEPTEntry(.nlMapped)) }
        if let pdpt { pml4e.assign(pdpt, true) }
    }

    package func addCalls(_ c: SEAMCALLCounts, times k: UInt64) { calls.add(c, times: k) }

    /// The status of TDG.MEM.PAGE.ACCEPT at `level` when `acceptResult`
    /// does not read the TD's state for it: 1G, which this module refuses
    /// (TDX_OPERAND_INVALID) before any walk, unless it maps private memory
    /// at 1G.
    package func stateIndependentAcceptStatus(level: PageLevel) -> TDXStatus? {
        level == .size1G && !features.privateMappings1G ? .operandInvalid : nil
    }

    /// `count` TDG.MEM.PAGE.ACCEPT calls answered with `status`.
    package func recordAccepts(_ status: TDXStatus, count: UInt64) { calls.record(.tdgMemPageAccept, status, count) }

    /// TDH.PHYMEM.PAMT.ADD on every 2M range of `ranges`, in order, as
    /// `pamtAdd(range2M:)` on each would do; returns how many failed with
    /// TDX_HPA_RANGE_NOT_FREE (their PAMT_4K was already installed).
    /// - Complexity: O(log runs + runs in `ranges`).
    package func pamtAdd(ranges: Range<HostRegion2M>) -> UInt64 {
        let n = ranges.upperBound - ranges.lowerBound
        let installed = pamt4K.measure(in: ranges) { $0 }
        pamt4K.assign(ranges, true)
        calls.record(.phymemPamtAdd, .success, n - installed)
        calls.record(.phymemPamtAdd, .hpaRangeNotFree, installed)
        return installed
    }

    /// `n` successful TRACKs, each followed (if `kicked`) by a kick that puts
    /// every running vCPU in the new epoch.
    package func advanceEpoch(by n: UInt64, kicked: Bool) {
        tdEpoch += n
        if kicked { for v in vcpuEpoch.indices where vcpuEpoch[v] != nil { vcpuEpoch[v] = tdEpoch } }
    }
}

/// Bulk zap support: a range of private leaves removed as KVM's
/// `tdx_sept_remove_private_spte()` removes each (TDH.MEM.RANGE.BLOCK,
/// `tdx_track()`'s TDH.MEM.TRACK and kick, TDH.MEM.PAGE.REMOVE,
/// TDH.PHYMEM.PAGE.WBINVD), in one change of the maps. Used only by KVM's
/// bulk zap (`TDXVM.zapLeaves`), which tests hold equal to stepping.
extension TrustDomain {
    /// A run of leaves with one state and one host offset: its guest frames
    /// (for 2M leaves, whole 2M ranges) and the host frame of its first page.
    package struct LeafRun: Equatable {
        package var frames: Range<GuestFrameNumber>
        package var firstHFN: HostFrameNumber
    }

    /// The leaves at `level` (4K or 2M) over `frames`, by runs, when each
    /// would be removed by BLOCK, TRACK, REMOVE with every status success
    /// and no retry: no vCPU holds a lock (no BUSY), every vCPU in the TD
    /// runs in the current epoch (TRACK's TDX_PREVIOUS_TLB_EPOCH_BUSY cannot
    /// happen), the walk reaches the level everywhere, and every entry is
    /// an unblocked leaf (MAPPED or PENDING). Nil otherwise (the caller steps).
    /// - Complexity: O(log runs + runs in `frames`).
    package func bulkZapRuns(_ frames: Range<GuestFrameNumber>, level: PageLevel) -> [LeafRun]? {
        guard level != .size1G, !frames.isEmpty, holds.isEmpty,
              vcpuEpoch.allSatisfy({ $0 == nil || $0 == tdEpoch }),
              pml4e.allSatisfy(in: frames.covering512G, { $0 }),
              pdpte.allSatisfy(in: frames.covering1G, { $0.state == .nlMapped }) else { return nil }
        func removable(_ e: SEPTEntry) -> Bool { e.state == .mapped || e.state == .pending }
        var out: [LeafRun] = []
        if level == .size4K {
            guard pde.allSatisfy(in: frames.covering2M, { $0.state == .nlMapped }) else { return nil }
            for (r, e) in pte.runs(in: frames) {
                guard removable(e) else { return nil }
                out.append(LeafRun(frames: r, firstHFN: e.hfn(at: r.lowerBound)))
            }
        } else {
            guard frames.lowerBound.isAligned(to: .size2M), frames.upperBound.isAligned(to: .size2M) else { return nil }
            for (r, e) in pde.runs(in: frames.covering2M) {
                guard removable(e) else { return nil }
                out.append(LeafRun(frames: r.frames, firstHFN: e.hfn(at: r.lowerBound.firstFrame)))
            }
        }
        return out
    }

    /// Removes every leaf of `runs` (from `bulkZapRuns` at `level`, the
    /// TD unchanged since) as stepping BLOCK, TRACK, kick, REMOVE and WBINVD
    /// over each leaf in address order leaves the TD: the entries FREE, their
    /// host-priority bits clear (each SEAMCALL locked the entry), a 2M
    /// entry's ACCEPT_COUNTER reset, a 4K page's PAMT in-use count lowered,
    /// TD_EPOCH advanced once per leaf with every vCPU in the TD kicked into
    /// it, and the calls counted as stepping counts them.
    /// Returns the number of leaves removed.
    /// - Complexity: O(runs × log runs + 2M host ranges with differing counts).
    @discardableResult
    package func removeLeavesInBulk(_ runs: [LeafRun], level: PageLevel) -> UInt64 {
        var k: UInt64 = 0
        for run in runs {
            if level == .size4K {
                k += run.frames.length
                pte.assign(run.frames, .free)
                if !hostPriority4K.allSatisfy(in: run.frames, { !$0 }) { hostPriority4K.assign(run.frames, false) }
                releaseInUse(Range(start: run.firstHFN, count: run.frames.length))
            } else {
                let chunks = run.frames.covering2M
                k += chunks.upperBound - chunks.lowerBound
                pde.assign(chunks, .free)
                if !hostPriority2M.allSatisfy(in: chunks, { !$0 }) { hostPriority2M.assign(chunks, false) }
                if !acceptCounter.allSatisfy(in: chunks, { $0 == 0 }) { acceptCounter.assign(chunks, 0) }
            }
        }
        calls.record(.memRangeBlock, .success, k)
        calls.record(.memTrack, .success, k)
        calls.record(.memPageRemove, .success, k)
        calls.record(.phymemPageWbinvd, .success, k * level.pages)
        holds.removeAll()
        advanceEpoch(by: k, kicked: true)
        return k
    }

    /// `adjustInUse(hfn:pages: 1, by: -1)` of every host frame of `hosts`,
    /// by 2M host range (the count never goes below 0, as one page at a
    /// time never takes it below 0).
    /// - Complexity: O(log runs + runs of the in-use map over `hosts`).
    func releaseInUse(_ hosts: Range<HostFrameNumber>) {
        guard !hosts.isEmpty else { return }
        func lower(_ r: Range<HostRegion2M>, by n: UInt64) {
            for (rr, v) in hpa4KInUse.runs(in: r) { hpa4KInUse.assign(rr, UInt64(v) > n ? v - UInt32(n) : 0) }
        }
        let first = hosts.lowerBound.region2M, last = (hosts.upperBound - 1).region2M
        if first == last { lower(first.only, by: hosts.length); return }
        lower(first.only, by: first.frames.upperBound - hosts.lowerBound)
        if first + 1 < last { lower((first + 1)..<last, by: PageLevel.size2M.pages) }
        lower(last.only, by: hosts.upperBound - last.firstFrame)
    }
}
