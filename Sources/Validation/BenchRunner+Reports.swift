import CostModel
import Foundation
import GuestKernel
import MemoryModel
import Reports
import Simulation

extension BenchRunner {
    /// Times the pictures (`cocomem bench --reports`): the HTML report and
    /// the trace of a real 4 TiB boot with a workload (what the simulation
    /// records today), of a record filled to the bounds `RunRecord`
    /// promises (every series at `TimeSeries.maxPoints`, fragmented
    /// snapshots, 256 vCPU lanes), and a 10,000-row sweep's plot. The
    /// stress record and the sweep rows are synthetic, made here to size
    /// the renderers, not results of the model. Returns a Markdown table of
    /// median wall times over `repetitions` and output sizes.
    public static func runReports(repetitions: Int = 5) throws -> String {
        func median(_ body: () -> Int) -> (Double, Int) {
            var times: [Double] = []
            var size = 0
            for _ in 0..<max(1, repetitions) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                size = body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            return (Self.median(times), size)
        }
        var o = "| what | record | wall median (s) | output bytes |\n|---|---|---|---|\n"
        func row(_ what: String, _ record: String, _ r: (Double, Int)) {
            o += "| \(what) | \(record) | \(String(format: "%.4f", r.0)) | \(r.1) |\n"
        }
        var s = Scenario()
        s.memory = 4 << 40; s.vcpus = 8; s.workload = try Workload.parse("touch=1T", memory: s.memory)
        let boot = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
        let real = describe(boot.record)
        row("boot 4T touch=1T: HTML report", real, median { boot.htmlReport.utf8.count })
        row("boot 4T touch=1T: Chrome trace", real, median { ChromeTrace.json(boot.record, name: "boot").utf8.count })
        let stress = stressRecord(memory: 4 << 40)
        let sr = describe(stress)
        row("record at its bounds: HTML sections", sr, median {
            HTMLPage(title: "stress", subtitle: "", summary: [], sections: RecordFigures.sections(stress, guestBytes: 4 << 40)).render().utf8.count
        })
        row("record at its bounds: Chrome trace", sr, median { ChromeTrace.json(stress, name: "stress").utf8.count })
        let rows = sweepRows(10_000)
        row("sweep plot", "10000 rows, 5 lines", median { SweepPlot.page(rows: rows, plots: [("memory", "total_boot_s", "vcpus")], title: "sweep").utf8.count })
        return o
    }

    static func describe(_ r: RunRecord) -> String {
        "\(r.phases.count) phases, \(r.series.count) series / \(r.series.reduce(0) { $0 + $1.points.count }) points, "
            + "\(r.snapshots.count) snapshots / \(r.snapshots.reduce(0) { $0 + $1.ranges.count }) ranges, \(r.lanes.count) lanes / \(r.lanes.reduce(0) { $0 + $1.spans.count }) spans"
    }

    /// A record at the sizes `RunRecord` allows: 12 phases, 16 series of
    /// `maxPoints` points (8 of them per vCPU), 8 snapshots of 4,096 ranges
    /// scattered over the guest, 256 lanes of 16 spans, 4 latency
    /// distributions of 40 buckets. Synthetic, for sizing only.
    static func stressRecord(memory: UInt64) -> RunRecord {
        var r = RunRecord()
        let end = 3600.0
        for i in 0..<12 { r.phases.append(PhaseSpan(name: "phase \(i)", start: end * Double(i) / 12, end: end * Double(i + 1) / 12)) }
        for k in 0..<16 {
            let n = TimeSeries.maxPoints
            r.series.append(TimeSeries(name: "series_\(k)", unit: k % 3 == 0 ? "per_second" : "bytes", vcpu: k >= 8 ? k - 8 : nil,
                                       points: (0..<n).map { .init(time: end * Double($0) / Double(n - 1), value: Double(memory) * Double($0) / Double(n - 1)) }))
        }
        let low = ByteCount.gib(2).value, high = ByteCount.gib(4).value
        for snap in 0..<8 {
            var ranges = [SnapshotRange(range: GPA(0)..<GPA(low), acceptance: .accepted, pageClass: .kernel, hostMapping: .map2M),
                          SnapshotRange(range: GPA(low)..<GPA(high), acceptance: .notRAM, pageClass: .hole, hostMapping: .none)]
            let piece = (memory - low) / 4094
            for i in 0..<UInt64(4094) {
                let a = high + i * piece, b = i == 4093 ? high + memory - low : a + piece
                let acc = (i + UInt64(snap)) % 3 != 0
                ranges.append(SnapshotRange(range: GPA(a)..<GPA(b), acceptance: acc ? .accepted : .unaccepted, pageClass: acc ? .anonymous : .unaccepted,
                                            hostMapping: acc ? (i % 5 == 0 ? .map4K : .map2M) : .none, shared: i % 97 == 0, pinned: acc))
            }
            r.snapshots.append(MemorySnapshot(label: "snapshot \(snap)", time: end * Double(snap) / 8, ranges: ranges))
        }
        for v in 0..<256 {
            r.lanes.append(VCPULane(vcpu: v, spans: (0..<16).map { i in
                .init(start: end * Double(i) / 16, end: end * (Double(i) + 0.8) / 16, label: i % 2 == 0 ? "accept" : "fault", acceptedBytes: ByteCount.gib(1).value)
            }))
        }
        let bounds = (0...40).map { 1e-7 * pow(10, Double($0) / 8) }
        for (phase, mode) in [("a", "lazy"), ("a", "eager"), ("b", "lazy"), ("b", "eager")] {
            r.latencies.append(LatencyDistribution(phase: phase, mode: mode, allocations: 40_000, p50: 1e-5, p99: 1e-3, max: 1e-2,
                                                   bucketBounds: bounds, buckets: (0..<40).map { UInt64(1000 + $0 * 10) }))
        }
        return r
    }

    /// `count` synthetic sweep rows: memory from 4 GiB to 4 TiB, 5 vCPU counts.
    static func sweepRows(_ count: Int) -> [[String: SweepValue]] {
        let gib = Double(ByteCount.gib(1).value)
        return (0..<count).map { i in
            let vcpus = [1, 4, 16, 64, 256][i % 5]
            let memory = 4.0 * pow(1024, Double(i / 5) / Double(max(1, count / 5 - 1))) * gib
            return ["memory": .number(memory), "vcpus": .number(Double(vcpus)), "total_boot_s": .number(1 + memory / gib / 64 / Double(vcpus))]
        }
    }
}
