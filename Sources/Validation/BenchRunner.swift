import CoCoGuest
import CostModel
import Foundation
import GuestKernel
import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule

/// Wall-clock and peak-memory measurements of the simulator itself
/// (`cocomem bench`). Each configuration is booted `repetitions` times and
/// the median wall time is reported, so one-off costs (page faults on first
/// use, lazy metadata) do not decide the ratio between sizes.
public enum BenchRunner {
    static func peakRSSBytes() -> UInt64 {
        var u = rusage()
        getrusage(__rusage_who_t(0), &u)
        return UInt64(u.ru_maxrss) * 1024
    }

    /// CPU seconds this process has used (user and system): steadier than
    /// wall time on a machine other work shares.
    static func cpuSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }

    /// Boots every size lazy and eager on the tdx and tdx-huge hosts and
    /// returns a Markdown table, followed by the largest/smallest wall-time
    /// ratio for each column.
    public static func run(sizes: [String], repetitions: Int = 5) throws -> String {
        let cal = try Calibration.builtIn()
        var o = "| memory | accept | host | wall median (s) | virtual boot (s) | TDX ops | peak RSS (MiB) |\n|---|---|---|---|---|---|---|\n"
        var walls: [String: [Double]] = [:]
        for sz in sizes {
            let mem = try ByteCount.parseGuestMemory(sz).value
            for lazy in [true, false] {
                for hm in TDXHostModel.allCases {
                    var s = Scenario()
                    s.memory = mem; s.lazy = lazy; s.kernel.lazyAccept = lazy; s.tdxHost = hm; s.vcpus = 8
                    var times: [Double] = []
                    var last: BootResult? = nil
                    for _ in 0..<max(1, repetitions) {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        last = try BootSimulation(scenario: s, calibration: cal).run()
                        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                    }
                    guard let r = last else { continue }
                    let wall = median(times)
                    let key = "\(lazy ? "lazy" : "eager") \(hm.rawValue)"
                    walls[key, default: []].append(wall)
                    let ops = r.counts.nonZero.filter { $0.0.name.hasPrefix("tdx.") }.reduce(UInt64(0)) { $0 + $1.1 }
                    o += "| \(sz) | \(lazy ? "lazy" : "eager") | \(hm.rawValue) | \(String(format: "%.4f", wall)) | \(format3(r.times.totalBoot)) | \(ops) | \(peakRSSBytes() >> 20) |\n"
                }
            }
        }
        if sizes.count > 1 {
            o += "\nwall(\(sizes.last!)) / wall(\(sizes.first!)):"
            for key in ["lazy tdx", "lazy tdx-huge", "eager tdx", "eager tdx-huge"] {
                if let w = walls[key], let a = w.first, let b = w.last, a > 0 { o += " \(key) \(String(format: "%.1f", b / a))x;" }
            }
            o += "\n"
        }
        return o
    }
}

