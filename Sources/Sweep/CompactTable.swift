import Foundation
import MemoryModel

/// The compact table `cocomem sweep` and `cocomem results show` print: the
/// point index, the scenario columns whose values differ between the rows
/// (the axes), the total boot time, and the outcome.
public enum CompactTable {
    /// The figures every table shows, when the rows have them.
    public static let figures = ["virtual_time_total_boot_s", "outcome"]
    /// The figures of a check sweep's rows (`cocomem sweep CHECKFILE`, the
    /// Checking module's `CheckSweep`): a search's size and its verdict.
    public static let checkFigures = ["check_states", "check_depth_reached", "check_violations", "outcome"]

    public static func render(_ rows: [Row]) -> String {
        guard !rows.isEmpty else { return "(no points)\n" }
        let varying = varyingScenarioColumns(rows)
        let onlyChecks = rows.allSatisfy { ($0["check_model"] ?? .null) != .null }
        let columns = ["point"] + varying + (onlyChecks ? checkFigures : figures)
        let header = columns.map { $0 == "virtual_time_total_boot_s" ? "total_boot_s" : $0 }
        let body = rows.map { r in columns.map { c in text(r[c] ?? .null, column: c) } }
        var widths = header.map(\.count)
        for line in body { for (i, v) in line.enumerated() where i < columns.count - 1 { widths[i] = max(widths[i], v.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, v in i == cells.count - 1 ? v : v.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
        }
        return line(header) + body.map(line).joined()
    }

    /// The scenario columns whose values differ between the rows (the
    /// axes), in the order the rows name them.
    /// - Complexity: O(rows × columns).
    public static func varyingScenarioColumns(_ rows: [Row]) -> [String] {
        var scenario: [String] = []
        for r in rows { for c in r.columns where r.scenarioColumns.contains(c) && !scenario.contains(c) { scenario.append(c) } }
        return scenario.filter { c in Set(rows.map { $0[c] ?? .null }).count > 1 }
    }

    /// Sizes as `64G`, times with three decimals, the rest as stored.
    static func text(_ cell: Cell, column: String) -> String {
        if case .int(let i) = cell, i >= 0, Row.sizeKeys.contains(where: { column.hasSuffix(Row.column($0)) }) {
            return SweepRange.sizeText(UInt64(i))
        }
        if case .double(let d) = cell { return Cell.decimal((d * 1000).rounded() / 1000) }
        return cell.text
    }

    /// The find answers, one line per combination of the other axes.
    public static func render(_ answers: [FindAnswer], find: FindSpec, axis: String) -> String {
        var o = "find: \(find.largest ? "largest" : "smallest") \(axis) where \(find.whereText)\n"
        for a in answers {
            let group = a.group.isEmpty ? "" : a.group.map { "\($0)=\($1)" }.joined(separator: " ") + ": "
            o += "  \(group)\(a.value ?? "none") (\(a.reason))\n"
            for v in a.violations { o += "    not monotone: \(v)\n" }
        }
        return o
    }
}
