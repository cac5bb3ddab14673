public import Simulation
import MemoryModel

/// The memory strip for a terminal: per snapshot, one line per RAM region
/// (a run of RAM between holes), `columns` cells wide, each cell showing
/// whether the memory it covers is accepted (`█`), unaccepted (`░`) or
/// both (`▒`); holes get a line of their own. `cocomem boot --strip`.
public enum TerminalStrip {
    /// The strip of every snapshot of `record`, or a line saying there is none.
    /// - Complexity: O(ranges + regions × columns).
    public static func text(_ record: RunRecord, columns: Int = 64) -> String {
        guard !record.snapshots.isEmpty else { return "\nMemory strip: this run recorded no memory snapshot.\n" }
        var o = ""
        for s in record.snapshots { o += "\n" + text(s, columns: columns) }
        return o
    }

    /// One snapshot's strip with its legend line.
    public static func text(_ s: MemorySnapshot, columns: Int = 64) -> String {
        var o = "Memory at \(s.label) (\(format3(s.time)) s): █ accepted  ░ unaccepted  ▒ both, \(columns) cells per region\n"
        var i = 0
        let rs = s.ranges
        while i < rs.count {
            if rs[i].acceptance == .notRAM {
                let a = rs[i].range.lowerBound.value, b = rs[i].range.upperBound.value
                o += "  \(Markup.addressRange(a, b)) \(Markup.bytes(b - a).leftPadded(9))  (hole, not RAM)\n"
                i += 1
                continue
            }
            var j = i
            while j < rs.count, rs[j].acceptance != .notRAM { j += 1 }
            let start = rs[i].range.lowerBound.value, end = rs[j - 1].range.upperBound.value
            var cells = [UInt8](repeating: 0, count: columns)
            let span = Double(end - start)
            for r in rs[i..<j] {
                let bit: UInt8 = r.acceptance == .accepted ? 1 : 2
                let a = Int(Double(r.range.lowerBound.value - start) / span * Double(columns))
                let b = Int((Double(r.range.upperBound.value - start) / span * Double(columns)).rounded(.up))
                for c in max(0, a)..<min(columns, max(b, a + 1)) { cells[c] |= bit }
            }
            let line = String(cells.map { $0 == 1 ? "█" : $0 == 2 ? "░" : "▒" })
            o += "  \(Markup.addressRange(start, end)) \(Markup.bytes(end - start).leftPadded(9))  \(line)\n"
            i = j
        }
        return o
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
