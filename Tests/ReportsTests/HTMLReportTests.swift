import CrashDump
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import MemoryModel
@testable import Reports
import Simulation
import Testing
import TestSupport

/// Parses `xml` and returns the first error, or nil when it is well-formed.
func xmlError(_ xml: String) -> String? {
    let p = XMLParser(data: Data(xml.utf8))
    return p.parse() ? nil : (p.parserError.map { "\($0)" } ?? "parse failed") + " at line \(p.lineNumber) col \(p.columnNumber)"
}

/// The `data-bytes` of every rectangle of one aspect row, as the browser check sums them.
func rowBytes(_ html: String, aspect: String) -> [UInt64] {
    var out: [[UInt64]] = []
    var rest = html[...]
    while let g = rest.range(of: "<g data-aspect=\"\(aspect)\"") {
        let open = rest[g.upperBound...]
        let body = open[open.firstIndex(of: ">")!...]
        let end = body.range(of: "</g>")!
        var values: [UInt64] = []
        var seg = body[..<end.lowerBound]
        while let d = seg.range(of: "data-bytes=\"") {
            let v = seg[d.upperBound...].prefix { $0 != "\"" }
            values.append(UInt64(v)!)
            seg = seg[d.upperBound...]
        }
        out.append(values)
        rest = body[end.upperBound...]
    }
    return out.map { $0.reduce(0, +) }
}

@Suite struct HTMLReportTests {
    static let gib: UInt64 = 1 << 30

    @Test(arguments: [4 * gib, 4 << 40])
    func pageIsWellFormedAndStripsAddUp(memory: UInt64) throws {
        let r = RecordFixtures.tdBoot(memory: memory, vcpus: memory > 64 * Self.gib ? 16 : 4)
        let html = HTMLPage(title: "t", subtitle: "s", summary: [("memory", Markup.bytes(memory))],
                            sections: RecordFigures.sections(r, guestBytes: memory)).render()
        #expect(xmlError(html) == nil, "\(xmlError(html) ?? "")")
        for a in MemoryStrip.Aspect.allCases {
            let sums = rowBytes(html, aspect: a.rawValue)
            #expect(sums.count == r.snapshots.count)
            #expect(sums.allSatisfy { $0 == memory }, "\(a): \(sums)")
        }
        for title in ["Memory strips", "Timelines", "vCPU lanes", "Allocation latency", "firmware hand-off", "vCPU 0 (BSP)", "lazy p99", "eager p50", "hole 2 GiB"] {
            #expect(html.contains(title), "missing \(title)")
        }
        #expect(html.utf8.count < 2_000_000)
    }

    @Test func hoverTextGivesTheExactRange() {
        let r = SnapshotRange(range: GPA(1 << 32)..<GPA(2 << 32), acceptance: .accepted, pageClass: .pageCache, hostMapping: .map2M)
        let s = MemorySnapshot(label: "x", time: 1, ranges: [
            SnapshotRange(range: GPA(0)..<GPA(0x8000_0000), acceptance: .accepted, pageClass: .kernel, hostMapping: .map4K),
            SnapshotRange(range: GPA(0x8000_0000)..<GPA(1 << 32), acceptance: .notRAM, pageClass: .hole, hostMapping: .none), r])
        let html = MemoryStrip.html(s, guestBytes: 6 << 30)
        #expect(html.contains("<title>0x0000000100000000-0x00000001ffffffff 4 GiB accepted page_cache 2M private not pinned</title>"))
        #expect(html.contains("0x0000000080000000-0x00000000ffffffff 2 GiB hole (not RAM)"))
    }

