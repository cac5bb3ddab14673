/// A value in a row of sweep results: a number (sizes in bytes, times in
/// seconds, counts) or a text (a platform, a kernel version).
public enum SweepValue: Sendable, Equatable, Hashable {
    case number(Double)
    case text(String)

    var number: Double? { if case .number(let v) = self { v } else { nil } }
    var label: String {
        switch self {
        case .number(let v): Markup.trimmed(v)
        case .text(let s): s
        }
    }
}

/// Line plots of sweep results: one figure (`y`) against one axis (`x`),
/// one line per value of another axis (`series`), as in "boot time against
/// memory, one line per vCPU count". It reads rows as the results database
/// returns them (`[[column: value]]`), so it is independent of how they
/// were stored.
public enum SweepPlot {
    /// The plot as HTML (inline SVG and legend). Rows without a numeric `x`
    /// or `y` are left out and counted in the note. The x axis is
    /// logarithmic when the values are positive and span 100× or more
    /// (memory sizes from 4 GiB to 4 TiB); columns named `*bytes*` or
    /// `memory` read in binary units, `*_s` in seconds.
    /// - Complexity: O(rows log rows).
    public static func html(rows: [[String: SweepValue]], x: String, y: String, series: String?, title: String? = nil) -> String {
        var groups: [SweepValue: [(Double, Double)]] = [:]
        var skipped = 0
        for r in rows {
            guard let xv = r[x]?.number, let yv = r[y]?.number, xv.isFinite, yv.isFinite else { skipped += 1; continue }
            groups[series.flatMap { r[$0] } ?? .text(""), default: []].append((xv, yv))
        }
        let keys = groups.keys.sorted { a, b in
            switch (a.number, b.number) {
            case let (p?, q?): p < q
            default: a.label < b.label
            }
        }
        let xs = groups.values.flatMap { $0.map(\.0) }, ys = groups.values.flatMap { $0.map(\.1) }
        let title = title ?? "\(y) against \(x)" + (series.map { ", one line per \($0)" } ?? "")
        guard let xlo = xs.min(), let xhi = xs.max(), let yhi = ys.max() else {
            return "<h3>\(Markup.escape(title))</h3><p class=\"note\">No row has numbers for both \(Markup.escape(x)) and \(Markup.escape(y)).</p>"
        }
        let ylo = min(0, ys.min() ?? 0)
        let logX = xlo > 0 && xhi / xlo >= 100
        let f = PlotFrame(x: Axis(lo: xlo, hi: xhi, log: logX, label: x + (logX ? " (log scale)" : ""), binary: isBytes(x), format: formatter(x)),
                          y: Axis(lo: ylo, hi: yhi * 1.05, label: y, binary: isBytes(y), format: formatter(y)), height: 340)
        var o = "<h3>\(Markup.escape(title))</h3>" + f.open(title: title, cssClass: "plot sweep")
        var legend: [(String, String)] = []
        for (k, key) in keys.enumerated() {
            let color = seriesPalette[k % seriesPalette.count]
            let pts = groups[key]!.sorted { $0.0 < $1.0 }
            // A line of several axes (`a, b`) is named by its values, which name their columns (`a=1, b=x`).
            let name = series.map { $0.contains(", ") ? key.label : "\($0) = \(key.label)" } ?? y
            o += f.polyline(pts, color: color, title: "\(name): \(pts.count) points")
            // Markers where they can be told apart, with the exact values on hover.
            if pts.count <= 60 {
                for (xv, yv) in pts {
                    o += "<circle cx=\"\(Markup.num(f.px(xv)))\" cy=\"\(Markup.num(f.py(yv)))\" r=\"3\" fill=\"\(color)\"><title>\(Markup.escape("\(name): \(x) \(formatter(x)(xv)), \(y) \(formatter(y)(yv))"))</title></circle>"
                }
            }
            legend.append((name, color))
        }
        o += "</svg>" + legendHTML(legend)
        if skipped > 0 { o += "<p class=\"note\">\(skipped) rows without numbers for \(Markup.escape(x)) and \(Markup.escape(y)) are not drawn.</p>" }
        return o
    }

    /// A whole page of sweep plots: each (x, y, series) triple one figure.
    /// - Complexity: O(plots × rows log rows).
    public static func page(rows: [[String: SweepValue]], plots: [(x: String, y: String, series: String?)], title: String) -> String {
        let sections = plots.map { p in HTMLPage.Section(title: "\(p.y) against \(p.x)", html: html(rows: rows, x: p.x, y: p.y, series: p.series)) }
        return HTMLPage(title: title, subtitle: "\(rows.count) results", summary: [("rows", Markup.count(UInt64(rows.count)))], sections: sections).render()
    }

    static func isBytes(_ column: String) -> Bool { column.contains("bytes") || column == "memory" || column.hasSuffix("_memory") }

    static func formatter(_ column: String) -> (Double) -> String {
        if isBytes(column) { return { Markup.bytes($0) } }
        if column.hasSuffix("_s") || column.hasSuffix("seconds") { return { Markup.seconds($0) } }
        return { Markup.trimmed($0) }
    }
}
