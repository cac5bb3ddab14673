import MemoryModel

extension String {
    /// A table cell: left-aligned in `n` columns, with at least one space after it.
    package func padded(_ n: Int) -> String { count >= n ? self + " " : rightPadded(n) }
}

/// `%.3f` the way every report prints seconds: rounded to the millisecond.
package func format3(_ v: Double) -> String {
    let m = (v * 1000).rounded()
    let i = Int64(m)
    let frac = abs(i % 1000)
    return "\(i / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)"
}
