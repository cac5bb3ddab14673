/// A fixed-size bitmap with word-level range operations and an O(1)
/// population count — the shape of the kernel's `efi_unaccepted_memory`
/// bitmap (`bitmap_set()`, `bitmap_clear()`, `for_each_set_bitrange_from()`).
///
/// Bit `i` lives in word `i / 64`, bit `i % 64`, least significant first,
/// exactly the kernel's `unsigned long` bitmap layout on x86-64, so the
/// words can be written out as the table's bytes.
///
/// `Key` is the index space of the bits (an unaccepted-memory unit, a
/// dump's PFN); the words themselves are raw.
public struct PageBitmap<Key: IndexSpace>: Equatable, Sendable {
    public private(set) var words: [UInt64]
    /// Number of valid bits.
    public let count: UInt64
    /// Number of set bits, kept up to date by every mutation.
    public private(set) var popcount: UInt64 = 0

    /// - Complexity: O(count / 64).
    public init(count: UInt64) {
        self.count = count
        self.words = [UInt64](repeating: 0, count: Int(divRoundUp(count, 64)))
    }

    /// - Complexity: O(1).
    @inlinable public func test(_ key: Key) -> Bool {
        let i = key.value
        precondition(i < count, "bit index out of range")
        return words[Int(i >> 6)] & (1 << (i & 63)) != 0
    }

    /// Sets bits `[r.lowerBound, r.upperBound)`.
    /// - Complexity: O(r.count / 64).
    public mutating func set(_ r: Range<Key>) { apply(r.raw, set: true) }

    /// Clears bits `[r.lowerBound, r.upperBound)`.
    /// - Complexity: O(r.count / 64).
    public mutating func clear(_ r: Range<Key>) { apply(r.raw, set: false) }

    private mutating func apply(_ r: Range<UInt64>, set: Bool) {
        let lo = r.lowerBound, hi = min(r.upperBound, count)
        guard lo < hi else { return }
        var w = Int(lo >> 6)
        let lastW = Int((hi - 1) >> 6)
        while w <= lastW {
            let wordStart = UInt64(w) << 6
            let from = max(lo, wordStart) - wordStart
            let to = min(hi, wordStart + 64) - wordStart
            let mask: UInt64 = to - from == 64 ? ~0 : ((1 << (to - from)) - 1) << from
            let old = words[w]
            let new = set ? old | mask : old & ~mask
            if old != new {
                popcount = popcount &- UInt64(old.nonzeroBitCount) &+ UInt64(new.nonzeroBitCount)
                words[w] = new
            }
            w += 1
        }
    }

    /// The first set bit at or after `from` and below `limit`.
    /// - Complexity: O((limit - from) / 64).
    public func firstSet(from: Key, below limit: Key) -> Key? {
        find(from: from.value, below: limit.value, set: true).map(Key.init)
    }

    /// The first clear bit at or after `from` and below `limit`.
    public func firstClear(from: Key, below limit: Key) -> Key? {
        find(from: from.value, below: limit.value, set: false).map(Key.init)
    }

    private func find(from: UInt64, below limit: UInt64, set: Bool) -> UInt64? {
        let hi = min(limit, count)
        var i = from
        while i < hi {
            let w = Int(i >> 6)
            var word = set ? words[w] : ~words[w]
            word &= ~0 << (i & 63)
            if word != 0 {
                let bit = (UInt64(w) << 6) + UInt64(word.trailingZeroBitCount)
                return bit < hi ? bit : nil
            }
            i = (UInt64(w) + 1) << 6
        }
        return nil
    }

    /// True if any bit in `r` is set.
    public func anySet(in r: Range<Key>) -> Bool { firstSet(from: r.lowerBound, below: r.upperBound) != nil }

    /// Number of set bits in `r`.
    /// - Complexity: O(r.count / 64).
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
    /// - Complexity: O(r.count / 64 + number of runs).
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

    /// Debug-only consistency check of the cached population count.
    public func _checkInvariants() {
        #if DEBUG
        var n: UInt64 = 0
        for w in words { n += UInt64(w.nonzeroBitCount) }
        precondition(n == popcount, "PageBitmap popcount cache out of date")
        if count % 64 != 0, let last = words.last {
            precondition(last >> (count % 64) == 0, "bits set beyond count")
        }
        #endif
    }
}
