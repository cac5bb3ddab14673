import MemoryModel
import TDXModule

/// The host's invariants (issue 4, section 6), each naming the rule it holds.
extension TDXVM {
    /// Checks every invariant and returns the violations (empty when all
    /// hold). Violations are also flagged as broken outcomes.
    /// - Complexity: O(runs) over every map.
    @discardableResult
    public func checkInvariants() -> [String] {
        var v: [String] = []
        // One pass over the mirror's 2M entries.
        for (r, m) in mirror2M.runs(in: 0..<(UInt64.max >> 9)) {
            let frames = (r.lowerBound << 9)..<(r.upperBound << 9)
            // Mirror and S-EPT agree at 2M.
            module.pde.forEachRun(in: r) { rr, e in
                let ok: Bool
                switch m {
                case .none: ok = e.state == .free
                case .leaf: ok = e.state.isLeaf && !e.state.isBlocked
                case .table: ok = e.state == .nlMapped
                }
                if !ok { v.append("mirror \(m) but S-EPT \(e.state) at \(hex16(rr.lowerBound << 21))") }
            }
            switch m {
            case .none: continue
            case .table:
                // Mirror and S-EPT agree at 4K inside tables.
                mirror4K.forEachRun(in: frames) { rr, present in
                    module.pte.forEachRun(in: rr) { r4, e in
                        if present != (e.state.isLeaf && !e.state.isBlocked) {
                            v.append("mirror 4K \(present) but S-EPT \(e.state) at \(hex16(r4.lowerBound << 12))")
                        }
                    }
                }
            case .leaf:
                // No mapping larger than its folio (or contiguous range under multi-folio).
                if let c = r.first(where: { gmemMaxLevel($0 << 9) != .size2M }) {
                    v.append("2M mapping at \(hex16(c << 21)) larger than its folio")
                }
                // No private mapping of shared memory.
                if !privateAttr.allSatisfy(in: frames, { $0 }) { v.append("2M private mapping over shared memory at \(hex16(frames.lowerBound << 12))") }
                // No page mapped at two levels.
                if mirror4K.measure(in: frames, where: { $0 }) > 0 { v.append("frames under a 2M leaf also mapped at 4K at \(hex16(frames.lowerBound << 12))") }
                if module.pte.measure(in: frames, where: { $0.state != .free }) > 0 { v.append("S-EPT 4K entries under a 2M leaf at \(hex16(frames.lowerBound << 12))") }
            }
            // DPAMT: refcount equals the 4K private mappings in each guest 2M range.
            guard module.features.dynamicPAMT else { continue }
            for c in r {
                let g = c << 9
                guard slot(g) != nil else { continue }
                let want = m == .table ? UInt32(mirror4K.measure(in: g..<(g + 512)) { $0 }) : 0
                let have = pamtRefcount.value(at: hfn(g) >> 9)
                if want != have { v.append("PAMT refcount \(have) but \(want) 4K mappings in \(hex16(g << 12))"); break }
                if want > 0 && !module.pamt4K.value(at: hfn(g) >> 9) { v.append("4K mappings without PAMT_4K at \(hex16(g << 12))"); break }
            }
        }
        // Split cache never negative (it is unsigned; a wrap shows as huge).
        if splitCache > 1 << 40 { v.append("split cache underflow") }
        for s in v { flag("invariant: \(s)") }
        return v
    }
}