    /// A strip that ends in a hole (an SNP guest's map: RAM below 2 GiB,
    /// then the PCI hole to 4 GiB): the hole's end address and its size,
    /// drawn after and under it, stay inside the SVG; so do a strip's
    /// labels whatever comes last. The label text of each `<text>` is
    /// measured with the same estimate the layout uses, and the end hole's
    /// labels are all drawn.
    @Test(arguments: [true, false])
    func axisLabelsStayInsideTheStrip(endsInHole: Bool) throws {
        var ranges = [
            SnapshotRange(range: GPA(0)..<GPA(0x8000_0000), acceptance: .accepted, pageClass: .kernel, hostMapping: .map2M),
            SnapshotRange(range: GPA(0x8000_0000)..<GPA(1 << 32), acceptance: .notRAM, pageClass: .hole, hostMapping: .none),
        ]
        if !endsInHole { ranges.append(SnapshotRange(range: GPA(1 << 32)..<GPA(6 << 30), acceptance: .unaccepted, pageClass: .unaccepted, hostMapping: .none)) }
        let html = MemoryStrip.html(MemorySnapshot(label: "x", time: 1, ranges: ranges), guestBytes: endsInHole ? 2 << 30 : 4 << 30)
        var labels: [MemoryStrip.AxisLabel] = []
        var rest = Substring(html)
        while let t = rest.range(of: "<text class=\"tick\" x=\"") ?? rest.range(of: "<text class=\"holelabel\" x=\"") {
            let hole = rest[t].contains("holelabel")
            let after = rest[t.upperBound...]
            let x = Double(after.prefix { $0 != "\"" })!
            let anchor = after.range(of: "text-anchor=\"").map { after[$0.upperBound...].prefix { $0 != "\"" } } ?? "start"
            let text = after[after.firstIndex(of: ">")!...].dropFirst().prefix { $0 != "<" }
            labels.append(MemoryStrip.AxisLabel(text: String(text), x: x, anchor: String(anchor), tick: x, hole: hole))
            rest = after
        }
        #expect(labels.contains { $0.text == "4 GiB" } && labels.contains { $0.text == "2 GiB" } && labels.contains { $0.text == "hole 2 GiB" })
        for l in labels {
            #expect(l.box.lowerBound >= 0 && l.box.upperBound <= MemoryStrip.width, "'\(l.text)' at \(l.box)")
        }
    }

