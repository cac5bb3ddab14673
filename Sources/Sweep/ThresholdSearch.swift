import MemoryModel

/// The answer of a threshold search for one combination of the other axes.
public struct FindAnswer: Sendable, Equatable {
    /// The other axes' values (`guest_vcpus=8`), in file order.
    public var group: [(String, String)]
    /// The value found (as the file writes it), nil when no point satisfies the condition.
    public var value: String?
    /// Why: `holds at 612G, fails at 613G (resolution 1G)`, `holds up to the range's end`, ...
    public var reason: String
    /// Where the visited points contradict the monotonicity bisection
    /// assumes (`fails at 67000M but holds at 68G`), in order of the axis.
    public var violations: [String]

    public static func == (a: FindAnswer, b: FindAnswer) -> Bool {
        a.group.map { "\($0)=\($1)" } == b.group.map { "\($0)=\($1)" } && a.value == b.value && a.reason == b.reason && a.violations == b.violations
    }
}

extension SweepRunner {
    /// The number the point index of a search's extra points is spaced by:
    /// a bisection over at most 2^64 grid values takes at most 64 steps.
    static let searchStride = 64

    /// Bisection along the find axis for group `g`. The axis's own values
    /// (the coarse points, already run) locate the step where the condition
    /// changes (the last value where it holds, for `largest`; the first, for
    /// `smallest`); for a range axis, bisection between that value and the
    /// next at the resolution (the grid `value + k × resolution`) finds the
    /// threshold. Every visited point, coarse or bisected, is checked for
    /// the monotonicity bisection assumes (the condition holds on one side
    /// of the threshold and not on the other); each contradiction is reported.
    /// - Complexity: O(log((next - value) / resolution)) extra points.
    func search(_ find: FindSpec, group g: Int, coarse: [Int: Row]) throws -> (FindAnswer, [Row], [Bool]) {
        let axis = file.axes[find.axis]
        let indices = pointsOfGroup(g)
        let digits0 = file.digits(of: indices[0])
        let group = file.axes.indices.filter { $0 != find.axis }.map { (file.axes[$0].column, file.axes[$0].values[digits0[$0]]) }
        // visited: (ordering value, text, holds)
        var visited: [(Double, String, Bool)] = []
        var holds: [Bool] = []
        for (k, i) in indices.enumerated() {
            guard let row = coarse[i] else { throw CocomemError(.invalidScenario, "internal: point \(i) of group \(g) was not run") }
            let h = try find.condition.holds(for: row)
            holds.append(h)
            visited.append((axis.range.map { Double($0.value(at: UInt64(k))) } ?? Double(k), axis.values[k], h))
        }
        var extra: [Row] = []
        var extraNew: [Bool] = []
        var value: String? = nil
        var reason: String
        // The boundary among the coarse values: holds at `a`, not at `a+1` (largest), or the reverse.
        let boundary: Int? = find.largest ? holds.lastIndex(of: true) : holds.firstIndex(of: true)
        let res = find.step
        if let b = boundary {
            let atEnd = find.largest ? b == holds.count - 1 : b == 0
            if atEnd {
                value = axis.values[b]
                reason = find.largest ? "holds up to the axis's last value" : "holds from the axis's first value"
            } else if let range = axis.range {
                // Bisection on the grid lo + k*res between the two coarse values.
                let loK = find.largest ? b : b - 1
                let lo = range.value(at: UInt64(loK)), hi = range.value(at: UInt64(loK + 1))
                var l: UInt64 = 0
                var h: UInt64 = (hi - lo + res - 1) / res   // grid index of hi (hi itself if not on the grid)
                func at(_ k: UInt64) -> UInt64 { k == (hi - lo + res - 1) / res ? hi : lo + k * res }
                var step = 0
                while h - l > 1 {
                    let m = l + (h - l) / 2
                    let v = at(m)
                    let text = range.text(v)
                    let point = Point(index: file.count + g * Self.searchStride + step, digits: digits0, overriding: [find.axis: text])
                    let (rows, news) = try runPoints([point])
                    let ok = try find.condition.holds(for: rows[0])
                    extra += rows; extraNew += news
                    visited.append((Double(v), text, ok))
                    // largest: holds at l, fails at h; smallest: fails at l, holds at h.
                    if ok == find.largest { l = m } else { h = m }
                    step += 1
                }
                let found = find.largest ? at(l) : at(h)
                value = range.text(found)
                let other = find.largest ? at(h) : at(l)
                reason = find.largest ? "holds at \(range.text(found)), fails at \(range.text(other))" : "fails at \(range.text(other)), holds at \(range.text(found))"
                reason += "; resolution \(range.text(res))"
            } else {
                value = axis.values[b]
                let next = find.largest ? axis.values[b + 1] : axis.values[b - 1]
                reason = find.largest ? "holds at \(axis.values[b]), fails at \(next) (the list's next value)" : "fails at \(next), holds at \(axis.values[b]) (the list's values)"
            }
        } else {
            reason = "holds at none of the axis's values"
        }
        return (FindAnswer(group: group, value: value, reason: reason, violations: Self.violations(visited, largest: find.largest)), extra, extraNew)
    }

    /// Where visited points break monotonicity: for `largest` a point that
    /// fails below one that holds; for `smallest` a point that holds below
    /// one that fails. One line per contradicting pair of neighbours in axis order.
    static func violations(_ visited: [(Double, String, Bool)], largest: Bool) -> [String] {
        let sorted = visited.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element)
        var out: [String] = []
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.2 != b.2 {
            // largest expects holds → fails going up; smallest fails → holds.
            let wrong = largest ? (!a.2 && b.2) : (a.2 && !b.2)
            if wrong { out.append("\(a.2 ? "holds" : "fails") at \(a.1) but \(b.2 ? "holds" : "fails") at \(b.1)") }
        }
        return out
    }
}
