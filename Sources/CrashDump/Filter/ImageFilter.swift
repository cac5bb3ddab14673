import MemoryModel

/// The 2nd bitmap of a dump: which PFNs stay, and what was excluded.
public struct FilterResult: Sendable, Equatable {
    /// Dumpable PFN ranges, ascending, disjoint, coalesced.
    public var dumpable: [Range<UInt64>] = []
    public var counts = ExclusionCounts()
    public var dumpableCount: UInt64 { dumpable.reduce(0) { $0 + UInt64($1.count) } }

    mutating func keep(_ r: Range<UInt64>) {
        guard !r.isEmpty else { return }
        if let last = dumpable.last, last.upperBound == r.lowerBound {
            dumpable[dumpable.count - 1] = last.lowerBound..<r.upperBound
        } else { dumpable.append(r) }
    }

    /// Clears `cuts` (sorted by start, possibly overlapping) from the
    /// dumpable ranges without counting them as excluded, as
    /// `exclude_nodata_pages()` clears bits.
    /// - Complexity: O(dumpable ranges + cuts).
    mutating func clear(_ cuts: [Range<UInt64>]) {
        guard !cuts.isEmpty else { return }
        var out: [Range<UInt64>] = [], c = 0
        for r in dumpable {
            var s = r.lowerBound
            while c < cuts.count, cuts[c].upperBound <= s { c += 1 }
            var k = c
            while s < r.upperBound, k < cuts.count, cuts[k].lowerBound < r.upperBound {
                if cuts[k].lowerBound > s { out.append(s..<cuts[k].lowerBound) }
                s = max(s, cuts[k].upperBound)
                k += 1
            }
            if s < r.upperBound { out.append(s..<r.upperBound) }
        }
        dumpable = out
    }

    mutating func count(_ k: MakedumpfileFilter.Kind, _ n: UInt64) {
        switch k {
        case .cache: counts.cache += n
        case .privateCache: counts.privateCache += n
        case .user: counts.user += n
        case .free: counts.free += n
        case .hwpoison: counts.hwpoison += n
        case .offline: counts.offline += n
        }
    }
}

extension GuestMemoryImage {
    /// PT_LOAD PFN ranges, ascending.
    var loadPFNs: [Range<UInt64>] { loadFrames.map(\.raw) }

    /// The 2nd bitmap before zero-page detection: every PT_LOAD PFN, minus
    /// what the filter excludes. Without kernel structures nothing is
    /// excluded here (makedumpfile without VMCOREINFO stops at level 1).
    ///
    /// Evaluated per range: the chain runs once on each block head (free
    /// and unaccepted blocks) and once per run of pages whose struct pages
    /// agree on every field the chain reads; `filterStepByStep` is the
    /// page-by-page reference it is tested against.
    /// - Complexity: O(role runs + blocks).
    public func filter(_ f: MakedumpfileFilter?) -> FilterResult {
        var out = FilterResult()
        guard let f, let k = kernel, f.walksMemMap else {
            for l in loadPFNs { out.keep(l) }
            return out
        }
        let maxMapnr = self.maxMapnr
        var skipUntil: UInt64 = 0
        func exclude(_ pfn: UInt64, _ kind: MakedumpfileFilter.Kind, _ pages: UInt64) {
            out.count(kind, min(pfn + pages, maxMapnr) - pfn)   // counted even where the bit was clear
            skipUntil = max(skipUntil, pfn + pages)
        }
        var x: UInt64 = 0
        /// The chain on the struct page at `x`, alone: excluded as it says or kept.
        func one(_ p: StructPage, blockEnd: UInt64) {
            switch f.decide(p, next: k.structPage(x + 1), pfn: x) {
            case .exclude(let kind, let pages): exclude(x, kind, pages); x = min(max(x + 1, skipUntil), blockEnd)
            case .keep, .tail: out.keep(x..<(x + 1)); x += 1
            }
        }
        /// A folio from `x` (its head, or a page inside it where a PT_LOAD
        /// starts): the chain decides at the head, reading the first tail
        /// for the order. A filter that recognises tails (`compound_head`
        /// & 1) skips the ones the head's exclusion does not cover; one
        /// that cannot (no `OFFSET(page.compound_head)`: makedumpfile before
        /// f50c015 on 7.1) runs the chain on each tail: page[1] to page[3]
        /// one by one (folio fields), the rest, alike, once.
        func folio(head: UInt64, size: UInt64, runEnd: UInt64) {
            let blockEnd = min(head + size, runEnd)
            if head == x, case .exclude(let kind, let pages) = f.decide(k.structPage(x), next: k.structPage(x + 1), pfn: x) {
                exclude(x, kind, pages)
                x = min(max(x + 1, skipUntil), blockEnd)
            } else if head == x, !f.recognisesTails {
                out.keep(x..<(x + 1)); x += 1
            }
            if !f.recognisesTails {
                while x < blockEnd, x < head + 4 { one(k.structPage(x), blockEnd: blockEnd) }
                while x < blockEnd {
                    // Tails from page[4] differ only in their own lru.prev.
                    guard case .exclude(let kind, let pages) = f.decide(k.structPage(x), next: k.structPage(x + 1), pfn: x) else { break }
                    guard pages == 1 else { one(k.structPage(x), blockEnd: blockEnd); continue }
                    out.count(kind, blockEnd - x); x = blockEnd
                }
            }
            if x < blockEnd { out.keep(x..<blockEnd) }
            x = blockEnd
        }
        for load in loadPFNs {
            for (typedRun, role) in k.roles.runs(in: Range(raw: load)) {
                let run = typedRun.raw
                x = max(run.lowerBound, skipUntil)
                let maximal = k.roles.run(containing: typedRun.lowerBound).range.raw
                while x < run.upperBound {
                    switch role {
                    case .free, .unacceptedBlock:
                        let (head, order) = role == .free ? KernelStructures.buddyBlock(x, in: maximal) : (x & ~1023, UInt64(10))
                        let blockEnd = min(head + (1 << order), run.upperBound)
                        if head != x { out.keep(x..<blockEnd); x = blockEnd; continue }   // tails of a head outside the load
                        switch f.decide(k.structPage(x), next: k.structPage(x + 1), pfn: x) {
                        case .exclude(let kind, let pages): exclude(x, kind, pages); x = max(x + 1, min(skipUntil, run.upperBound))
                        case .keep, .tail: out.keep(x..<blockEnd); x = blockEnd
                        }
                    case .transparentHuge, .hugetlb:
                        folio(head: x & ~511, size: 512, runEnd: run.upperBound)
                    case .slab where k.input.slabOrder > 0:
                        if let s = k.slabFolio(x, run: maximal) {
                            folio(head: s.head, size: 1 << s.order, runEnd: run.upperBound)
                        } else {
                            one(k.structPage(x), blockEnd: x + 1)
                        }
                    case .reserved, .slab, .pageCache, .anonymous:
                        // Order-0 pages whose struct pages differ only in pointers the chain does not read.
                        switch f.decide(k.structPage(x), next: nil, pfn: x) {
                        case .exclude(let kind, let pages):
                            precondition(pages == 1, "uniform roles are order-0")
                            out.count(kind, UInt64(run.upperBound - x))
                        case .keep, .tail: out.keep(x..<run.upperBound)
                        }
                        x = run.upperBound
                    }
                }
            }
        }
        return out
    }