    @Test func tinyRangesKeepTheMinimumWidthAndHolesStayNarrow() {
        // 4 TiB with a 4 KiB range in the middle of it.
        let k: UInt64 = 4096
        let ranges = [
            SnapshotRange(range: GPA(0)..<GPA(0x8000_0000), acceptance: .accepted, pageClass: .kernel, hostMapping: .map2M),
            SnapshotRange(range: GPA(0x8000_0000)..<GPA(1 << 32), acceptance: .notRAM, pageClass: .hole, hostMapping: .none),
            SnapshotRange(range: GPA(1 << 32)..<GPA((1 << 32) + k), acceptance: .accepted, pageClass: .anonymous, hostMapping: .map4K),
            SnapshotRange(range: GPA((1 << 32) + k)..<GPA(4 << 40), acceptance: .unaccepted, pageClass: .unaccepted, hostMapping: .none),
        ]
        let (placed, minimum) = MemoryStrip.place(ranges, x0: 100, width: 800)
        #expect(minimum == MemoryStrip.minimumWidth)
        #expect(placed[1].x1 - placed[1].x0 == MemoryStrip.holeWidth)
        #expect(placed[2].x1 - placed[2].x0 >= minimum - 1e-9)
        #expect(placed[0].x1 - placed[0].x0 >= minimum - 1e-9)
        #expect(abs(placed.last!.x1 - 900) < 0.01)
        // Contiguous: each range starts where the previous ends.
        for i in 1..<placed.count { #expect(abs(placed[i].x0 - placed[i - 1].x1) < 1e-9) }
    }

    /// 20,000 alternating 2 MiB accepted and unaccepted ranges (acceptance
    /// by many vCPUs in scattered 2 MiB units): the strip draws a bounded
    /// number of pieces and still adds up to the guest.
    @Test func fragmentedMemoryStaysBoundedAndAddsUp() {
        let m: UInt64 = 2 << 20
        var ranges: [SnapshotRange] = []
        for i in 0..<UInt64(20_000) {
            ranges.append(SnapshotRange(range: GPA(i * m)..<GPA((i + 1) * m), acceptance: i % 2 == 0 ? .accepted : .unaccepted,
                                        pageClass: i % 2 == 0 ? .anonymous : .unaccepted, hostMapping: i % 2 == 0 ? .map2M : .none))
        }
        ranges.append(SnapshotRange(range: GPA(20_000 * m)..<GPA(1 << 40), acceptance: .unaccepted, pageClass: .unaccepted, hostMapping: .none))
        let html = MemoryStrip.html(MemorySnapshot(label: "fragmented", time: 1, ranges: ranges), guestBytes: 1 << 40)
        #expect(xmlError(html.components(separatedBy: "<div class=\"legend\">")[0]) == nil)
        for a in MemoryStrip.Aspect.allCases { #expect(rowBytes(html, aspect: a.rawValue) == [1 << 40]) }
        let rects = html.components(separatedBy: "<rect").count - 1
        #expect(rects <= 5 * 2 * MemoryStrip.maximumPieces)
        #expect(html.contains(" ranges: accepted "))
        #expect(html.contains("drawn as one pale bar"))
    }

    @Test func labelsAreEscaped() throws {
        var r = RecordFixtures.tdBoot(memory: 4 * Self.gib)
        r.snapshots[0].label = "a<b>&c\"d'"
        r.phases[0].name = "<script>&"
        r.series[0].name = "x<y"
        r.lanes[0].spans[0].label = "p&q"
        let html = HTMLPage(title: "<&>", subtitle: "&", summary: [("<", ">")], sections: RecordFigures.sections(r, guestBytes: 4 * Self.gib)).render()
        #expect(xmlError(html) == nil)
        #expect(!html.contains("<script>"))
        #expect(html.contains("a&lt;b&gt;&amp;c&quot;d&#39;"))
        #expect(Markup.escape("<&>\"'") == "&lt;&amp;&gt;&quot;&#39;")
    }

    @Test func emptyRecordSaysSo() {
        let html = HTMLPage(title: "t", subtitle: "", summary: [], sections: RecordFigures.sections(RunRecord(), guestBytes: 1)).render()
        #expect(xmlError(html) == nil)
        #expect(html.contains("recorded nothing over virtual time"))
    }

    @Test func unitsRead() {
        #expect(Markup.bytes(UInt64(4) << 30) == "4 GiB")
        #expect(Markup.bytes(UInt64(3) << 29) == "1.5 GiB")
        #expect(Markup.bytes(UInt64(4) << 40) == "4 TiB")
        #expect(Markup.bytes(UInt64(100)) == "100 B")
        #expect(Markup.seconds(0.0125) == "12.5 ms")
        #expect(Markup.seconds(2.5e-6) == "2.5 µs")
        #expect(Markup.count(1234567) == "1,234,567")
        #expect(Ticks.linear(0, 10) == [0, 2, 4, 6, 8, 10])
        #expect(Ticks.linear(0, Double(UInt64(4) << 30), binary: true).contains(Double(UInt64(1) << 30)))
    }

    @Test func terminalStripHasOneLinePerRegion() {
        let r = RecordFixtures.tdBoot(memory: 4 * Self.gib)
        let t = TerminalStrip.text(r.snapshots[1], columns: 32)
        let lines = t.split(separator: "\n")
        #expect(lines.count == 4)   // legend, low RAM, the hole, high RAM
        #expect(lines[1].hasPrefix("  0x0000000000000000-0x000000007fffffff     2 GiB  "))
        // 1.5 GiB of the 2 GiB below the hole accepted at the end of a lazy boot: three quarters of the cells.
        #expect(lines[1].hasSuffix(String(repeating: "█", count: 24) + String(repeating: "░", count: 8)))
        #expect(lines[2].contains("(hole, not RAM)"))
        #expect(lines[3].contains("░"))
        #expect(TerminalStrip.text(RunRecord()).contains("no memory snapshot"))
    }

    @Test func sweepPlotDrawsOneLinePerSeries() {
        var rows: [[String: SweepValue]] = []
        for v in [1, 4, 16] {
            for m in [4, 64, 1024, 4096] {
                rows.append(["memory": .number(Double(UInt64(m) << 30)), "vcpus": .number(Double(v)), "boot_s": .number(Double(m) / Double(v))])
            }
        }
        rows.append(["memory": .text("n/a"), "vcpus": .number(1)])
        let html = SweepPlot.html(rows: rows, x: "memory", y: "boot_s", series: "vcpus")
        #expect(xmlError("<div>" + html + "</div>") == nil)
        #expect(html.components(separatedBy: "<polyline").count - 1 == 3)
        #expect(html.contains("vcpus = 16"))
        #expect(html.contains("(log scale)"))
        #expect(html.contains("4 TiB"))
        #expect(html.contains("1 rows without numbers"))
    }
}
