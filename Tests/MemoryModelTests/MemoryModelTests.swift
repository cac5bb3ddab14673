import MemoryModel
import Testing

@Suite struct ByteCountTests {
    @Test func parsesKernelAndQEMUSizes() throws {
        #expect(try ByteCount.parse("64G").value == 64 << 30)
        #expect(try ByteCount.parse("512M").value == 512 << 20)
        #expect(try ByteCount.parse("1.5T").value == 3 << 39)
        #expect(try ByteCount.parse("0x100000000").value == 1 << 32)
        #expect(try ByteCount.parse("4096").value == 4096)
        #expect(try ByteCount.parse("2GiB").value == 2 << 30)
    }
    @Test func rejectsBadSizes() {
        for bad in ["", "-1G", "abc", "1.2.3G", "0.0000001K"] { #expect(throws: CocomemError.self) { try ByteCount.parse(bad) } }
        #expect(throws: CocomemError.self) { try ByteCount.parseGuestMemory("0") }
        #expect(throws: CocomemError.self) { try ByteCount.parseGuestMemory("5P") }
    }
    /// One unit for several sizes: the largest in which every one is whole or has one exact decimal.
    @Test func formatsALineInOneUnit() {
        #expect(ByteCount.formatInOneUnit([3 << 30, 1536 << 10, 0]) == ["3072M", "1.5M", "0"])
        #expect(ByteCount.formatInOneUnit([4096, 1 << 30]) == ["4K", "1048576K"])
        #expect(ByteCount.formatInOneUnit([64 << 30, 32 << 30]) == ["64G", "32G"])
        #expect(ByteCount.formatInOneUnit([3 << 39, 1 << 40]) == ["1.5T", "1T"])
        #expect(ByteCount.formatInOneUnit([0]) == ["0"] && ByteCount.formatInOneUnit([]) == [])
        #expect(ByteCount.formatInOneUnit([100, 4096]) == ["100", "4096"])
    }

    @Test func printsLikeUsers() {
        #expect(ByteCount.gib(64).description == "64G")
        #expect(ByteCount(3 << 39).description == "1.5T")
        #expect(ByteCount.mib(512).description == "512M")
    }
}

@Suite struct PageBitmapTests {
    /// Seeded random range operations against a Bool array, across word boundaries.
    @Test(arguments: [1, 2, 3, 42] as [UInt64]) func matchesReferenceModel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let n: UInt64 = 517
        var bm = PageBitmap<GuestFrameNumber>(count: n)
        var ref = [Bool](repeating: false, count: Int(n))
        for _ in 0..<400 {
            let a = rng.next() % n, b = min(n, a + rng.next() % 140)
            let set = rng.next() & 1 == 0
            if set { bm.set(Range(raw: a..<b)) } else { bm.clear(Range(raw: a..<b)) }
            for i in a..<b { ref[Int(i)] = set }
            #expect(bm.popcount == UInt64(ref.filter { $0 }.count))
            let q = rng.next() % n, r = min(n, q + rng.next() % 200)
            let refRuns = runs(ref, q, r)
            #expect(bm.setRuns(in: Range(raw: q..<r)).map(\.raw) == refRuns)
            #expect(bm.countSet(in: Range(raw: q..<r)) == refRuns.reduce(0) { $0 + UInt64($1.count) })
        }
        bm._checkInvariants()
    }
    /// The same against a Bool array with chunks of 1, 2 and 4 words, so
    /// that ranges cover, half-cover and leave uniform many chunks (the
    /// per-range state of a 4 PiB guest's bitmap); every word equals the
    /// reference's, and a bitmap rebuilt from the runs is equal.
    @Test(arguments: [(1, 5), (2, 6), (4, 7), (1, 8)] as [(Int, UInt64)]) func chunksMatchReferenceModel(chunkWords: Int, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let n: UInt64 = 64 * UInt64(chunkWords) * 9 + 37
        var bm = PageBitmap<GuestFrameNumber>(count: n, chunkWords: chunkWords)
        var ref = [Bool](repeating: false, count: Int(n))
        for step in 0..<500 {
            // Mostly long ranges, which make chunks uniform; some short ones, which break them up.
            let a = rng.next() % n, b = min(n, a + (step % 3 == 0 ? rng.next() % 9 : rng.next() % (n / 2)))
            let set = rng.next() & 1 == 0
            if set { bm.set(Range(raw: a..<b)) } else { bm.clear(Range(raw: a..<b)) }
            for i in a..<b { ref[Int(i)] = set }
            #expect(bm.popcount == UInt64(ref.filter { $0 }.count))
            let q = rng.next() % n, r = min(n, q + rng.next() % n)
            let refRuns = runs(ref, q, r)
            #expect(bm.setRuns(in: Range(raw: q..<r)).map(\.raw) == refRuns)
            #expect(bm.countSet(in: Range(raw: q..<r)) == refRuns.reduce(0) { $0 + UInt64($1.count) })
            #expect(bm.firstClear(from: GuestFrameNumber(q), below: GuestFrameNumber(r))?.value == (q..<r).first { !ref[Int($0)] })
            let t = rng.next() % n
            #expect(bm.test(GuestFrameNumber(t)) == ref[Int(t)])
            bm._checkInvariants()
        }
        for w in 0..<Int(divRoundUp(n, 64)) {
            let expected = (0..<64).reduce(UInt64(0)) { acc, k in
                let i = w * 64 + k
                return i < Int(n) && ref[i] ? acc | 1 << UInt64(k) : acc
            }
            #expect(bm.word(w) == expected, "word \(w)")
        }
        var rebuilt = PageBitmap<GuestFrameNumber>(count: n, chunkWords: chunkWords)
        for r in runs(ref, 0, n) { rebuilt.set(Range(raw: r)) }
        #expect(rebuilt == bm)
    }