extension BenchRunner {
    /// The host model's speed targets on a TD of `size`: fault in and accept
    /// everything at 2M (tdx-huge), at 4K (tdx) and at 1G (a module with 1G
    /// private mappings on hugetlb 1G folios), then convert 10% of the 2M
    /// TD to shared and back in 4K pieces. Returns a Markdown table.
    public static func runHost(size: String) throws -> String {
        let cal = try Calibration.builtIn()
        let costs = CostTable(cal)
        let bytes = try ByteCount.parseGuestMemory(size).value
        let pages = alignDown(ByteCount(bytes).frames(), PageLevel.size2M.pages)
        func makeVM(_ model: TDXHostModel) throws -> TDXVM {
            let (o, f) = model.configuration
            let vm = try TDXVM(options: o, features: f, vcpus: 8,
                               slots: [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: pages, backing: model == .tdxHuge ? .hugetlb2M : .buddy)], costs: costs)
            vm.finalize()
            return vm
        }
        func timed(_ body: () throws -> Void) rethrows -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        var o = "| operation | wall (s) | pages_2m | pages_4k | SEAMCALLs | peak RSS (MiB) |\n|---|---|---|---|---|---|\n"
        func row(_ name: String, _ t: Double, _ vm: TDXVM) {
            let calls = vm.module.calls.nonZero.reduce(UInt64(0)) { $0 + $1.count }
            o += "| \(name) | \(String(format: "%.3f", t)) | \(vm.pages2M) | \(vm.pages4K) | \(calls) | \(peakRSSBytes() >> 20) |\n"
        }
        var huge: TDXVM? = nil
        for model in [TDXHostModel.tdxHuge, .tdx] {
            let vm = try makeVM(model)
            let acc = TDXAcceptor(host: vm, driver: .linux, costs: costs)
            var clock = PhaseClock(vcpus: 1)
            let t = timed { _ = acc.accept(AddressRange(start: 0, size: ByteCount.frames(pages).value), vcpu: 0, clock: &clock) }
            row("fault in + accept \(size) (\(model == .tdxHuge ? "2M, tdx-huge" : "4K, tdx"))", t, vm)
            if model == .tdxHuge { huge = vm }
        }
        // Forward-looking: a module with 1G private mappings on hugetlb 1G
        // folios (issue 18 §3), where the size is whole GiBs.
        let pages1G = alignDown(pages, PageLevel.size1G.pages)
        if pages1G > 0 {
            let (o1, f0) = TDXHostModel.tdxHuge.configuration
            var f1 = f0
            f1.privateMappings1G = true
            let vm = try TDXVM(options: o1, features: f1, vcpus: 8,
                               slots: [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: pages1G, backing: .hugetlb1G)], costs: costs)
            vm.finalize()
            let acc = TDXAcceptor(host: vm, driver: .linux, costs: costs)
            var clock = PhaseClock(vcpus: 1)
            let t = timed { _ = acc.accept(AddressRange(start: 0, size: ByteCount.frames(pages1G).value), vcpu: 0, clock: &clock) }
            row("fault in + accept \(size) (1G, tdx-huge with 1G private mappings, hugetlb-1g: pages_1g \(vm.pages1G))", t, vm)
        }
        if let vm = huge {
            let tenth = alignDown(pages / 10, 512)
            let t1 = timed { vm.convertInPieces(Range(raw: 0..<tenth), toPrivate: false) }
            row("convert 10% to shared in 4K pieces", t1, vm)
            let t2 = timed { vm.convertInPieces(Range(raw: 0..<tenth), toPrivate: true) }
            row("convert it back to private in 4K pieces", t2, vm)
        }
        return o
    }
}

extension BenchRunner {
    /// What recording (issue 14) adds to a boot with a workload: the same
    /// scenario booted `repetitions` times with `Scenario.record` off and
    /// on, alternating, median wall time of each, and the size of the record.
    /// Returns a Markdown table.
    public static func runRecording(size: String, workload: String, vcpus: Int = 8, repetitions: Int = 5) throws -> String {
        let cal = try Calibration.builtIn()
        var s = Scenario()
        s.memory = try ByteCount.parseGuestMemory(size).value
        s.vcpus = vcpus
        s.workload = try Workload.parse(workload, memory: s.memory)
        var off: [Double] = [], on: [Double] = [], cpuOff: [Double] = [], cpuOn: [Double] = []
        var record = RunRecord()
        var virtual = 0.0
        for _ in 0..<max(1, repetitions) {
            for rec in [false, true] {
                s.record = rec
                let t0 = DispatchTime.now().uptimeNanoseconds, c0 = cpuSeconds()
                let r = try BootSimulation(scenario: s, calibration: cal).run()
                let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, cpu = cpuSeconds() - c0
                if rec { on.append(wall); cpuOn.append(cpu); record = r.record } else { off.append(wall); cpuOff.append(cpu) }
                virtual = r.times.totalBoot + r.times.workload
            }
        }
        let points = record.series.reduce(0) { $0 + $1.points.count }
        let ranges = record.snapshots.reduce(0) { $0 + $1.ranges.count }
        let spans = record.lanes.reduce(0) { $0 + $1.spans.count }
        func f(_ x: Double) -> String { String(format: "%.3f", x) }
        var o = "| memory | workload | vCPUs | virtual (s) | wall off / on (s) | CPU off / on (s) | extra CPU (s) | series | points | snapshots | ranges | lane spans |\n"
        o += "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        o += "| \(size) | \(workload) | \(vcpus) | \(format3(virtual)) | \(f(median(off))) / \(f(median(on))) | \(f(median(cpuOff))) / \(f(median(cpuOn))) | "
        o += "\(f(median(cpuOn) - median(cpuOff))) | \(record.series.count) | \(points) | \(record.snapshots.count) | \(ranges) | \(spans) |\n"
        return o
    }
}
