/// A fixed-size bitmap with range operations and an O(1) population count —
/// the shape of the kernel's `efi_unaccepted_memory` bitmap (`bitmap_set()`,
/// `bitmap_clear()`, `for_each_set_bitrange_from()`).
///
/// Bit `i` is bit `i % 64` of word `i / 64`, least significant first,
/// exactly the kernel's `unsigned long` bitmap layout on x86-64
/// (`word(_:)` gives any word, so the words can be written out as the
/// table's bytes).
///
/// State is per range: the bits are kept in chunks of `chunkWords` words
/// (4 KiB, 32768 bits, by default), each all clear, all set, or its words,
/// and a chunk that a range operation covers whole, or leaves uniform, holds
/// no words. A bitmap the size of the one a 4 PiB guest's EFI stub allocates
/// (2^31 bits, 256 MiB as words) that is set or cleared in large ranges
/// costs 65536 chunk entries, and passes over it skip uniform chunks, as
/// they would skip empty words 512 at a time; scattered bits cost what the
/// words cost.
///
/// `Key` is the index space of the bits (an unaccepted-memory unit, a
/// dump's PFN); the words themselves are raw.
public struct PageBitmap<Key: IndexSpace>: Equatable, Sendable {
    enum Chunk: Equatable, Sendable {
        case clear, set
        case words([UInt64])
    }

    /// Number of valid bits.
    public let count: UInt64
    /// Number of set bits, kept up to date by every mutation.
    public private(set) var popcount: UInt64 = 0
    private var chunks: [Chunk]
    /// log2 of the bits per chunk.
    private let chunkShift: UInt64

    /// - Complexity: O(count / 32768).
    public init(count: UInt64) { self.init(count: count, chunkWords: 512) }

    /// A bitmap whose chunks hold `chunkWords` words (a power of two): small
    /// chunks let tests cross chunk boundaries often.
    /// - Complexity: O(count / (64 × chunkWords)).
    package init(count: UInt64, chunkWords: Int) {
        precondition(chunkWords > 0 && chunkWords & (chunkWords - 1) == 0, "chunkWords must be a power of two")
        self.count = count
        chunkShift = 6 + UInt64(chunkWords.trailingZeroBitCount)
        chunks = [Chunk](repeating: .clear, count: Int(divRoundUp(count, 1 << chunkShift)))
    }

    private var chunkBits: UInt64 { 1 << chunkShift }
    /// Valid bits of chunk `c` (the last may be short).
    private func bits(ofChunk c: Int) -> UInt64 { min(chunkBits, count - (UInt64(c) << chunkShift)) }

    /// - Complexity: O(1).
    public func test(_ key: Key) -> Bool {
        let i = key.value
        precondition(i < count, "bit index out of range")
        switch chunks[Int(i >> chunkShift)] {
        case .clear: return false
        case .set: return true
        case .words(let w): return w[Int((i & (chunkBits - 1)) >> 6)] & (1 << (i & 63)) != 0
        }
    }

    /// Word `w` of the kernel's layout (bits `64w ..< 64w + 64`, bits past
    /// `count` clear).
    /// - Complexity: O(1).
    public func word(_ w: Int) -> UInt64 {
        let first = UInt64(w) << 6
        precondition(first < count, "word index out of range")
        switch chunks[Int(first >> chunkShift)] {
        case .clear: return 0
        case .set: return count - first >= 64 ? ~0 : (1 << (count - first)) - 1
        case .words(let ws): return ws[Int((first & (chunkBits - 1)) >> 6)]
        }
    }

    /// Sets bits `[r.lowerBound, r.upperBound)`.
    /// - Complexity: O(chunks touched + r.count / 64 in the partly covered ones).
    public mutating func set(_ r: Range<Key>) { apply(r.raw, set: true) }

    /// Clears bits `[r.lowerBound, r.upperBound)`.
    /// - Complexity: O(chunks touched + r.count / 64 in the partly covered ones).
    public mutating func clear(_ r: Range<Key>) { apply(r.raw, set: false) }

    private mutating func apply(_ r: Range<UInt64>, set: Bool) {
        let lo = r.lowerBound, hi = min(r.upperBound, count)
        guard lo < hi else { return }
        let uniform: Chunk = set ? .set : .clear
        for c in Int(lo >> chunkShift)...Int((hi - 1) >> chunkShift) {
            let base = UInt64(c) << chunkShift, n = bits(ofChunk: c)
            let from = max(lo, base) - base, to = min(hi, base + n) - base
            if from == 0 && to == n {
                popcount = popcount - setBits(ofChunk: c) + (set ? n : 0)
                chunks[c] = uniform
                continue
            }
            if chunks[c] == uniform { continue }
            var ws = words(ofChunk: c)
            chunks[c] = .clear   // drop the chunk's reference, so `ws` is changed in place
            let touched = Int(from >> 6)...Int((to - 1) >> 6)
            let before = ws[touched].reduce(0) { $0 + UInt64($1.nonzeroBitCount) }
            Self.apply(&ws, from..<to, set: set)
            let after = ws[touched].reduce(0) { $0 + UInt64($1.nonzeroBitCount) }
            popcount = popcount - before + after
            // The chunk can only have become uniform in the direction of the
            // change, and only if every word it touched did (a short last word aside).
            let mayBeUniform = set ? touched.contains(Int((n - 1) >> 6)) || ws[touched].allSatisfy { $0 == ~0 }
                                   : ws[touched].allSatisfy { $0 == 0 }
            chunks[c] = mayBeUniform ? Self.normalized(ws, bits: n) : .words(ws)
        }
    }

