import Foundation
import MemoryModel
@testable import Reports
import Simulation
import Testing
import TestSupport

/// Writes sample pages from the hand-built records (a 4 GiB and a 4 TiB TD,
/// a sweep) into `$COCOMEM_REPORT_SAMPLES` for scripts/report-checks.sh to
/// open in a browser; without the variable it only renders them. The
/// CLI's own records are empty until the simulation fills them, so these
/// are what the browser checks of the strips, lanes and histograms see.
@Suite struct ReportSamples {
    static func samples() -> [(String, String, String)] {
        let gib: UInt64 = 1 << 30
        var out: [(String, String, String)] = []
        for (name, memory, vcpus) in [("sample-4g", 4 * gib, 4), ("sample-4t", UInt64(4) << 40, 16)] {
            let r = RecordFixtures.tdBoot(memory: memory, vcpus: vcpus)
            let page = HTMLPage(title: "cocomem boot (hand-built record)", subtitle: "tdx \(Markup.bytes(memory)), \(vcpus) vCPUs, accept_memory=lazy: a hand-built RunRecord, not the simulation's",
                                summary: [("guest", "TDX, \(Markup.bytes(memory)), \(vcpus) vCPUs"), ("memory", "\(memory)")],
                                sections: RecordFigures.sections(r, guestBytes: memory)).render()
            out.append((name + ".html", page, "\(memory)"))
            out.append((name + ".json", ChromeTrace.json(r, name: name), ""))
        }
        // 64 GiB accepted in scattered 2 MiB pieces by many vCPUs: 20,000 ranges above 4 GiB, more than the strip has room for.
        var frag = RecordFixtures.tdBoot(memory: 64 * gib, vcpus: 8)
        var ranges = Array(frag.snapshots[1].ranges.prefix { $0.acceptance != .notRAM }) + [frag.snapshots[1].ranges.first { $0.acceptance == .notRAM }!]
        let m: UInt64 = 2 << 20
        var a: UInt64 = 4 * gib
        for i in 0..<UInt64(20_000) {
            let accepted = (i * 7919) % 3 != 0
            ranges.append(SnapshotRange(range: GPA(a)..<GPA(a + m), acceptance: accepted ? .accepted : .unaccepted, pageClass: accepted ? .anonymous : .unaccepted,
                                        hostMapping: accepted ? .map2M : .none, pinned: accepted))
            a += m
        }
        ranges.append(SnapshotRange(range: GPA(a)..<GPA(66 * gib), acceptance: .unaccepted, pageClass: .unaccepted, hostMapping: .none))
        frag.snapshots = [MemorySnapshot(label: "fragmented", time: frag.phases[6].end, ranges: ranges)]
        let fragPage = HTMLPage(title: "cocomem boot (hand-built, fragmented)", subtitle: "tdx 64 GiB: a hand-built RunRecord, not the simulation's", summary: [("memory", "\(64 * gib)")],
                                sections: RecordFigures.sections(frag, guestBytes: 64 * gib)).render()
        out.append(("sample-fragmented.html", fragPage, ""))
        var rows: [[String: SweepValue]] = []
        for v in [1, 4, 16, 64] {
            for m in [4, 16, 64, 256, 1024, 4096] {
                let mem = Double(UInt64(m) << 30)
                rows.append(["memory": .number(mem), "vcpus": .number(Double(v)), "total_boot_s": .number(1.2 + Double(m) * 0.0009 + Double(m) / 16 / Double(v) * 0.05)])
            }
        }
        out.append(("sample-sweep.html", SweepPlot.page(rows: rows, plots: [("memory", "total_boot_s", "vcpus")], title: "cocomem sweep (synthetic rows)"), ""))
        return out
    }

    @Test func writeSamples() throws {
        let dir = ProcessInfo.processInfo.environment["COCOMEM_REPORT_SAMPLES"]
        for (name, text, _) in Self.samples() {
            #expect(!text.isEmpty)
            if let dir { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
        }
    }
}
