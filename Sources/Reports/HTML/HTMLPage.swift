import MemoryModel

/// A self-contained HTML report: a title, a summary table with the numbers
/// the text report prints, and sections of figures. Inline CSS and SVG
/// only: no script, no font, no network, so the file opens anywhere and
/// can be attached to a mailing-list thread.
package struct HTMLPage {
    package struct Section {
        package var title: String
        package var html: String
        package init(title: String, html: String) { self.title = title; self.html = html }
    }

    package var title: String
    package var subtitle: String
    /// The summary: tables of label, value rows, each under its heading
    /// (none for a single table), side by side where the page is wide enough.
    package var summary: [(title: String?, rows: [(String, String)])]
    package var sections: [Section]

    package init(title: String, subtitle: String, summary: [(String, String)], sections: [Section]) {
        self.init(title: title, subtitle: subtitle, summaryGroups: [(nil, summary)], sections: sections)
    }

    package init(title: String, subtitle: String, summaryGroups: [(title: String?, rows: [(String, String)])], sections: [Section]) {
        self.title = title; self.subtitle = subtitle; self.summary = summaryGroups; self.sections = sections
    }

    static let css = """
    body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1a1a1a;background:#fff;margin:0}
    main{max-width:1100px;margin:0 auto;padding:18px 24px 40px}
    h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
    h3{font-size:15px;margin:18px 0 4px}.when{font-weight:normal;color:#666}
    .subtitle{color:#555;margin:0 0 12px}
    table{border-collapse:collapse;margin:6px 0 10px}td,th{padding:3px 12px 3px 0;text-align:left;vertical-align:top}
    table.summary td:first-child{color:#555;white-space:nowrap}table.summary td:last-child{font-variant-numeric:tabular-nums;font-weight:600}
    .sgroups{display:flex;flex-wrap:wrap;gap:0 44px;align-items:flex-start}
    caption{text-align:left;font-weight:600;padding:2px 0 4px;color:#333}.sgroups table.summary{flex:1 1 400px;max-width:540px}
    table.small{font-size:12px}table.small th{border-bottom:1px solid #ccc}
    svg{display:block;margin:4px 0}svg text{font-family:inherit}
    .tick{font-size:11px;fill:#444}.axislabel{font-size:12px;fill:#333}.rowlabel{font-size:12px;fill:#222}
    .holelabel,.markerlabel{font-size:10px;fill:#555}.phaselabel{font-size:10.5px;fill:#333}
    .grid{stroke:#eee}.frame{fill:none;stroke:#999}.axis{stroke:#999}line.tick{stroke:#999}
    .phase0{fill:#f6f6f6}.phase1{fill:#fff}.phaseline{stroke:#888;stroke-dasharray:3 3}
    .line{stroke-width:1.8}.marker{stroke-dasharray:4 3;stroke-width:1.3}
    .legend{font-size:12.5px;margin:2px 0 6px}.lgroup{margin-right:16px;white-space:nowrap;display:inline-block}
    .sw{display:inline-block;width:11px;height:11px;margin:0 4px 0 6px;vertical-align:-1px;border:1px solid #0003}
    .note{font-size:12px;color:#666;margin:2px 0 8px}
    """

    /// The page's bytes (UTF-8 HTML).
    /// - Complexity: O(total size of the sections).
    package func render() -> String {
        var o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><meta name=\"viewport\" content=\"width=device-width\"/>"
        o += "<title>\(Markup.escape(title))</title><style>\(Self.css)</style></head><body><main>"
        // The hatch every strip's holes use, defined once.
        o += "<svg width=\"0\" height=\"0\" style=\"position:absolute\" aria-hidden=\"true\"><defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fff\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#777\" stroke-width=\"2\"/></pattern></defs></svg>"
        o += "<h1>\(Markup.escape(title))</h1><p class=\"subtitle\">\(Markup.escape(subtitle))</p>"
        o += "<h2>Summary</h2><div class=\"sgroups\">"
        for g in summary where !g.rows.isEmpty {
            o += "<table class=\"summary\">"
            if let t = g.title { o += "<caption>\(Markup.escape(t))</caption>" }
            for (k, v) in g.rows { o += "<tr><td>\(Markup.escape(k))</td><td>\(Markup.escape(v))</td></tr>" }
            o += "</table>"
        }
        o += "</div>"
        for s in sections { o += "<section><h2>\(Markup.escape(s.title))</h2>\(s.html)</section>" }
        o += "<p class=\"note\">Made by cocomem \(Markup.escape(CocomemVersion.current)); virtual times come from the cost model, not from a real machine.</p>"
        o += "</main></body></html>\n"
        return o
    }
}
