import Foundation

/// A palette that stays readable on white and for the common colour-vision
/// deficiencies (Okabe-Ito, then Tableau's darker tones).
package let seriesPalette = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#8c564b",
                             "#7f7f7f", "#bcbd22", "#17becf", "#9467bd"]

/// One axis of a plot: its range, whether it is logarithmic, and how its tick labels read.
package struct Axis {
    package var lo: Double
    package var hi: Double
    package var log = false
    package var label: String
    package var format: (Double) -> String
    package var binary = false

    package init(lo: Double, hi: Double, log: Bool = false, label: String, binary: Bool = false, format: @escaping (Double) -> String) {
        self.lo = lo; self.hi = hi > lo ? hi : lo + (lo == 0 ? 1 : abs(lo)); self.log = log && lo > 0
        self.label = label; self.binary = binary; self.format = format
    }

    /// Position of `v` in [0, 1].
    package func unit(_ v: Double) -> Double {
        if log { return (Foundation.log10(max(v, lo)) - Foundation.log10(lo)) / (Foundation.log10(hi) - Foundation.log10(lo)) }
        return (v - lo) / (hi - lo)
    }

    package var ticks: [Double] { log ? Ticks.log10Ticks(lo, hi) : Ticks.linear(lo, hi, binary: binary) }
}

/// The frame of a plot: an SVG of `width` × `height` with a plot area inside
/// margins, both axes with ticks, grid lines and labels, and a title.
package struct PlotFrame {
    package var width = 1000.0, height = 280.0
    package var left = 78.0, right = 36.0, top = 34.0, bottom = 44.0  // room for the last tick label (`64 GiB`)
    package var x: Axis
    package var y: Axis

    package init(x: Axis, y: Axis, height: Double = 280) { self.x = x; self.y = y; self.height = height }

    package var plotWidth: Double { width - left - right }
    package var plotHeight: Double { height - top - bottom }
    package func px(_ v: Double) -> Double { left + x.unit(v) * plotWidth }
    package func py(_ v: Double) -> Double { top + (1 - y.unit(v)) * plotHeight }

    /// Opens the SVG and draws the grid, the axes and their labels.
    package func open(title: String, cssClass: String = "plot") -> String {
        var o = "<svg class=\"\(cssClass)\" viewBox=\"0 0 \(Markup.num(width)) \(Markup.num(height))\" width=\"100%\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
        o += "<title>\(Markup.escape(title))</title>"
        for t in y.ticks {
            let yy = py(t)
            o += "<line class=\"grid\" x1=\"\(Markup.num(left))\" x2=\"\(Markup.num(left + plotWidth))\" y1=\"\(Markup.num(yy))\" y2=\"\(Markup.num(yy))\"/>"
            o += "<text class=\"tick\" x=\"\(Markup.num(left - 6))\" y=\"\(Markup.num(yy + 4))\" text-anchor=\"end\">\(Markup.escape(y.format(t)))</text>"
        }
        for t in x.ticks {
            let xx = px(t)
            o += "<line class=\"grid\" x1=\"\(Markup.num(xx))\" x2=\"\(Markup.num(xx))\" y1=\"\(Markup.num(top))\" y2=\"\(Markup.num(top + plotHeight))\"/>"
            o += "<text class=\"tick\" x=\"\(Markup.num(xx))\" y=\"\(Markup.num(top + plotHeight + 16))\" text-anchor=\"middle\">\(Markup.escape(x.format(t)))</text>"
        }
        o += "<rect class=\"frame\" x=\"\(Markup.num(left))\" y=\"\(Markup.num(top))\" width=\"\(Markup.num(plotWidth))\" height=\"\(Markup.num(plotHeight))\"/>"
        o += "<text class=\"axislabel\" x=\"\(Markup.num(left + plotWidth / 2))\" y=\"\(Markup.num(height - 6))\" text-anchor=\"middle\">\(Markup.escape(x.label))</text>"
        o += "<text class=\"axislabel\" transform=\"translate(14 \(Markup.num(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(Markup.escape(y.label))</text>"
        return o
    }

    /// A polyline through `points` (already in data coordinates).
    package func polyline(_ points: [(Double, Double)], color: String, title: String, step: Bool = false) -> String {
        var o = "<polyline class=\"line\" fill=\"none\" stroke=\"\(color)\" points=\""
        o.reserveCapacity(points.count * 16)
        var prevY: Double? = nil
        for (k, (xv, yv)) in points.enumerated() {
            let xx = px(xv), yy = py(yv)
            if step, let p = prevY { o += "\(Markup.num(xx)),\(Markup.num(p)) " }
            o += "\(Markup.num(xx)),\(Markup.num(yy))"
            if k < points.count - 1 { o += " " }
            prevY = yy
        }
        o += "\"><title>\(Markup.escape(title))</title></polyline>"
        return o
    }
}

/// How time reads on an axis: seconds, or milliseconds for runs under a second.
package func timeAxis(_ end: Double) -> Axis {
    if end < 1 {
        return Axis(lo: 0, hi: max(end, 1e-6), label: "virtual time (ms)", format: { Markup.trimmed($0 * 1000) })
    }
    return Axis(lo: 0, hi: end, label: "virtual time (s)", format: { Markup.trimmed($0) })
}

/// A legend line of coloured swatches (HTML).
package func legendHTML(_ entries: [(String, String)]) -> String {
    var o = "<div class=\"legend\">"
    for (name, color) in entries { o += "<span class=\"lgroup\"><span class=\"sw\" style=\"background:\(color)\"></span>\(Markup.escape(name))</span>" }
    return o + "</div>"
}
