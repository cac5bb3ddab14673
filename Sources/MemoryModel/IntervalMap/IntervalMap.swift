/// A total map from `UInt64` keys (addresses or frame numbers) to values,
/// stored as maximal runs of equal values. Used for every per-range state
/// in cocomem (host mapping state, RMP state, page classes, EFI types) so
/// that a 4 TiB guest costs as many entries as it has distinct ranges, not
/// pages.
///
/// Invariants: `starts[0] == 0`, `starts` strictly increasing, and no two
/// adjacent runs hold equal values.
public struct IntervalMap<Value: Equatable & Sendable>: Sendable, Equatable {
    public private(set) var starts: [UInt64]
    public private(set) var values: [Value]

    /// A map where every key holds `initial`.
    public init(initial: Value) {
        starts = [0]
        values = [initial]
    }

    /// Number of runs.
    public var runCount: Int { starts.count }

    /// Index of the run containing `key`.
    /// - Complexity: O(log n).
    @inlinable func runIndex(_ key: UInt64) -> Int {
        var lo = 0, hi = starts.count  // find last start <= key
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if starts[mid] <= key { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// First index whose start is >= key.
    func lowerBound(_ key: UInt64) -> Int {
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// - Complexity: O(log n).
    public func value(at key: UInt64) -> Value { values[runIndex(key)] }

    /// The run containing `key`: its extent and value.
    public func run(containing key: UInt64) -> (range: Range<UInt64>, value: Value) {
        let i = runIndex(key)
        let end = i + 1 < starts.count ? starts[i + 1] : UInt64.max
        return (starts[i]..<end, values[i])
    }

    /// Sets every key in `r` to `v`.
    /// - Complexity: O(log n + k) where k is the number of runs replaced,
    ///   plus an array shift.
    public mutating func assign(_ r: Range<UInt64>, _ v: Value) {
        guard !r.isEmpty else { return }
        let lo = r.lowerBound, hi = r.upperBound
        let tail: Value? = hi == UInt64.max ? nil : value(at: hi)
        let a = lowerBound(lo)
        let b = lowerBound(hi)
        var newStarts: [UInt64] = [lo]
        var newValues: [Value] = [v]
        if let tail, b == starts.count || starts[b] != hi {
            newStarts.append(hi)
            newValues.append(tail)
        }
        starts.replaceSubrange(a..<b, with: newStarts)
        values.replaceSubrange(a..<b, with: newValues)
        var k = min(a + 2, starts.count - 1)
        while k >= max(a, 1) {
            if values[k] == values[k - 1] {
                starts.remove(at: k)
                values.remove(at: k)
            }
            k -= 1
        }
    }

    /// Runs intersecting `r`, clipped to it, in ascending order.
    /// - Complexity: O(log n + k).
    public func runs(in r: Range<UInt64>) -> [(range: Range<UInt64>, value: Value)] {
        guard !r.isEmpty else { return [] }
        var out: [(Range<UInt64>, Value)] = []
        var i = runIndex(r.lowerBound)
        while i < starts.count, starts[i] < r.upperBound {
            let s = max(starts[i], r.lowerBound)
            let e = min(i + 1 < starts.count ? starts[i + 1] : UInt64.max, r.upperBound)
            out.append((s..<e, values[i]))
            i += 1
        }
        return out
    }

    /// True if every key in `r` satisfies `p`.
    public func allSatisfy(in r: Range<UInt64>, _ p: (Value) -> Bool) -> Bool {
        runs(in: r).allSatisfy { p($0.value) }
    }

    /// Total number of keys in `r` whose value satisfies `p`.
    public func measure(in r: Range<UInt64>, where p: (Value) -> Bool) -> UInt64 {
        runs(in: r).reduce(0) { p($1.value) ? $0 + UInt64($1.range.count) : $0 }
    }

    /// Debug-only structural check.
    public func _checkInvariants() {
        #if DEBUG
        precondition(starts.first == 0 && starts.count == values.count)
        for i in 1..<max(1, starts.count) {
            precondition(starts[i - 1] < starts[i], "IntervalMap starts not increasing")
            precondition(values[i - 1] != values[i], "IntervalMap adjacent runs not merged")
        }
        #endif
    }
}
