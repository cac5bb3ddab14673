import MemoryModel

/// A group of generated pages whose contents are alike: the memmap pages
/// describing 64 PFNs of one role, or those whose 64 PFNs mix roles.
public enum GeneratedStratum: Hashable, Sendable, Comparable {
    case memmap(PageRole)
    case mixedMemmap

    public static func < (a: Self, b: Self) -> Bool { a.order < b.order }
    private var order: Int {
        switch self {
        case .memmap(let r): Int(r.rawValue)
        case .mixedMemmap: 1000
        }
    }
}

extension KernelStructures {
    /// Splits generated PFN ranges into the single structure pages (page
    /// tables, `mem_section`, `init_uts_ns`) and the memmap pages grouped by
    /// what the struct pages they hold describe.
    /// - Complexity: O(present sections + role runs), independent of the
    ///   number of memmap pages.
    public func strata(of generated: [Range<UInt64>]) -> (singles: [Range<UInt64>], memmap: [GeneratedStratum: [Range<UInt64>]]) {
        var singles: [Range<UInt64>] = []
        var out: [GeneratedStratum: [Range<UInt64>]] = [:]
        for g in generated {
            singles += [g].subtracting(memmapPFNRanges)
            for b in memmapBuffers {
                let mm = b.pfns
                let m = g.clamped(to: mm)
                guard !m.isEmpty else { continue }
                // Memmap page q (counted over the buffers in section order) holds the
                // struct pages of section q/512's PFNs (q%512)·64 ..< +64.
                let base = UInt64(b.firstOrdinal) * 512
                var q = m.lowerBound - mm.lowerBound + base
                let qEnd = m.upperBound - mm.lowerBound + base
                while q < qEnd {
                    let sectionEnd = min(qEnd, (q / 512 + 1) * 512)
                    classifyWindows(q..<sectionEnd) { range, stratum in
                        out[stratum, default: []].append((range.lowerBound - base + mm.lowerBound)..<(range.upperBound - base + mm.lowerBound))
                    }
                    q = sectionEnd
                }
            }
        }
        singles.sort { $0.lowerBound < $1.lowerBound }
        return (singles, out)
    }

    /// Calls `body` with runs of memmap page indices inside one section and
    /// their stratum: a window wholly inside one role run takes that role.
    private func classifyWindows(_ qs: Range<UInt64>, _ body: (Range<UInt64>, GeneratedStratum) -> Void) {
        let sectionFirst = presentSections[Int(qs.lowerBound / 512)] * X86Layout.pagesPerSection
        func firstPFN(_ q: UInt64) -> UInt64 { sectionFirst + (q % 512) * 64 }
        let pfns = firstPFN(qs.lowerBound)..<(firstPFN(qs.upperBound - 1) + 64)
        var cursor = qs.lowerBound
        roles.forEachRun(in: Range(raw: pfns)) { typedRun, role in
            let run = typedRun.raw
            let lo = qs.lowerBound + divRoundUp(run.lowerBound - pfns.lowerBound, 64)
            let hi = qs.lowerBound + (run.upperBound - pfns.lowerBound) / 64
            guard lo < hi else { return }
            let whole = lo..<hi
            if cursor < whole.lowerBound { body(cursor..<whole.lowerBound, .mixedMemmap) }
            body(whole, .memmap(role))
            cursor = whole.upperBound
        }
        if cursor < qs.upperBound { body(cursor..<qs.upperBound, .mixedMemmap) }
    }
}
