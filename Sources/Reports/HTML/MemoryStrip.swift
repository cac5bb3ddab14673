package import Simulation
import MemoryModel

/// The memory strip of one snapshot: guest physical address along x, one
/// row per aspect (acceptance, page class, host mapping, private/shared,
/// pinned), each range coloured by its state in that aspect.
///
/// Readable at 4 GiB and at 4 TiB alike: holes (`not_ram`: the q35 PCI gap
/// below 4 GiB, the flash) are drawn `holeWidth` wide whatever their size
/// and hatched, and every RAM range gets at least `minimumWidth` so a 2 MiB
/// range next to a 4 TiB one stays visible. Each drawn range carries
/// `data-bytes` (its RAM bytes) and `data-state`, and a `<title>` with the
/// exact range, so the page can be checked and read on hover.
package struct MemoryStrip {
    /// One aspect the strip colours by.
    package enum Aspect: String, CaseIterable, Sendable {
        case acceptance, pageClass = "page class", hostMapping = "host mapping", privacy = "private/shared", pinned

        package func state(_ r: SnapshotRange) -> String {
            switch self {
            case .acceptance: r.acceptance.rawValue
            case .pageClass: r.pageClass.rawValue
            case .hostMapping: r.hostMapping == .none ? "unmapped" : r.hostMapping.rawValue
            case .privacy: r.shared ? "shared" : "private"
            case .pinned: r.pinned ? "pinned" : "not pinned"
            }
        }

        /// Every state in the order the legend lists them, with its colour.
        package var palette: [(String, String)] {
            switch self {
            case .acceptance: [("accepted", "#2e7d32"), ("unaccepted", "#c8c8c8")]
            case .pageClass: [("firmware", "#8d6e63"), ("kernel", "#c62828"), ("memmap", "#6a1b9a"), ("page_tables", "#d81b60"),
                              ("page_cache", "#1565c0"), ("anonymous", "#ef6c00"), ("hugetlb", "#00838f"), ("free", "#9ccc65"),
                              ("unaccepted", "#c8c8c8"), ("reserved", "#546e7a")]
            case .hostMapping: [("1G", "#0d47a1"), ("2M", "#1e88e5"), ("4K", "#ffa726"), ("unmapped", "#eeeeee")]
            case .privacy: [("private", "#5e35b1"), ("shared", "#fdd835")]
            case .pinned: [("pinned", "#ad1457"), ("not pinned", "#eeeeee")]
            }
        }

        package func color(_ state: String) -> String { palette.first { $0.0 == state }?.1 ?? "#999999" }
    }

    package static let width = 1000.0
    package static let labelWidth = 118.0
    package static let holeWidth = 14.0
    package static let minimumWidth = 2.0
    /// Holes at least this large are drawn `holeWidth` wide and labelled.
    package static let bigHole: UInt64 = 64 << 20
    static let rowHeight = 24.0
    static let rowGap = 6.0

    /// One RAM range or hole placed on the x axis.
    struct Placed { var start: UInt64; var end: UInt64; var x0: Double; var x1: Double; var hole: Bool }

    /// Places every range: holes `holeWidth` wide, RAM ranges proportional
    /// to their size but at least `minimumWidth` (shrunk only when there
    /// are so many ranges that the minimum would take half the strip).
    /// - Complexity: O(n log n) in the number of ranges.
    static func place(_ ranges: [SnapshotRange], x0: Double, width: Double) -> (placed: [Placed], minimum: Double) {
        place(ranges.map { Item(start: $0.range.lowerBound.value, end: $0.range.upperBound.value, hole: $0.acceptance == .notRAM, members: 0..<1) }, x0: x0, width: width)
    }

    /// What the strip draws as one piece: a hole, one RAM range, or (when a
    /// snapshot has more ranges than the strip has room for) a run of
    /// neighbouring small RAM ranges, `members` of the snapshot's ranges.
    struct Item { var start: UInt64; var end: UInt64; var hole: Bool; var members: Range<Int> }

    /// At most this many pieces are drawn per row (one per 7 px); beyond it,
    /// neighbouring small ranges are drawn together.
    static let maximumPieces = 128

    /// The snapshot's ranges as pieces: one per range while they fit, else
    /// small neighbours (never across a hole) joined until each piece holds
    /// about 1/`maximumPieces` of the RAM; larger ranges stay alone.
    /// - Complexity: O(n).
    static func items(_ ranges: [SnapshotRange]) -> [Item] {
        // Neighbouring holes are one hole (the map splits the PCI gap into MMCONFIG, PCI windows, ...).
        var out: [Item] = []
        for i in pieces(ranges) {
            if i.hole, let l = out.last, l.hole, l.end == i.start {
                out[out.count - 1].end = i.end
                out[out.count - 1].members = l.members.lowerBound..<i.members.upperBound
            } else { out.append(i) }
        }
        return out
    }

    static func pieces(_ ranges: [SnapshotRange]) -> [Item] {
        func bytes(_ r: SnapshotRange) -> UInt64 { r.range.upperBound.value - r.range.lowerBound.value }
        let ramCount = ranges.filter { $0.acceptance != .notRAM }.count
        guard ramCount > maximumPieces else {
            return ranges.indices.map { Item(start: ranges[$0].range.lowerBound.value, end: ranges[$0].range.upperBound.value, hole: ranges[$0].acceptance == .notRAM, members: $0..<($0 + 1)) }
        }
        let ram = ranges.reduce(UInt64(0)) { $0 + ($1.acceptance == .notRAM ? 0 : bytes($1)) }
        let target = max(ram / UInt64(maximumPieces), 1)
        var out: [Item] = []
        var open: Item? = nil
        for (i, r) in ranges.enumerated() {
            let hole = r.acceptance == .notRAM
            if hole || bytes(r) >= target {
                if let o = open { out.append(o); open = nil }
                out.append(Item(start: r.range.lowerBound.value, end: r.range.upperBound.value, hole: hole, members: i..<(i + 1)))
                continue
            }
            if var o = open {
                o.end = r.range.upperBound.value; o.members = o.members.lowerBound..<(i + 1)
                open = o
            } else {
                open = Item(start: r.range.lowerBound.value, end: r.range.upperBound.value, hole: false, members: i..<(i + 1))
            }
            if let o = open, o.end - o.start >= target { out.append(o); open = nil }
        }
        if let o = open { out.append(o) }
        return out
    }

    /// Places every piece: holes `holeWidth` wide, RAM proportional to its
    /// size but at least `minimumWidth` (shrunk only when there are so many
    /// pieces that the minimum would take half the strip).
    /// - Complexity: O(n log n) in the number of pieces.
    static func place(_ ranges: [Item], x0: Double, width: Double) -> (placed: [Placed], minimum: Double) {
        // Gaps (the PCI hole, holes of 64 MiB or more) get the fixed width;
        // small holes (the legacy VGA/BIOS area, reserved firmware pages) are
        // sized like RAM, at least the minimum, so a dozen of them do not crowd the strip.
        func gap(_ r: Item) -> Bool { r.hole && r.end - r.start >= bigHole }
        let holes = ranges.filter(gap).count
        let ram = ranges.indices.filter { !gap(ranges[$0]) }
        let available = max(width - Double(holes) * holeWidth, width * 0.2)
        var minimum = minimumWidth
        if !ram.isEmpty, Double(ram.count) * minimum > available / 2 { minimum = available / 2 / Double(ram.count) }
        // The smallest ranges get the minimum; the rest share what is left in proportion.
        let sizes = ram.map { Double(ranges[$0].end - ranges[$0].start) }
        let sorted = sizes.sorted()
        var rest = sorted.reduce(0, +)
        var scale = rest > 0 ? available / rest : 0
        for (k, s) in sorted.enumerated() {
            let sc = (available - Double(k) * minimum) / rest
            scale = sc
            if s * sc >= minimum { break }
            rest -= s
            if rest <= 0 { scale = 0; break }
        }
        var out: [Placed] = []
        out.reserveCapacity(ranges.count)
        var x = x0
        let holeW = holes > 0 ? min(holeWidth, (width - available) / Double(holes)) : holeWidth
        for r in ranges {
            let s = r.start, e = r.end
            let hole = r.hole
            let w = gap(r) ? holeW : max(minimum, Double(e - s) * scale)
            out.append(Placed(start: s, end: e, x0: x, x1: x + w, hole: hole))
            x += w
        }
        // Rounding of the minimum can overshoot a little: scale back into the strip.
        if let last = out.last, last.x1 > x0 + width + 0.01 {
            let f = width / (last.x1 - x0)
            for i in out.indices { out[i].x0 = x0 + (out[i].x0 - x0) * f; out[i].x1 = x0 + (out[i].x1 - x0) * f }
        }
        return (out, minimum)
    }

    /// The strip of `snapshot` as an inline SVG element, followed by its
    /// legend (HTML). `guestBytes` is the guest's memory as configured
    /// (`data-guest-bytes`), which the RAM ranges add up to.
    /// - Complexity: O(n log n) in the number of ranges.
    /// `explain` adds the note on how to read the scale (the first strip of a page).
    /// `guestRAM` is where the guest's memory lies (q35's RAM below and above
    /// the PCI hole, or the memslots): a hole inside it (the legacy VGA and
    /// BIOS area, reserved firmware memory the map does not call RAM) is
    /// guest memory all the same, and counts in its `data-bytes`, so the RAM
    /// and those holes add up to `guestBytes`; the PCI gap counts 0.
    package static func html(_ snapshot: MemorySnapshot, guestBytes: UInt64, guestRAM: [Range<UInt64>] = [], aspects: [Aspect] = Aspect.allCases, explain: Bool = true) -> String {
        let ranges = snapshot.ranges
        let pieces = items(ranges)
        // The plot leaves room for the axis labels: where a label would run
        // past the SVG's edge (a hole at the end of the strip: its end address
        // and size), the plot is narrowed by the overrun and placed again.
        var plotX = labelWidth, plotW = width - labelWidth - 8
        var (placed, minimum) = place(pieces, x0: plotX, width: plotW)
        for _ in 0..<3 {
            let boxes = axisLabels(placed).map(\.box)
            let over = max(0, (boxes.map(\.upperBound).max() ?? 0) - (width - labelMargin))
            let under = max(0, labelMargin - (boxes.map(\.lowerBound).min() ?? width))
            guard over > 0 || under > 0 else { break }
            plotX += under; plotW -= under + over
            (placed, minimum) = place(pieces, x0: plotX, width: plotW)
        }
        let height = Double(aspects.count) * (rowHeight + rowGap) + 40
        var o = "<svg class=\"strip\" viewBox=\"0 0 \(Markup.num(width)) \(Markup.num(height))\" width=\"100%\" role=\"img\" shape-rendering=\"crispEdges\""
        o += " data-guest-bytes=\"\(guestBytes)\" data-label=\"\(Markup.escape(snapshot.label))\" xmlns=\"http://www.w3.org/2000/svg\">"
        o += "<title>\(Markup.escape("Memory at \(snapshot.label) (\(Markup.seconds(snapshot.time)))"))</title>"
        var presentStates: [Aspect: Set<String>] = [:]
        var anyMixed = false
        for (row, aspect) in aspects.enumerated() {
            let y = Double(row) * (rowHeight + rowGap) + 4
            o += "<text class=\"rowlabel\" x=\"\(Markup.num(labelWidth - 8))\" y=\"\(Markup.num(y + rowHeight / 2 + 4))\" text-anchor=\"end\">\(Markup.escape(aspect.rawValue))</text>"
            // The row's rectangles sit at y 0 of a translated group: one `y` per row, not per rectangle.
            o += "<g data-aspect=\"\(aspect.rawValue)\" transform=\"translate(0 \(Markup.num(y)))\">"
            // Each piece's bytes by state in this aspect (one state unless the piece joins several ranges).
            let states: [[(String, UInt64)]] = pieces.map { p in
                if p.hole { return [("not_ram", 0)] }
                var by: [(String, UInt64)] = []
                for r in ranges[p.members] {
                    let st = aspect.state(r), b = r.range.upperBound.value - r.range.lowerBound.value
                    if let k = by.firstIndex(where: { $0.0 == st }) { by[k].1 += b } else { by.append((st, b)) }
                }
                return by
            }
            // Neighbours in the same single state are one rectangle (holes and mixed pieces stand alone).
            var i = 0
            while i < pieces.count {
                let single = states[i].count == 1
                let state = placed[i].hole ? "not_ram" : single ? states[i][0].0 : "mixed"
                var j = i + 1
                var ramBytes: UInt64 = placed[i].hole ? 0 : placed[i].end - placed[i].start
                while j < pieces.count, single, !placed[i].hole, !placed[j].hole, states[j].count == 1, states[j][0].0 == state {
                    ramBytes += placed[j].end - placed[j].start
                    j += 1
                }
                let a = placed[i], b = placed[j - 1]
                let size = Markup.bytes(b.end - a.start)
                if a.hole {
                    let inside = guestRAM.reduce(UInt64(0)) { $0 + (max($1.lowerBound, a.start) < min($1.upperBound, a.end) ? min($1.upperBound, a.end) - max($1.lowerBound, a.start) : 0) }
                    var t = "\(Markup.addressRange(a.start, a.end)) \(size) hole (not RAM)"
                    if inside > 0 { t += ", \(Markup.bytes(inside)) of it guest memory the memory map does not call RAM" }
                    o += "<rect class=\"hole\" x=\"\(Markup.num(a.x0))\" width=\"\(Markup.num(a.x1 - a.x0))\" height=\"\(Markup.num(rowHeight))\""
                    o += " fill=\"url(#hatch)\" data-bytes=\"\(inside)\" data-state=\"not_ram\"><title>\(Markup.escape(t))</title></rect>"
                } else if !single {
                    // Several small ranges in a few pixels: the colour of the state with most bytes, lighter, and the breakdown on hover.
                    anyMixed = true
                    let major = states[i].max { $0.1 < $1.1 }!.0
                    presentStates[aspect, default: []].insert(major)
                    let t = "\(Markup.addressRange(a.start, a.end)) \(size), \(pieces[i].members.count) ranges: " + states[i].map { "\($0.0) \(Markup.bytes($0.1))" }.joined(separator: ", ")
                    o += "<rect x=\"\(Markup.num(a.x0))\" width=\"\(Markup.num(max(a.x1 - a.x0, 0.5)))\" height=\"\(Markup.num(rowHeight))\""
                    o += " fill=\"\(aspect.color(major))\" fill-opacity=\"0.55\" data-bytes=\"\(ramBytes)\" data-state=\"mixed\"><title>\(Markup.escape(t))</title></rect>"
                } else {
                    presentStates[aspect, default: []].insert(state)
                    // The hover text gives every aspect when the rectangle is one range, else this aspect's state.
                    let one = j == i + 1 && pieces[i].members.count == 1
                    let detail = one ? Aspect.allCases.map { $0.state(ranges[pieces[i].members.lowerBound]) }.joined(separator: " ") : state
                    let t = "\(Markup.addressRange(a.start, b.end)) \(size) \(detail)"
                    o += "<rect x=\"\(Markup.num(a.x0))\" width=\"\(Markup.num(max(b.x1 - a.x0, 0.5)))\" height=\"\(Markup.num(rowHeight))\""
                    o += " fill=\"\(aspect.color(state))\" data-bytes=\"\(ramBytes)\" data-state=\"\(Markup.escape(state))\"><title>\(Markup.escape(t))</title></rect>"
                }
                i = j
            }
            o += "</g>"
        }
        // Address axis: the ends of the strip and of every hole, where they do not crowd each other.
        let axisY = Double(aspects.count) * (rowHeight + rowGap) + 4
        o += "<line class=\"axis\" x1=\"\(Markup.num(plotX))\" x2=\"\(Markup.num(plotX + plotW))\" y1=\"\(Markup.num(axisY))\" y2=\"\(Markup.num(axisY))\"/>"
        for l in axisLabels(placed) {
            if l.hole {
                o += "<text class=\"holelabel\" x=\"\(Markup.num(l.x))\" y=\"\(Markup.num(axisY + 30))\" text-anchor=\"middle\">\(Markup.escape(l.text))</text>"
                continue
            }
            o += "<line class=\"tick\" x1=\"\(Markup.num(l.tick))\" x2=\"\(Markup.num(l.tick))\" y1=\"\(Markup.num(axisY))\" y2=\"\(Markup.num(axisY + 4))\"/>"
            o += "<text class=\"tick\" x=\"\(Markup.num(l.x))\" y=\"\(Markup.num(axisY + 16))\" text-anchor=\"\(l.anchor)\">\(Markup.escape(l.text))</text>"
        }
        o += "</svg>"
        o += legend(aspects: aspects, present: presentStates, minimum: minimum, hasHoles: placed.contains { $0.hole }, mixed: anyMixed, explain: explain)
        return o
    }

    /// One label under the strip: an address at a tick (`hole` false) or a
    /// hole's size under it.
    struct AxisLabel {
        var text: String
        /// Where the text is anchored, and how (`start`, `end`, `middle`).
        var x: Double
        var anchor: String
        /// The tick's x (addresses only).
        var tick: Double
        var hole: Bool
        /// The text's horizontal extent, estimated from its length at the
        /// CSS font size (11 px ticks, 10 px hole labels) at 0.65 em a
        /// character, wider than DejaVu Sans' digits (0.636 em) and most
        /// of its letters, so the estimate covers the drawn text.
        var box: ClosedRange<Double> {
            let w = Double(text.count) * (hole ? 10 : 11) * 0.65
            switch anchor {
            case "end": return (x - w)...x
            case "middle": return (x - w / 2)...(x + w / 2)
            default: return x...(x + w)
            }
        }
    }

    /// How far every label stays inside the SVG's edges.
    static let labelMargin = 2.0

    /// The axis labels of a placement: each big hole's ends always (its
    /// start right-aligned before it, its end left-aligned after it), the
    /// strip's ends where they do not crowd them, and each big hole's size
    /// centred under it.
    /// - Complexity: O(pieces).
    static func axisLabels(_ placed: [Placed]) -> [AxisLabel] {
        var marks: [(x: Double, addr: UInt64, anchor: String)] = []
        for p in placed where p.hole && p.end - p.start >= bigHole { marks.append((p.x0, p.start, "end")); marks.append((p.x1, p.end, "start")) }
        if let f = placed.first, !f.hole, !marks.contains(where: { $0.x - f.x0 < 70 }) { marks.insert((f.x0, f.start, "start"), at: 0) }
        if let l = placed.last, !l.hole, !marks.contains(where: { l.x1 - $0.x < 70 }) { marks.append((l.x1, l.end, "end")) }
        var out: [AxisLabel] = marks.map { m in
            let dx = m.anchor == "end" && placed.first.map({ m.x - $0.x0 > 1 }) == true ? -2.0 : m.anchor == "start" && placed.last.map({ $0.x1 - m.x > 1 }) == true ? 2.0 : 0
            return AxisLabel(text: Markup.bytes(m.addr), x: m.x + dx, anchor: m.anchor, tick: m.x, hole: false)
        }
        for p in placed where p.hole && p.end - p.start >= bigHole {
            out.append(AxisLabel(text: "hole " + Markup.bytes(p.end - p.start), x: (p.x0 + p.x1) / 2, anchor: "middle", tick: (p.x0 + p.x1) / 2, hole: true))
        }
        return out
    }

    static func legend(aspects: [Aspect], present: [Aspect: Set<String>], minimum: Double, hasHoles: Bool, mixed: Bool, explain: Bool) -> String {
        var o = "<div class=\"legend\">"
        for a in aspects {
            let states = a.palette.filter { present[a]?.contains($0.0) ?? false }
            guard !states.isEmpty else { continue }
            o += "<span class=\"lgroup\"><b>\(Markup.escape(a.rawValue))</b>"
            for (s, c) in states { o += " <span class=\"sw\" style=\"background:\(c)\"></span>\(Markup.escape(s))" }
            o += "</span>"
        }
        o += "</div>"
        guard explain || mixed else { return o }
        o += "<p class=\"note\">Address runs left to right. Every RAM range is drawn at least \(Markup.num(minimum)) px wide, so tiny ranges stay visible and widths are only roughly proportional"
        if hasHoles { o += "; holes (not RAM) are hatched: gaps of 64 MiB or more (the PCI gap below 4 GiB) are drawn \(Markup.num(holeWidth)) px wide whatever their size, smaller holes as small ranges" }
        if mixed { o += "; this snapshot has more ranges than the strip has room for, so runs of neighbouring small ranges are drawn as one pale bar in the colour of their largest state" }
        o += ". Hover over a range for its exact addresses.</p>"
        return o
    }
}
