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