    /// The same filter the way makedumpfile runs it: section by section
    /// over the mem_map, reading each struct page's bytes from the
    /// generated memmap, one PFN at a time. For tests.
    /// - Complexity: O(pages).
    public func filterStepByStep(_ f: MakedumpfileFilter?) -> FilterResult {
        guard let f, let k = kernel, f.walksMemMap else {
            var out = FilterResult()
            for l in loadPFNs { out.keep(l) }
            return out
        }
        var memmapPage = [UInt8](repeating: 0, count: 4096)
        var cachedMemmapPFN = UInt64.max
        return walkMemMap(f, sections: k.presentSections) { pfn in
            // vmemmap + 64·pfn, through the section's 2 MiB of the memmap buffer.
            let s = pfn / X86Layout.pagesPerSection
            let ordinal = k.presentSections.firstIndex(of: s)!
            let memmapPFN = k.memmapPFN(ordinal: ordinal, page: (pfn % X86Layout.pagesPerSection) / 64)
            if memmapPFN != cachedMemmapPFN {
                memmapPage.withUnsafeMutableBytes { k.generate(memmapPFN, into: $0) }
                cachedMemmapPFN = memmapPFN
            }
            return memmapPage.withUnsafeBytes { StructPage.load(from: $0.baseAddress! + Int(pfn % 64) * 64) }
        }
    }

