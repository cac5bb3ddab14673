/// A total map from the positions of one index space (guest frames, host
/// frames, 2M regions, addresses) to values, stored as maximal runs of
/// equal values. Used for every per-range state
/// in cocomem (host mapping state, RMP state, page classes, EFI types) so
/// that a 4 TiB guest costs as many entries as it has distinct ranges, not
/// pages.
///
/// Invariants: `starts[0] == 0`, `starts` strictly increasing, and no two
/// adjacent runs hold equal values.
public struct IntervalMap<Key: IndexSpace, Value: Equatable & Sendable>: Sendable, Equatable {
    @usableFromInline var _starts: [Key]
    @usableFromInline var _values: [Value]
    /// Start key of each run, strictly increasing from 0.
    @inlinable public var starts: [Key] { _starts }
    /// Value of each run.
    @inlinable public var values: [Value] { _values }

    /// A map where every key holds `initial`.
    @inlinable public init(initial: Value) {
        _starts = [Key.lowest]
        _values = [initial]
    }

    /// Number of runs.
    @inlinable public var runCount: Int { _starts.count }

    /// Index of the run containing `key`.
    /// - Complexity: O(log n).
    @inlinable @inline(__always) func runIndex(_ key: Key) -> Int {
        var lo = 0, hi = _starts.count  // find last start <= key
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if _starts[mid] <= key { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// First index whose start is >= key.
    @inlinable func lowerBound(_ key: Key) -> Int {
        var lo = 0, hi = _starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if _starts[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// - Complexity: O(log n).
    @inlinable public func value(at key: Key) -> Value { _values[runIndex(key)] }

    /// The run containing `key`: its extent and value.
    @inlinable public func run(containing key: Key) -> (range: Range<Key>, value: Value) {
        let i = runIndex(key)
        let end = i + 1 < _starts.count ? _starts[i + 1] : Key.highest
        return (_starts[i]..<end, _values[i])
    }

    /// Sets every key in `r` to `v`.
    /// - Complexity: O(log n + k) where k is the number of runs replaced,
    ///   plus an array shift.
    @inlinable public mutating func assign(_ r: Range<Key>, _ v: Value) {
        guard !r.isEmpty else { return }
        let lo = r.lowerBound, hi = r.upperBound
        let tail: Value? = hi == Key.highest ? nil : value(at: hi)
        let a = lowerBound(lo)
        let b = lowerBound(hi)
        // The runs starting in [lo, hi) become one run of `v` at lo, and one resuming `tail` at hi
        // unless a run already starts there. Resized in place: no temporary arrays, since a bulk
        // operation's cost is this function's (the RMP and S-EPT maps assign once per run).
        let resumesTail = tail != nil && (b == _starts.count || _starts[b] != hi)
        let replacement = resumesTail ? 2 : 1
        if b - a < replacement {
            _starts.insert(contentsOf: repeatElement(lo, count: replacement - (b - a)), at: a)
            _values.insert(contentsOf: repeatElement(v, count: replacement - (b - a)), at: a)
        } else if b - a > replacement {
            _starts.removeSubrange((a + replacement)..<b)
            _values.removeSubrange((a + replacement)..<b)
        }
        _starts[a] = lo
        _values[a] = v
        if resumesTail, let tail {
            _starts[a + 1] = hi
            _values[a + 1] = tail
        }
        var k = min(a + 2, _starts.count - 1)
        while k >= max(a, 1) {
            if _values[k] == _values[k - 1] {
                _starts.remove(at: k)
                _values.remove(at: k)
            }
            k -= 1
        }
    }

    /// Runs intersecting `r`, clipped to it, in ascending order.
    /// - Complexity: O(log n + k).
    @inlinable public func runs(in r: Range<Key>) -> [(range: Range<Key>, value: Value)] {
        guard !r.isEmpty else { return [] }
        var out: [(Range<Key>, Value)] = []
        var i = runIndex(r.lowerBound)
        while i < _starts.count, _starts[i] < r.upperBound {
            let s = max(_starts[i], r.lowerBound)
            let e = min(i + 1 < _starts.count ? _starts[i + 1] : Key.highest, r.upperBound)
            out.append((s..<e, _values[i]))
            i += 1
        }
        return out
    }

    /// Calls `body` with each run intersecting `r`, clipped to it, in
    /// ascending order, without allocating.
    /// - Complexity: O(log n + k).
    @inlinable public func forEachRun(in r: Range<Key>, _ body: (Range<Key>, Value) -> Void) {
        guard !r.isEmpty else { return }
        var i = runIndex(r.lowerBound)
        while i < _starts.count, _starts[i] < r.upperBound {
            let s = max(_starts[i], r.lowerBound)
            let e = min(i + 1 < _starts.count ? _starts[i + 1] : Key.highest, r.upperBound)
            body(s..<e, _values[i])
            i += 1
        }
    }

    /// True if every key in `r` satisfies `p`.
    /// - Complexity: O(log n + k).
    @inlinable public func allSatisfy(in r: Range<Key>, _ p: (Value) -> Bool) -> Bool {
        guard !r.isEmpty else { return true }
        var i = runIndex(r.lowerBound)
        while i < _starts.count, _starts[i] < r.upperBound {
            if !p(_values[i]) { return false }
            i += 1
        }
        return true
    }

    /// Total number of keys in `r` whose value satisfies `p`.
    /// - Complexity: O(log n + k).
    @inlinable public func measure(in r: Range<Key>, where p: (Value) -> Bool) -> UInt64 {
        var total: UInt64 = 0
        forEachRun(in: r) { range, v in if p(v) { total += range.length } }
        return total
    }

    /// Debug-only structural check.
    public func _checkInvariants() {
        #if DEBUG
        precondition(_starts.first == Key.lowest && _starts.count == _values.count)
        for i in 1..<max(1, _starts.count) {
            precondition(_starts[i - 1] < _starts[i], "IntervalMap _starts not increasing")
            precondition(_values[i - 1] != _values[i], "IntervalMap adjacent runs not merged")
        }
        #endif
    }
}
