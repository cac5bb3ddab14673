import Foundation
public import MemoryModel

/// How `estimate(sampling:)` sizes generated pages: a seeded random sample
/// of each stratum instead of every page.
public struct EstimateSampling: Sendable, Equatable {
    /// Pages compressed per stratum; a stratum no larger is compressed whole.
    public var pagesPerStratum: Int
    public var seed: UInt64
    public init(pagesPerStratum: Int, seed: UInt64) {
        self.pagesPerStratum = pagesPerStratum
        self.seed = seed
    }
}

/// Cuts PFN ranges into batches of `pages` pages (the last may be short).
struct BatchCutter {
    let pages: UInt64
    private var current: [Range<UInt64>] = []
    private var size: UInt64 = 0
    init(pages: Int) { self.pages = UInt64(pages) }

    mutating func add(_ r: Range<UInt64>, _ emit: ([Range<UInt64>]) throws -> Void) rethrows {
        var a = r.lowerBound
        while a < r.upperBound {
            let b = min(r.upperBound, a + pages - size)
            current.append(a..<b); size += b - a; a = b
            if size == pages { try emit(current); current = []; size = 0 }
        }
    }

    mutating func finish(_ emit: ([Range<UInt64>]) throws -> Void) rethrows {
        if !current.isEmpty { try emit(current); current = []; size = 0 }
    }

    static func cut(_ ranges: [Range<UInt64>], pages: Int) -> [[Range<UInt64>]] {
        var c = BatchCutter(pages: pages), out: [[Range<UInt64>]] = []
        for r in ranges { c.add(r) { out.append($0) } }
        c.finish { out.append($0) }
        return out
    }
}

extension KdumpCompressedWriter {
    /// The size of the file `write` would produce, and its report, from the
    /// size formula (docs/DUMPS.md), without writing. Template pages are
    /// counted per class run. Generated pages (struct pages, page tables)
    /// differ page by page: without `sampling` each is compressed, on
    /// `options.threads`, and the size is exact; with it, each stratum of
    /// memmap pages (`KernelStructures.strata(of:)`) larger than the sample
    /// is estimated from a seeded simple random sample, and the report
    /// carries the 95% margin.
    ///
    /// `progress`, if given, follows the pages compressed one by one (the
    /// long part of an exact estimate); `slowHint` is the task's hint
    /// (`ProgressTask.slowHint`), e.g. the sampled estimate.
    /// - Complexity: O(runs × templates + generated pages) exact;
    ///   O(runs × templates + sections + strata × sample) sampled.
    public func estimate(sampling: EstimateSampling? = nil, progress: (any ProgressReporter)? = nil,
                         slowHint: String? = nil) throws -> DumpReport {
        var r = baseReport()
        var data: UInt64 = options.excludeZero ? Self.blockSize : 0
        var generated: [Range<UInt64>] = []
        // An input file's pages are all read and compressed, like generated ones.
        if image.input != nil { generated = filtered.dumpable }
        for d in filtered.dumpable where image.input == nil {
            image.classes.forEachRun(in: Range(raw: d)) { frames, c in
                let pfns = frames.raw
                let gen = image.kernel?.generatedRanges(in: pfns) ?? []
                generated += gen
                for t in 0..<Int(PageContent.templatesPerClass) {
                    let n = PageContent.count(of: t, in: pfns, c) - gen.reduce(0) { $0 + PageContent.count(of: t, in: $1, c) }
                    if options.excludeZero && isZero(c, t) { r.zeroPages += n; continue }
                    data += n * storedSize(c, t)
                }
            }
        }
        var exact = generated
        if let sampling, image.input == nil, let k = image.kernel {
            let split = k.strata(of: generated)
            exact = split.singles
            var estimatedBytes = 0.0, estimatedZeros = 0.0, variance = 0.0
            for (stratum, ranges) in split.memmap.sorted(by: { $0.key < $1.key }) {
                let population = ranges.reduce(0) { $0 + UInt64($1.count) }
                guard population > UInt64(sampling.pagesPerStratum) else { exact += ranges; continue }
                let sample = samplePFNs(ranges, population: population, count: sampling.pagesPerStratum,
                                        seed: sampling.seed ^ UInt64(stratum.sampleSeed))
                let (sizes, zeros) = pageSizes(sample)
                let n = Double(sizes.count), N = Double(population)
                let mean = sizes.reduce(0.0) { $0 + Double($1) } / n
                let s2 = sizes.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / (n - 1)
                estimatedBytes += N * mean
                estimatedZeros += N * Double(zeros) / n
                variance += N * N * s2 / n
                r.sampledPages += UInt64(sizes.count)
                r.sampledPopulation += population
            }
            data += UInt64(estimatedBytes.rounded())
            r.zeroPages += UInt64(estimatedZeros.rounded())
            r.fileSizeMargin = UInt64((1.96 * variance.squareRoot()).rounded(.up))
        }
        let batches = BatchCutter.cut(exact.sorted { $0.lowerBound < $1.lowerBound }, pages: Self.batchPages)
        let task = ProgressTask(sampling == nil ? "estimating the dump size" : "estimating the dump size (sampled)",
                                total: Self.pages(exact) * Self.blockSize, slowHint: slowHint)
        progress.run(task) {
            // 4 batches per thread at a time, summed in order, so that
            // progress can be told between groups; the sum does not depend
            // on the grouping.
            let group = 4 * max(1, options.threads)
            for start in stride(from: 0, to: batches.count, by: group) {
                let some = Array(batches[start..<min(batches.count, start + group)])
                let sums = parallelMap(some, threads: options.threads) { chunk -> (bytes: UInt64, zeros: UInt64) in
                    guard let compressor = try? PageCompressor(self.options.compression) else { return (0, 0) }
                    return self.storedSize(chunk, compressor)
                }
                for (b, z) in sums { data += b; r.zeroPages += z }
                progress?.advance(by: some.reduce(0) { $0 + Self.pages($1) } * Self.blockSize)
            }
        }
        r.dataBytes = data + 24 * r.dumpablePages
        r.fileSize = descriptorOffset + r.dataBytes
        return r
    }