    /// makedumpfile's walk (`__exclude_unnecessary_pages()` over each
    /// section's mem_map): the chain at every PFN of the PT_LOADs, the next
    /// struct page read when it is in the same section, an exclusion
    /// skipping the pages it covers; then the 2nd bitmap as ranges.
    ///
    /// `zeroRun(pfn, limit)`, if given, tells how many struct pages from
    /// `pfn` (below `limit`) are all zeros by construction (the file stores
    /// none of their bytes) and after how many PFNs to ask again. A zero
    /// struct page has no flags, so the chain's decision does not depend on
    /// its PFN or on the next struct page: the run is decided once and its
    /// exclusions (a step of `pages` each) are applied arithmetically, as
    /// the page-by-page walk would apply them (`FilterTests` holds the two
    /// equal).
    /// - Complexity: O(PT_LOAD pages of the sections + sections), a zero run
    ///   being one step and a hole between PT_LOADs one step.
    func walkMemMap(_ f: MakedumpfileFilter, sections: [UInt64], structPage: (UInt64) throws -> StructPage,
                    zeroRun: ((UInt64, UInt64) -> (zero: UInt64, nextCheck: UInt64))? = nil) rethrows -> FilterResult {
        var out = FilterResult()
        let maxMapnr = self.maxMapnr
        // makedumpfile's 2nd bitmap: bit n is PFN n.
        var bitmap = PageBitmap<GuestFrameNumber>(count: maxMapnr)
        for l in loadFrames { bitmap.set(l) }
        let loads = loadPFNs
        var loadIndex = 0
        func inLoad(_ p: UInt64) -> Bool {
            while loadIndex < loads.count, loads[loadIndex].upperBound <= p { loadIndex += 1 }
            return loadIndex < loads.count && loads[loadIndex].contains(p)
        }
        // Exclusions reach the bitmap a run at a time: one that starts where
        // the pending run ends (page-cache and user pages come one page per
        // decision) joins it, so a bitmap call is made per run, not per page.
        var pendingClear: Range<UInt64> = 0..<0
        func flushClear() {
            if !pendingClear.isEmpty { bitmap.clear(Range(raw: pendingClear)) }
            pendingClear = 0..<0
        }
        /// Clears and counts one exclusion at `pfn`; returns the PFN after it.
        func exclude(_ pfn: UInt64, _ kind: MakedumpfileFilter.Kind, _ pages: UInt64) -> UInt64 {
            // pages >= 1 (decide() never returns 0); a block past max_mapnr stops there.
            let stop = pages > maxMapnr - pfn ? maxMapnr : pfn + pages
            if !pendingClear.isEmpty, pfn >= pendingClear.lowerBound, pfn <= pendingClear.upperBound {
                pendingClear = pendingClear.lowerBound..<max(pendingClear.upperBound, stop)
            } else {
                flushClear()
                pendingClear = pfn..<stop
            }
            out.count(kind, stop - pfn)
            return stop
        }
        /// The walk over `run`, PFNs whose struct pages are all zeros: one
        /// decision, then its exclusions in steps of `pages` from the run's
        /// start, each as the walk makes it (the last may reach past the
        /// run). Returns the PFN the walk continues at.
        func zeroStructPages(_ run: Range<UInt64>, end: UInt64, structPage: (UInt64) throws -> StructPage,
                             exclude: (UInt64, MakedumpfileFilter.Kind, UInt64) -> UInt64) rethrows -> UInt64 {
            let zero = StructPage(mapcount: 0)   // every field zero
            guard case .exclude(let kind, let pages) = f.decide(zero, next: zero, pfn: run.lowerBound) else {
                // Kept: the walk reads the struct page after the run's last as its `next`.
                if run.upperBound < end { _ = try structPage(run.upperBound) }
                return run.upperBound
            }
            let steps = divRoundUp(UInt64(run.count), pages)
            let last = run.lowerBound + (steps - 1) * pages
            if last + 1 == run.upperBound, run.upperBound < end { _ = try structPage(run.upperBound) }
            let stop = pages > (maxMapnr - run.lowerBound) / steps ? maxMapnr : run.lowerBound + steps * pages
            return exclude(run.lowerBound, kind, stop - run.lowerBound)
        }
        // The struct page last read as a `next`, and its PFN.
        var readPFN = UInt64.max
        var readPage = StructPage(mapcount: 0)
        for s in sections {
            let start = s * X86Layout.pagesPerSection, end = min(start + X86Layout.pagesPerSection, maxMapnr)
            var pfn = start
            var askFrom = start   // no zero run starts below this PFN
            while pfn < end {
                guard inLoad(pfn) else {
                    // A hole between PT_LOADs, or past the last: no struct page
                    // there is read, so go to the next PT_LOAD's first PFN at
                    // once (a step per PFN made a small file's walk cost its
                    // sections' 32768 PFNs each, however few pages it holds).
                    pfn = loadIndex < loads.count ? min(end, loads[loadIndex].lowerBound) : end
                    continue
                }
                if let zeroRun, pfn >= askFrom {
                    let runEnd = min(end, loads[loadIndex].upperBound)
                    let (zero, nextCheck) = zeroRun(pfn, runEnd)
                    askFrom = pfn + nextCheck
                    if zero > 1 {
                        pfn = try zeroStructPages(pfn..<(pfn + zero), end: end, structPage: structPage, exclude: exclude)
                        askFrom = max(askFrom, pfn)
                        continue
                    }
                }
                // A kept page's `next` is the following page's struct page: read once.
                let p = readPFN == pfn ? readPage : try structPage(pfn)
                var next: StructPage? = nil
                if pfn + 1 < end {
                    readPage = try structPage(pfn + 1)
                    readPFN = pfn + 1
                    next = readPage
                }
                guard case .exclude(let kind, let pages) = f.decide(p, next: next, pfn: pfn) else { pfn += 1; continue }
                pfn = exclude(pfn, kind, pages)
            }
        }
        flushClear()
        for r in bitmap.setRuns(in: Range(start: .lowest, count: maxMapnr)) { out.keep(r.raw) }
        return out
    }
}
