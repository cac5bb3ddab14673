package import Simulation

/// The figures of a `RunRecord`: memory strips per snapshot, timelines of
/// the series with the phases marked, per-vCPU lanes and allocation-latency
/// histograms. Each function returns HTML (inline SVG plus an HTML legend).
package enum RecordFigures {
    /// The sections for `record`, in reading order; `guestBytes` is the
    /// guest's configured memory (what each strip's RAM adds up to).
    /// - Complexity: O(ranges log ranges + points + spans + buckets).
    package static func sections(_ record: RunRecord, guestBytes: UInt64, guestRAM: [Range<UInt64>] = []) -> [HTMLPage.Section] {
        var out: [HTMLPage.Section] = []
        if record.snapshots.isEmpty && record.series.isEmpty && record.lanes.isEmpty && record.latencies.isEmpty {
            return [HTMLPage.Section(title: "Over virtual time", html: "<p class=\"note\">This run recorded nothing over virtual time (no phases, series, snapshots, vCPU lanes or latencies), so there is nothing to draw here.</p>")]
        }
        if !record.snapshots.isEmpty {
            var html = ""
            for (k, s) in record.snapshots.enumerated() {
                html += "<h3>\(Markup.escape(s.label)) <span class=\"when\">at \(Markup.escape(Markup.seconds(s.time)))</span></h3>"
                html += MemoryStrip.html(s, guestBytes: guestBytes, guestRAM: guestRAM, explain: k == 0)
            }
            out.append(HTMLPage.Section(title: "Memory strips", html: html))
        }
        let end = record.phases.map(\.end).max() ?? 0
        let seriesEnd = record.series.flatMap { $0.points.map(\.time) }.max() ?? 0
        let laneEnd = record.lanes.flatMap { $0.spans.map(\.end) }.max() ?? 0
        let tEnd = max(end, seriesEnd, laneEnd)
        if !record.series.isEmpty || !record.phases.isEmpty {
            var html = ""
            let units = ["bytes", "count", "per_second"] + Set(record.series.map(\.unit)).subtracting(["bytes", "count", "per_second"]).sorted()
            for perVCPU in [false, true] {
                for unit in units {
                    let group = record.series.filter { $0.unit == unit && ($0.vcpu != nil) == perVCPU && !$0.points.isEmpty }
                    guard !group.isEmpty else { continue }
                    let what = unit == "bytes" ? "Memory" : unit == "per_second" ? "Rates" : "Counts"
                    html += timeline(group, phases: record.phases, end: tEnd, title: perVCPU ? "\(what) per vCPU" : what)
                }
            }
            if record.series.isEmpty { html += timeline([], phases: record.phases, end: tEnd, title: "Phases") }
            out.append(HTMLPage.Section(title: "Timelines", html: html))
        }
        if !record.lanes.isEmpty {
            out.append(HTMLPage.Section(title: "vCPU lanes", html: lanes(record.lanes, phases: record.phases, end: tEnd)))
        }
        if !record.latencies.isEmpty {
            out.append(HTMLPage.Section(title: "Allocation latency", html: latencies(record.latencies)))
        }
        return out
    }

    /// How a value of `unit` reads on an axis, and whether its ticks are powers of two.
    static func valueAxis(unit: String, max: Double) -> Axis {
        switch unit {
        case "bytes": Axis(lo: 0, hi: max, label: "bytes", binary: true, format: { Markup.bytes($0) })
        case "per_second": Axis(lo: 0, hi: max, label: "per second", format: { Markup.si($0) })
        default: Axis(lo: 0, hi: max, label: unit, format: { Markup.si($0) })
        }
    }

    /// Phase bands (alternately shaded, with a dashed line at each start
    /// and the name on top, in two rows where names would collide).
    static func phaseBands(_ phases: [PhaseSpan], frame f: PlotFrame) -> String {
        var o = ""
        var lastLabelEnd = [-1000.0, -1000.0, -1000.0]
        let right = f.left + f.plotWidth
        for (k, p) in phases.enumerated() {
            let x0 = f.px(p.start), x1 = f.px(max(p.end, p.start))
            let t = "\(p.name): \(Markup.seconds(p.start)) to \(Markup.seconds(p.end)) (\(Markup.seconds(p.end - p.start)))"
            o += "<rect class=\"phase\(k % 2)\" x=\"\(Markup.num(x0))\" y=\"\(Markup.num(f.top))\" width=\"\(Markup.num(max(x1 - x0, 0.5)))\" height=\"\(Markup.num(f.plotHeight))\"><title>\(Markup.escape(t))</title></rect>"
            o += "<line class=\"phaseline\" x1=\"\(Markup.num(x0))\" x2=\"\(Markup.num(x0))\" y1=\"\(Markup.num(f.top - 4))\" y2=\"\(Markup.num(f.top + f.plotHeight))\"/>"
            // The label goes in the first of three rows where it fits, starting
            // inside its phase (shifted right past the previous label if need be)
            // and kept inside the plot; a phase too crowded to label keeps its hover text.
            let w = Double(p.name.count) * 6.0
            for row in 0..<3 {
                let x = min(max(x0 + 2, lastLabelEnd[row]), right - w)
                guard x >= lastLabelEnd[row], x <= max(x1 - 4, x0 + 2) || k == phases.count - 1 && x <= x1 + 1 else { continue }
                o += "<text class=\"phaselabel\" x=\"\(Markup.num(x))\" y=\"\(Markup.num(f.top - 30 + Double(row) * 11))\">\(Markup.escape(p.name))</text>"
                lastLabelEnd[row] = x + w + 6
                break
            }
        }
        return o
    }

    /// One timeline: the series (same unit) over time, the phases behind them.
    static func timeline(_ series: [TimeSeries], phases: [PhaseSpan], end: Double, title: String) -> String {
        let maxV = series.flatMap { $0.points.map(\.value) }.max() ?? 1
        var f = PlotFrame(x: timeAxis(end), y: valueAxis(unit: series.first?.unit ?? "count", max: max(maxV, 1e-9) * 1.05))
        f.top = 48
        var o = "<h3>\(Markup.escape(title))</h3>" + f.open(title: title)
        o += phaseBands(phases, frame: f)
        var legend: [(String, String)] = []
        for (k, s) in series.enumerated() {
            let color = seriesPalette[k % seriesPalette.count]
            let name = s.vcpu.map { "\(s.name) (vCPU \($0))" } ?? s.name
            let last = s.points.last!
            let label = "\(name): final \(s.unit == "bytes" ? Markup.bytes(last.value) : Markup.trimmed(last.value)) at \(Markup.seconds(last.time))"
            o += f.polyline(s.points.map { ($0.time, $0.value) }, color: color, title: label, step: s.unit == "bytes")
            legend.append((label, color))
        }
        o += "</svg>"
        return o + legendHTML(legend)
    }

    /// Per-vCPU lanes: one row per vCPU, a bar per span, coloured by what it did.
    static func lanes(_ lanes: [VCPULane], phases: [PhaseSpan], end: Double) -> String {
        let labels = Array(Set(lanes.flatMap { $0.spans.map(\.label) })).sorted()
        var color: [String: String] = [:]
        for (k, l) in labels.enumerated() { color[l] = seriesPalette[k % seriesPalette.count] }
        let row = lanes.count > 64 ? 5.0 : lanes.count > 16 ? 10.0 : 20.0
        let sorted = lanes.sorted { $0.vcpu < $1.vcpu }
        var f = PlotFrame(x: timeAxis(end), y: Axis(lo: 0, hi: 1, label: "", format: { _ in "" }), height: Double(sorted.count) * (row + 2) + 48 + 44)
        f.top = 48
        var o = f.open(title: "What each vCPU did over virtual time", cssClass: "plot lanes")
        o += phaseBands(phases, frame: f)
        for (i, lane) in sorted.enumerated() {
            let y = f.top + Double(i) * (row + 2) + 1
            if row >= 10 {
                o += "<text class=\"tick\" x=\"\(Markup.num(f.left - 6))\" y=\"\(Markup.num(y + row / 2 + 4))\" text-anchor=\"end\">\(lane.vcpu == 0 ? "vCPU 0 (BSP)" : "vCPU \(lane.vcpu)")</text>"
            }
            for s in lane.spans {
                let x0 = f.px(s.start), x1 = f.px(max(s.end, s.start))
                var t = "vCPU \(lane.vcpu) \(s.label): \(Markup.seconds(s.start)) to \(Markup.seconds(s.end))"
                if s.acceptedBytes > 0 { t += ", accepted \(Markup.bytes(s.acceptedBytes))" }
                o += "<rect x=\"\(Markup.num(x0))\" y=\"\(Markup.num(y))\" width=\"\(Markup.num(max(x1 - x0, 1)))\" height=\"\(Markup.num(row))\" fill=\"\(color[s.label]!)\"><title>\(Markup.escape(t))</title></rect>"
            }
        }
        o += "</svg>"
        var totals: [String] = []
        for lane in sorted {
            let busy = lane.spans.reduce(0.0) { $0 + ($1.end - $1.start) }
            let acc = lane.spans.reduce(UInt64(0)) { $0 + $1.acceptedBytes }
            totals.append("<tr><td>\(lane.vcpu == 0 ? "vCPU 0 (BSP)" : "vCPU \(lane.vcpu)")</td><td>\(Markup.escape(Markup.seconds(busy)))</td><td>\(Markup.escape(Markup.bytes(acc)))</td></tr>")
        }
        o += legendHTML(labels.map { ($0, color[$0]!) })
        if sorted.count <= 32 {
            o += "<table class=\"small\"><tr><th>vCPU</th><th>busy</th><th>accepted</th></tr>" + totals.joined() + "</table>"
        }
        return o
    }

    /// Allocation-latency histograms, one per workload phase; lazy and
    /// eager overlaid when both were recorded; p50, p99 and max marked.
    static func latencies(_ ds: [LatencyDistribution]) -> String {
        var phases: [String] = []
        for d in ds where !phases.contains(d.phase) { phases.append(d.phase) }
        var o = ""
        for phase in phases {
            let group = ds.filter { $0.phase == phase }
            let bounds = group.flatMap(\.bucketBounds).filter { $0 > 0 }
            let lo = bounds.min() ?? 1e-7, hi = max(bounds.max() ?? 1e-3, group.map(\.max).max() ?? 0)
            let maxCount = Double(group.flatMap(\.buckets).max() ?? 1)
            var f = PlotFrame(x: Axis(lo: lo, hi: hi * 1.2, log: true, label: "extra latency per allocation (log scale)", format: { Markup.seconds($0) }),
                              y: Axis(lo: 0, hi: max(maxCount, 1) * 1.15, label: "allocations", format: { Markup.trimmed($0) }), height: 260)
            f.top = 24
            let title = "Allocation latency in \(phase)"
            o += "<h3>\(Markup.escape(title))</h3>" + f.open(title: title)
            var legend: [(String, String)] = []
            for (k, d) in group.enumerated() {
                let color = d.mode == "eager" ? "#0072b2" : d.mode == "lazy" ? "#d55e00" : seriesPalette[(k + 2) % seriesPalette.count]
                for (i, n) in d.buckets.enumerated() where i + 1 < d.bucketBounds.count && n > 0 {
                    let x0 = f.px(max(d.bucketBounds[i], lo)), x1 = f.px(d.bucketBounds[i + 1])
                    let t = "\(d.mode): \(Markup.count(n)) allocations paid \(Markup.seconds(d.bucketBounds[i])) to \(Markup.seconds(d.bucketBounds[i + 1]))"
                    o += "<rect class=\"bar\" x=\"\(Markup.num(x0))\" y=\"\(Markup.num(f.py(Double(n))))\" width=\"\(Markup.num(max(x1 - x0 - 1, 1)))\" height=\"\(Markup.num(f.top + f.plotHeight - f.py(Double(n))))\" fill=\"\(color)\" fill-opacity=\"0.6\"><title>\(Markup.escape(t))</title></rect>"
                }
                for (j, (name, v)) in [("p50", d.p50), ("p99", d.p99), ("max", d.max)].enumerated() where v > 0 {
                    let x = f.px(v)
                    let label = "\(d.mode) \(name) \(Markup.seconds(v))"
                    // Right of the line, or left of it near the right edge; one row per marker so none overlap.
                    let flip = x + Double(label.count) * 5.6 > f.left + f.plotWidth
                    o += "<line class=\"marker\" stroke=\"\(color)\" x1=\"\(Markup.num(x))\" x2=\"\(Markup.num(x))\" y1=\"\(Markup.num(f.top))\" y2=\"\(Markup.num(f.top + f.plotHeight))\"/>"
                    o += "<text class=\"markerlabel\" fill=\"\(color)\" x=\"\(Markup.num(flip ? x - 3 : x + 3))\" y=\"\(Markup.num(f.top + 12 + Double(k * 3 + j) * 11))\"\(flip ? " text-anchor=\"end\"" : "")>\(Markup.escape(label))</text>"
                }
                legend.append(("\(d.mode): \(Markup.count(d.allocations)) allocations, p50 \(Markup.seconds(d.p50)), p99 \(Markup.seconds(d.p99)), max \(Markup.seconds(d.max))", color))
            }
            o += "</svg>" + legendHTML(legend)
        }
        return o
    }
}
