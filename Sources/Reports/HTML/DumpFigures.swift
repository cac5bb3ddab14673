package import CrashDump

/// The figures of a dump: the vmcore's composition by page class and what
/// each dump level (under each makedumpfile version) removes.
package enum DumpFigures {
    static let classColors: [CrashDump.PageClass: String] = [
        .unaccepted: "#c8c8c8", .freeZero: "#9ccc65", .kernelText: "#b71c1c", .kernelData: "#e57373", .memmap: "#6a1b9a",
        .pageTables: "#d81b60", .slab: "#8d6e63", .pageCache: "#1565c0", .anonymous: "#ef6c00", .crashKernel: "#546e7a",
        .hugetlb: "#00838f",
    ]

    /// A 100% bar of the vmcore's pages by class, with a table of pages and bytes.
    /// - Complexity: O(classes).
    package static func composition(_ pagesByClass: [CrashDump.PageClass: UInt64]) -> String {
        let total = pagesByClass.values.reduce(0, +)
        guard total > 0 else {
            return "<p class=\"note\">No composition by page class: the pages came from an input file, whose pages cocomem did not generate.</p>"
        }
        let width = 1000.0, h = 34.0
        var o = "<svg class=\"composition\" viewBox=\"0 0 \(Markup.num(width)) \(Markup.num(h + 4))\" width=\"100%\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>The vmcore by page class</title>"
        var x = 0.0
        var rows = ""
        var legend: [(String, String)] = []
        for c in CrashDump.PageClass.allCases {
            let n = pagesByClass[c] ?? 0
            guard n > 0 else { continue }
            let w = Double(n) / Double(total) * width
            let pct = Double(n) * 100 / Double(total)
            let t = "\(c.description): \(Markup.count(n)) pages, \(Markup.bytes(n * 4096)), \(Markup.trimmed(pct))%"
            o += "<rect x=\"\(Markup.num(x))\" y=\"2\" width=\"\(Markup.num(max(w, 1)))\" height=\"\(Markup.num(h))\" fill=\"\(classColors[c] ?? "#999")\" data-pages=\"\(n)\" data-class=\"\(Markup.escape(c.description))\"><title>\(Markup.escape(t))</title></rect>"
            // Dark text on the light classes (unaccepted, free), white on the others.
            let light = c == .unaccepted || c == .freeZero
            if w > 70 { o += "<text class=\"barlabel\" x=\"\(Markup.num(x + 4))\" y=\"\(Markup.num(h / 2 + 6))\" fill=\"\(light ? "#222" : "#fff")\" font-size=\"12\">\(Markup.escape(c.description))</text>" }
            x += w
            legend.append((c.description, classColors[c] ?? "#999"))
            rows += "<tr><td><span class=\"sw\" style=\"background:\(classColors[c] ?? "#999")\"></span>\(Markup.escape(c.description))</td><td>\(Markup.count(n))</td><td>\(Markup.escape(Markup.bytes(n * 4096)))</td><td>\(Markup.trimmed(pct))%</td></tr>"
        }
        o += "</svg>" + legendHTML(legend)
        o += "<table class=\"small\"><tr><th>page class</th><th>pages</th><th>bytes</th><th>share</th></tr>\(rows)</table>"
        return o
    }

    /// One bar per dump level: the pages the filter keeps out of the
    /// PT_LOAD pages, versions that agree on one row, the run's own level marked.
    /// - Complexity: O(comparisons).
    package static func levels(_ comparisons: [LevelComparison], runLevel: Int, runVersion: MakedumpfileVersion, zeroPages: UInt64) -> String {
        guard let total = comparisons.first?.totalPages, total > 0 else { return "" }
        // Versions that keep the same pages at one level share a row.
        var rows: [(level: Int, versions: [MakedumpfileVersion], c: LevelComparison)] = []
        for c in comparisons {
            if let i = rows.firstIndex(where: { $0.level == c.dumpLevel && $0.c.keptPages == c.keptPages && $0.c.counts == c.counts }) {
                rows[i].versions.append(c.version)
            } else { rows.append((c.dumpLevel, [c.version], c)) }
        }
        let rowH = 24.0, labelW = 300.0, width = 1000.0
        let barW = width - labelW - 170
        let height = Double(rows.count) * (rowH + 6) + 8
        var o = "<svg class=\"levels\" viewBox=\"0 0 \(Markup.num(width)) \(Markup.num(height))\" width=\"100%\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>Pages each dump level keeps</title>"
        for (i, r) in rows.enumerated() {
            let y = Double(i) * (rowH + 6) + 4
            let mine = r.level == runLevel && r.versions.contains(runVersion)
            let label = "-d \(r.level), makedumpfile \(r.versions.map(\.rawValue).joined(separator: ", "))" + (mine ? " (this run)" : "")
            let kept = r.c.keptPages
            let w = Double(kept) / Double(total) * barW
            let pct = Double(kept) * 100 / Double(total)
            let cn = r.c.counts
            let t = "\(label): keeps \(Markup.count(kept)) of \(Markup.count(total)) pages; removes cache \(Markup.count(cn.cache)), private cache \(Markup.count(cn.privateCache)), user \(Markup.count(cn.user)), free \(Markup.count(cn.free))"
            o += "<text class=\"rowlabel\" x=\"\(Markup.num(labelW - 8))\" y=\"\(Markup.num(y + rowH / 2 + 4))\" text-anchor=\"end\"\(mine ? " font-weight=\"bold\"" : "")>\(Markup.escape(label))</text>"
            o += "<rect x=\"\(Markup.num(labelW))\" y=\"\(Markup.num(y))\" width=\"\(Markup.num(barW))\" height=\"\(Markup.num(rowH))\" fill=\"#eeeeee\"/>"
            o += "<rect x=\"\(Markup.num(labelW))\" y=\"\(Markup.num(y))\" width=\"\(Markup.num(max(w, 1)))\" height=\"\(Markup.num(rowH))\" fill=\"\(mine ? "#d55e00" : "#0072b2")\" data-kept=\"\(kept)\"><title>\(Markup.escape(t))</title></rect>"
            o += "<text class=\"tick\" x=\"\(Markup.num(labelW + barW + 8))\" y=\"\(Markup.num(y + rowH / 2 + 4))\">\(Markup.escape("\(Markup.bytes(kept * 4096)) kept (\(Markup.trimmed(pct))%)"))</text>"
        }
        o += "</svg>"
        o += "<p class=\"note\">Bars: the pages makedumpfile's filter keeps (the 2nd bitmap) out of \(Markup.count(total)) PT_LOAD pages (\(Markup.escape(Markup.bytes(total * 4096)))), computed per range for each level and version. Zero pages (bit 1) are found only while pages are written and are not in the bars: this run found \(Markup.count(zeroPages)). Versions that keep the same pages share a row; 1.7.8 and later exclude unaccepted blocks under bit 16.</p>"
        return o
    }
}