    /// `count` PFNs drawn uniformly, with replacement, from `ranges`
    /// (`population` pages in all), in draw order.
    func samplePFNs(_ ranges: [Range<UInt64>], population: UInt64, count: Int, seed: UInt64) -> [UInt64] {
        var starts: [UInt64] = [], total: UInt64 = 0
        for r in ranges { starts.append(total); total += UInt64(r.count) }
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let i = rng.next().multipliedFullWidth(by: population).high   // uniform in 0..<population
            var lo = 0, hi = starts.count
            while hi - lo > 1 { let mid = (lo + hi) / 2; if starts[mid] <= i { lo = mid } else { hi = mid } }
            return ranges[lo].lowerBound + (i - starts[lo])
        }
    }

    /// The stored size of each page of `pfns` (0 for a zero page) and the
    /// number of zero pages, compressed on `options.threads`.
    func pageSizes(_ pfns: [UInt64]) -> (sizes: [UInt64], zeros: Int) {
        let chunks = stride(from: 0, to: pfns.count, by: 256).map { Array(pfns[$0..<min(pfns.count, $0 + 256)]) }
        let results = parallelMap(chunks, threads: options.threads) { chunk -> [UInt64?] in
            guard let compressor = try? PageCompressor(self.options.compression) else { return [] }
            var out: [UInt64?] = []
            self.forEachPage(chunk.map { $0..<($0 + 1) }) { _, page in
                switch page {
                case .template(let c, let t):
                    out.append(self.options.excludeZero && self.isZero(c, t) ? nil : self.storedSize(c, t))
                case .bytes(let p):
                    out.append(self.options.excludeZero && isZeroPage(p) ? nil : UInt64(compressor.compressedCount(p) ?? p.count))
                }
            }
            return out
        }
        let all = results.flatMap { $0 }
        return (all.map { $0 ?? 0 }, all.filter { $0 == nil }.count)
    }
}

extension GeneratedStratum {
    /// A seed component per stratum, so strata draw independent samples.
    var sampleSeed: Int {
        switch self {
        case .memmap(let r): Int(r.rawValue) &* 0x9E37 &+ 1
        case .mixedMemmap: 0x5bd1
        }
    }
}