    /// The chunk's words, materialised.
    private func words(ofChunk c: Int) -> [UInt64] {
        let n = bits(ofChunk: c), wordCount = Int(chunkBits >> 6)
        switch chunks[c] {
        case .words(let ws): return ws
        case .clear: return [UInt64](repeating: 0, count: wordCount)
        case .set:
            var ws = [UInt64](repeating: 0, count: wordCount)
            Self.apply(&ws, 0..<n, set: true)
            return ws
        }
    }

    /// Set bits of chunk `c`.
    private func setBits(ofChunk c: Int) -> UInt64 {
        switch chunks[c] {
        case .clear: return 0
        case .set: return bits(ofChunk: c)
        case .words(let ws): return ws.reduce(0) { $0 + UInt64($1.nonzeroBitCount) }
        }
    }

    /// `.clear` or `.set` for words that are uniform over the chunk's `bits` valid bits.
    private static func normalized(_ ws: [UInt64], bits: UInt64) -> Chunk {
        if ws.allSatisfy({ $0 == 0 }) { return .clear }
        let full = Int(bits >> 6), rest = bits & 63
        if ws[..<full].allSatisfy({ $0 == ~0 }), rest == 0 || ws[full] == (1 << rest) - 1 { return .set }
        return .words(ws)
    }

    /// Sets or clears bits `r` of `ws`, a word at a time.
    private static func apply(_ ws: inout [UInt64], _ r: Range<UInt64>, set: Bool) {
        guard !r.isEmpty else { return }
        for w in Int(r.lowerBound >> 6)...Int((r.upperBound - 1) >> 6) {
            let start = UInt64(w) << 6
            let from = max(r.lowerBound, start) - start, to = min(r.upperBound, start + 64) - start
            let mask: UInt64 = to - from == 64 ? ~0 : ((1 << (to - from)) - 1) << from
            ws[w] = set ? ws[w] | mask : ws[w] & ~mask
        }
    }

    /// The first set bit at or after `from` and below `limit`.
    /// - Complexity: O(chunks skipped + words searched in one chunk).
    public func firstSet(from: Key, below limit: Key) -> Key? {
        find(from: from.value, below: limit.value, set: true).map(Key.init)
    }

    /// The first clear bit at or after `from` and below `limit`.
    /// - Complexity: O(chunks skipped + words searched in one chunk).
    public func firstClear(from: Key, below limit: Key) -> Key? {
        find(from: from.value, below: limit.value, set: false).map(Key.init)
    }

    private func find(from: UInt64, below limit: UInt64, set: Bool) -> UInt64? {
        let hi = min(limit, count)
        var i = from
        while i < hi {
            let c = Int(i >> chunkShift), base = UInt64(c) << chunkShift
            switch chunks[c] {
            case .clear where !set, .set where set:
                return i
            case .clear, .set:
                i = base + chunkBits
            case .words(let ws):
                var w = Int((i - base) >> 6)
                var word = (set ? ws[w] : ~ws[w]) & (~0 << (i & 63))
                while word == 0 {
                    w += 1
                    guard w < ws.count else { break }
                    word = set ? ws[w] : ~ws[w]
                }
                if word != 0 {
                    let bit = base + (UInt64(w) << 6) + UInt64(word.trailingZeroBitCount)
                    return bit < hi ? bit : nil
                }
                i = base + chunkBits
            }
        }
        return nil
    }

    /// True if any bit in `r` is set.
    /// - Complexity: that of `firstSet`.
    public func anySet(in r: Range<Key>) -> Bool { firstSet(from: r.lowerBound, below: r.upperBound) != nil }

    /// Number of set bits in `r`.
    /// - Complexity: O(chunks + runs in `r`, words of the chunks with words).
    public func countSet(in r: Range<Key>) -> UInt64 {
        var n: UInt64 = 0
        var start = r.lowerBound
        while let a = firstSet(from: start, below: r.upperBound) {
            let b = firstClear(from: a, below: r.upperBound) ?? Key(Swift.min(r.upperBound.value, count))
            n += b.value - a.value
            start = b
        }
        return n
    }

    /// Maximal runs of set bits inside `r`, in ascending order
    /// (`for_each_set_bitrange_from()`).
    /// - Complexity: O(chunks + runs in `r`, words of the chunks with words).
    public func setRuns(in r: Range<Key>) -> [Range<Key>] {
        var runs: [Range<Key>] = []
        var start = r.lowerBound
        let hi = Key(Swift.min(r.upperBound.value, count))
        while let a = firstSet(from: start, below: hi) {
            let b = firstClear(from: a, below: hi) ?? hi
            runs.append(a..<b)
            start = b
        }
        return runs
    }

    /// Debug-only consistency check of the cached population count and of
    /// the chunks' normal form (a uniform chunk holds no words).
    public func _checkInvariants() {
        #if DEBUG
        var n: UInt64 = 0
        for c in chunks.indices {
            n += setBits(ofChunk: c)
            if case .words(let ws) = chunks[c] {
                precondition(Self.normalized(ws, bits: bits(ofChunk: c)) == chunks[c], "PageBitmap chunk \(c) is uniform but holds words")
                let valid = bits(ofChunk: c)
                if valid < chunkBits {
                    var beyond = ws
                    Self.apply(&beyond, 0..<valid, set: false)
                    precondition(beyond.allSatisfy { $0 == 0 }, "bits set beyond count")
                }
            }
        }
        precondition(n == popcount, "PageBitmap popcount cache out of date")
        #endif
    }
}