    func runs(_ ref: [Bool], _ a: UInt64, _ b: UInt64) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var i = a
        while i < b {
            if ref[Int(i)] { var j = i; while j < b && ref[Int(j)] { j += 1 }; out.append(i..<j); i = j } else { i += 1 }
        }
        return out
    }
}

/// `Sparsemem.presentSectionCount` (per range) against the section list
/// (per section) on seeded random disjoint RAM layouts.
@Suite struct SparsememTests {
    @Test func countEqualsTheSectionList() {
        var rng = SplitMix64(seed: 0x5ec7)
        for _ in 0..<400 {
            var ram: [AddressRange] = [], a: UInt64 = rng.next() % (1 << 30)
            for _ in 0..<(rng.next() % 8) {
                let size = 1 + rng.next() % (rng.next() % 2 == 0 ? 1 << 20 : 1 << 29)
                ram.append(AddressRange(start: a, size: size))
                a += size + rng.next() % (rng.next() % 2 == 0 ? 4096 : 1 << 28)
            }
            ram.shuffle(using: &rng)
            #expect(Sparsemem.presentSectionCount(ram) == UInt64(Sparsemem.presentSections(ram).count), "\(ram)")
        }
    }
}

@Suite struct IntervalMapTests {
    @Test(arguments: [7, 8, 9] as [UInt64]) func matchesReferenceModel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var m = IntervalMap<GuestFrameNumber, UInt8>(initial: 0)
        var ref = [UInt8](repeating: 0, count: 300)
        for _ in 0..<500 {
            let a = rng.next() % 300, b = min(300, a + 1 + rng.next() % 80)
            let v = UInt8(rng.next() % 3)
            m.assign(Range(raw: a..<b), v)
            for i in a..<b { ref[Int(i)] = v }
            m._checkInvariants()
            for _ in 0..<5 { let k = rng.next() % 300; #expect(m.value(at: GuestFrameNumber(k)) == ref[Int(k)]) }
            let q = rng.next() % 300
            #expect(m.measure(in: Range(raw: q..<300)) { $0 == 1 } == UInt64(ref[Int(q)...].filter { $0 == 1 }.count))
        }
    }
}

@Suite struct AddressRangeTests {
    /// `subtracting` against a page-set reference: the result covers exactly
    /// the pages of the ranges outside every cut, in order, without empties.
    @Test(arguments: [3, 4, 5, 6] as [UInt64]) func subtractingMatchesPageSets(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func ranges(_ n: Int) -> [AddressRange] {
            (0..<n).map { _ in let s = rng.next() % 200; return AddressRange(start: s << 12, end: (s + rng.next() % 40) << 12) }
        }
        var base: [AddressRange] = []
        var at: UInt64 = 0
        for _ in 0..<5 { at += rng.next() % 20; let n = rng.next() % 30; base.append(AddressRange(start: at << 12, size: n << 12)); at += n }
        let cuts = ranges(Int(rng.next() % 6))
        let got = base.subtracting(cuts)
        var want = Set<UInt64>()
        for r in base { for p in (r.start >> 12)..<(r.end >> 12) where !cuts.contains(where: { $0.contains(p << 12) }) { want.insert(p) } }
        var pages = Set<UInt64>()
        for r in got { for p in (r.start >> 12)..<(r.end >> 12) { pages.insert(p) } }
        #expect(pages == want)
        #expect(got.allSatisfy { !$0.isEmpty })
        #expect(zip(got, got.dropFirst()).allSatisfy { $0.end <= $1.start })
    }
}
