import MemoryModel
import TDXModule

/// The host's invariants (issue 4, section 6), each naming the rule it holds.
extension TDXVM {
    /// Checks every invariant and returns the violations (empty when all
    /// hold), without trapping, so that a checker can collect them.
    /// Violations are also flagged as broken outcomes (what
    /// `--check-invariants` reports).
    /// - Complexity: O(runs) over every map.
    @discardableResult
    package func checkInvariants() -> [String] {
        var v: [String] = []
        // A bugged VM is dead with its mirror and S-EPT as the failure left
        // them: after a failed split the mirror already holds the 4K table
        // (`tdp_mmu_set_spte()` writes it before `split_external_spte()`).
        let agreementHolds: Bool = { if case .vmBugged = outcome { return false }; return true }()
        check1GLeaves(&v, agreementHolds: agreementHolds)
        // One pass over the mirror's 2M entries.
        for (r, m) in mmu.mirror2M.runs(in: .lowest..<GuestRegion2M.highestIndexed) {
            let frames = r.frames
            // Mirror and S-EPT agree at 2M.
            if agreementHolds { module.forEach2MEntry(in: r) { rr, e in
                let ok: Bool
                switch m {
                case .none: ok = e.state == .free
                case .leaf: ok = e.state.isLeaf && !e.state.isBlocked
                case .table: ok = e.state == .nlMapped
                }
                if !ok { v.append("mirror \(m) but S-EPT \(e.state) at \(rr.lowerBound.firstFrame.address)") }
            } }
            switch m {
            case .none: continue
            case .table:
                // Mirror and S-EPT agree at 4K inside tables.
                if agreementHolds { mmu.mirror4K.forEachRun(in: frames) { rr, present in
                    module.forEach4KEntry(in: rr) { r4, e in
                        if present != (e.state.isLeaf && !e.state.isBlocked) {
                            v.append("mirror 4K \(present) but S-EPT \(e.state) at \(r4.lowerBound.address)")
                        }
                    }
                } }
            case .leaf:
                // No mapping larger than its folio (or contiguous range under multi-folio).
                if let c = r.first(where: { gmemMaxLevel($0.firstFrame) < .size2M }) {
                    v.append("2M mapping at \(c.firstFrame.address) larger than its folio")
                }
                // No private mapping of shared memory.
                if !attributes.allPrivate(frames) { v.append("2M private mapping over shared memory at \(frames.lowerBound.address)") }
                // No page mapped at two levels.
                if mmu.mirror4K.measure(in: frames, where: { $0 }) > 0 { v.append("frames under a 2M leaf also mapped at 4K at \(frames.lowerBound.address)") }
                if module.used4KEntries(in: frames) > 0 { v.append("S-EPT 4K entries under a 2M leaf at \(frames.lowerBound.address)") }
            }
            // DPAMT: refcount equals the 4K private mappings in each guest 2M range.
            guard module.features.dynamicPAMT else { continue }
            for c in r {
                let g = c.firstFrame
                guard slot(g) != nil else { continue }
                // The refcount is kept per host region: look it up through the
                // guest frame's backing, never by the guest number itself.
                let host = hfn(g).region2M
                let want = m == .table ? UInt32(mmu.mirror4K.measure(in: c.frames) { $0 }) : 0
                let have = tdx.pamtRefcount.value(at: host)
                if want != have { v.append("PAMT refcount \(have) but \(want) 4K mappings in \(g.address)"); break }
                if want > 0 && !module.isPAMT4KInstalled(host) { v.append("4K mappings without PAMT_4K at \(g.address)"); break }
            }
        }
        // DPAMT: every 2M host range holding an S-EPT or control page has its
        // PAMT_4K (tdx_pamt_get() ran when the page opened the range).
        if module.features.dynamicPAMT {
            for r in tdx.allocatorRanges where module.pamt4KInstalled(in: r) != r.upperBound - r.lowerBound {
                v.append("S-EPT or control pages in \(r.upperBound - r.lowerBound - module.pamt4KInstalled(in: r)) 2M host ranges without PAMT_4K")
            }
        }
        // In place, a private page never keeps a host reference: the
        // conversion to private refuses while one is held.
        gmem.hostRefs.forEachRun(in: .lowest ..< .highest) { r, refs in
            if refs > 0, attributes.privateAttr.measure(in: r, where: { $0 }) > 0 {
                v.append("host reference on a private page in \(r.lowerBound.address)+\(r.count)")
            }
        }
        // Split cache never negative (it is unsigned; a wrap shows as huge).
        if tdx.splitCache > 1 << 40 { v.append("split cache underflow") }
        for s in v { flag("invariant: \(s)") }
        return v
    }

    /// The 1G level (a module with 1G private mappings): a mirror 1G leaf
    /// is exactly an unblocked S-EPT 1G leaf, over a 1G folio, all private,
    /// with nothing mapped below it in either tree; a linked PD is exactly
    /// an NL_MAPPED 1G entry.
    func check1GLeaves(_ v: inout [String], agreementHolds: Bool) {
        if agreementHolds {
            module.forEach1GEntry(in: .lowest ..< .highest) { r, e in
                for (rr, leaf) in mmu.mirror1G.runs(in: r) {
                    let ok = leaf ? e.state.isLeaf && !e.state.isBlocked : !e.state.isLeaf
                    if !ok { v.append("mirror 1G leaf \(leaf) but S-EPT \(e.state) at \(rr.lowerBound.firstFrame.address)"); return }
                }
            }
        }
        for (r, leaf) in mmu.mirror1G.runs(in: .lowest ..< .highest) where leaf {
            let frames = r.lowerBound.firstFrame..<r.upperBound.firstFrame
            if let g = r.first(where: { gmemMaxLevel($0.firstFrame) != .size1G }) {
                v.append("1G mapping at \(g.firstFrame.address) larger than its folio")
            }
            if !attributes.allPrivate(frames) { v.append("1G private mapping over shared memory at \(frames.lowerBound.address)") }
            if mmu.mirrorPD.measure(in: r, where: { $0 }) > 0
                || mmu.mirror2M.measure(in: frames.covering2M, where: { $0 != .none }) > 0
                || module.used4KEntries(in: frames) > 0 {
                v.append("frames under a 1G leaf also mapped at 2M or 4K at \(frames.lowerBound.address)")
            }
        }
    }
}
