import Foundation
import MemoryModel
import Reports

/// One figure of a sweep's report: the figure `y` against the axis `x`,
/// one line per value of `by` (`--plot memory,total_boot_s,vcpus`: boot
/// time against memory, one line per vCPU count). Names resolve as in the
/// `where` language: a full column name, or the one column it ends.
public struct PlotSpec: Sendable, Equatable {
    public var x: String
    public var y: String
    /// The columns whose combined values name a line (empty: one line).
    public var by: [String]

    public init(x: String, y: String, by: [String] = []) { self.x = x; self.y = y; self.by = by }

    /// Parses `X,Y[,BY[,BY...]]`.
    public static func parse(_ text: String) throws -> PlotSpec {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count >= 2, !parts.contains(where: \.isEmpty) else {
            throw CocomemError(.invalidScenario, "--plot '\(text)' is not X,Y[,BY] (for example memory,total_boot_s,vcpus)")
        }
        return PlotSpec(x: parts[0], y: parts[1], by: Array(parts.dropFirst(2)))
    }
}

/// The HTML report of a sweep (`cocomem sweep --report`, `cocomem results
/// show --report`): line plots of its rows drawn by `SweepPlot`, the page
/// issue 14 asks of a sweep.
public enum SweepReport {
    /// The figure plotted when none is named: the total boot time.
    public static let defaultFigure = "virtual_time_total_boot_s"

    /// The plots drawn when none are named: the total boot time against
    /// each numeric axis (a scenario column whose values differ between the
    /// rows), one line per combination of the other axes; with no numeric
    /// axis, against the point index, one marker per combination.
    /// - Complexity: O(rows × columns).
    public static func defaultPlots(_ rows: [Row]) -> [PlotSpec] {
        let axes = varyingScenarioColumns(rows)
        let numeric = axes.filter { c in rows.allSatisfy { $0[c]?.number != nil } }
        // Axes of names only (platform, accept mode): the points in order, one line per combination.
        guard !numeric.isEmpty else { return [PlotSpec(x: "point", y: defaultFigure, by: axes)] }
        return numeric.map { x in PlotSpec(x: x, y: defaultFigure, by: axes.filter { $0 != x }) }
    }

    /// The page: one figure per plot.
    /// - Complexity: O(plots × rows log rows).
    public static func html(rows: [Row], plots: [PlotSpec], title: String) throws -> String {
        guard !rows.isEmpty else { return SweepPlot.page(rows: [], plots: [], title: title) }
        // Every row's columns: a figure only some points have (an SNP
        // counter in a sweep over both platforms) is still a column.
        let resolved = try resolve(plots, columnsOf: rows)
        let table = rows.map { r in plotRow(r, plots: resolved) }
        return SweepPlot.page(rows: table, plots: resolved.map { ($0.x, $0.y, $0.by.isEmpty ? nil : lineColumn($0.by)) }, title: title)
    }

    /// Resolves plot names before a sweep runs, so that a typo fails at
    /// once: against the columns of `probes`, rows of some of the sweep's
    /// points (`SweepRunner.probe()`: the first point of each platform,
    /// whose figures are the ones that platform's points have) joined, with
    /// the `where` language's rule (`Expression.column`, narrowed to
    /// scenario columns for a name several columns end in). A name no
    /// column matches is one error naming the nearest columns.
    /// - Returns: the plots with full column names.
    /// - Complexity: O(rows × columns) to join them (rows with the columns of
    ///   the row before cost one comparison), then O(plots × columns).
    public static func resolve(_ plots: [PlotSpec], columnsOf probes: [Row]) throws -> [PlotSpec] {
        var vocabulary = Row()
        var seen: Set<String> = []
        var previous: [String] = []
        for r in probes where r.columns != previous {
            previous = r.columns
            for c in r.columns where seen.insert(c).inserted { vocabulary.append(c, .null) }
            vocabulary.scenarioColumns.formUnion(r.scenarioColumns)
        }
        return try plots.map { p in
            func column(_ name: String) throws -> String {
                do { return try Expression.column(name, in: vocabulary, preferringScenario: true) } catch let e as CocomemError {
                    throw CocomemError(e.code, "--plot \(([p.x, p.y] + p.by).joined(separator: ",")): \(e.message.replacingOccurrences(of: "in the results", with: "in the sweep's points"))")
                }
            }
            return PlotSpec(x: try column(p.x), y: try column(p.y), by: try p.by.map(column))
        }
    }

    /// The scenario columns whose values differ between the rows: the axes.
    /// A column that only follows another (the firmware generation a
    /// platform implies) is left out: it would split no line further.
    static func varyingScenarioColumns(_ rows: [Row]) -> [String] {
        let varying = CompactTable.varyingScenarioColumns(rows)
            .sorted { (preferred.firstIndex(of: $0) ?? preferred.count, $0) < (preferred.firstIndex(of: $1) ?? preferred.count, $1) }
        var kept: [String] = []
        for c in varying where !kept.contains(where: { sameGrouping($0, c, rows) }) { kept.append(c) }
        return kept
    }

    /// The axes users sweep most, named first (and kept over a column that
    /// follows them, such as the firmware generation of a platform).
    static let preferred = ["guest_platform", "guest_memory", "guest_vcpus", "kernel_version", "kernel_accept", "host_kind"]

    /// Whether two columns split the rows into the same groups.
    static func sameGrouping(_ a: String, _ b: String, _ rows: [Row]) -> Bool {
        var ab: [Cell: Cell] = [:], ba: [Cell: Cell] = [:]
        for r in rows {
            let x = r[a] ?? .null, y = r[b] ?? .null
            if let seen = ab[x], seen != y { return false }
            if let seen = ba[y], seen != x { return false }
            ab[x] = y; ba[y] = x
        }
        return true
    }

    /// The synthetic column naming a row's line: `kernel_accept=lazy, guest_vcpus=8`.
    static func lineColumn(_ by: [String]) -> String { by.joined(separator: ", ") }

    static func plotRow(_ r: Row, plots: [PlotSpec]) -> [String: SweepValue] {
        var out: [String: SweepValue] = [:]
        for p in plots {
            for c in [p.x, p.y] + p.by { out[c] = value(r[c] ?? .null) }
            if !p.by.isEmpty {
                let values = p.by.map { CompactTable.text(r[$0] ?? .null, column: $0) }
                out[lineColumn(p.by)] = .text(p.by.count == 1 ? values[0] : zip(p.by, values).map { "\($0)=\($1)" }.joined(separator: ", "))
            }
        }
        return out
    }

    static func value(_ c: Cell) -> SweepValue? {
        switch c {
        case .int(let i): .number(Double(i))
        case .double(let d): .number(d)
        case .text(let s): .text(s)
        case .null: nil
        }
    }
}
