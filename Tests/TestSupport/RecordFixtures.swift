import Foundation
import MemoryModel
public import Simulation

/// Hand-built `RunRecord`s shaped like a real TD boot on q35 (RAM below
/// 2 GiB, the PCI hole to 4 GiB, RAM above 4 GiB; lazy acceptance: the
/// firmware accepts a little, the kernel some more, a workload the rest on
/// demand), for testing and looking at the renderers before the simulation
/// fills the records. Not the simulation's output: the numbers are made up
/// to look like one, deterministically.
public enum RecordFixtures {
    /// A record of a `memory`-byte guest with `vcpus` vCPUs that boots and
    /// then touches `touched` bytes (lazy: accepted on first touch).
    public static func tdBoot(memory: UInt64, vcpus: Int = 4, touched: UInt64? = nil, lazy: Bool = true) -> RunRecord {
        let gib: UInt64 = 1 << 30, mib: UInt64 = 1 << 20
        let lowEnd = min(memory, 2 * gib)
        let highStart = 4 * gib, highEnd = memory > lowEnd ? highStart + (memory - lowEnd) : 0
        let touch = touched ?? memory / 2
        // Phase times scale with memory the way acceptance does (about 1 s per 16 GiB accepted on one vCPU, spread over vCPUs).
        let gb = Double(memory) / Double(gib)
        let phases: [(String, Double)] = [("firmware", 0.62), ("efi_stub", 0.04), ("kernel_boot", 0.35 + gb * 0.0004), ("deferred_init", 0.05 + gb * 0.0009),
                                          ("early_allocations", 0.02), ("userspace", 0.9), ("workload touch=\(ByteCount(touch))", Double(touch) / Double(gib) / 16 / Double(max(1, vcpus / 2)) + 0.05)]
        var r = RunRecord()
        var t = 0.0
        for (name, d) in phases { r.phases.append(PhaseSpan(name: name, start: t, end: t + d)); t += d }
        let bootEnd = r.phases[5].end, end = t
        func ranges(_ accepted: UInt64, workload: UInt64) -> [SnapshotRange] {
            var out: [SnapshotRange] = []
            var a: UInt64 = 0
            func add(_ size: UInt64, _ acc: SnapshotRange.Acceptance, _ c: SnapshotRange.PageClass, _ m: SnapshotRange.HostMapping, shared: Bool = false, pinned: Bool = false) {
                guard size > 0 else { return }
                out.append(SnapshotRange(range: GPA(a)..<GPA(a + size), acceptance: acc, pageClass: c, hostMapping: m, shared: shared, pinned: pinned))
                a += size
            }
            // Low RAM: firmware data, the kernel image, memmap, a shared swiotlb bounce buffer, then what was accepted and what was not.
            add(mib, .accepted, .firmware, .map4K, pinned: true)
            add(31 * mib, .accepted, .kernel, .map2M, pinned: true)
            add(64 * mib, .accepted, .memmap, .map2M, pinned: true)
            add(4 * mib, .accepted, .pageTables, .map4K, pinned: true)
            add(2 * mib, .accepted, .reserved, .map4K, shared: true)
            let lowAccepted = min(lowEnd, max(accepted, 102 * mib)) - a
            let lowWork = min(workload, lowAccepted / 2)
            add(lowWork / 2, .accepted, .pageCache, .map2M, pinned: true)
            add(lowWork - lowWork / 2, .accepted, .anonymous, .map2M, pinned: true)
            add(lowAccepted - lowWork, .accepted, .free, .map2M, pinned: true)
            add(lowEnd - a, .unaccepted, .unaccepted, .none)
            guard highEnd > 0 else { return out }
            add(highStart - a, .notRAM, .hole, .none)
            let highAccepted = accepted > lowEnd ? min(accepted - lowEnd, highEnd - highStart) : 0
            let highWork = min(workload - lowWork, highAccepted)
            add(highWork / 2, .accepted, .anonymous, .map2M, pinned: true)
            add(8 * mib, .accepted, .pageCache, .map4K, pinned: true)
            add(highWork - highWork / 2, .accepted, .pageCache, .map2M, pinned: true)
            add(highAccepted > highWork ? highAccepted - highWork : 0, .accepted, .free, .map2M, pinned: true)
            add(highEnd - a - 2 * mib, .unaccepted, .unaccepted, .none)
            add(2 * mib, .accepted, .hugetlb, .map2M, pinned: true)
            return out
        }
        let fwAccepted: UInt64 = 256 * mib, bootAccepted = min(memory, lazy ? 1536 * mib : memory)
        r.snapshots = [MemorySnapshot(label: "firmware hand-off", time: r.phases[0].end, ranges: ranges(fwAccepted, workload: 0)),
                       MemorySnapshot(label: "end of boot", time: bootEnd, ranges: ranges(bootAccepted, workload: 0)),
                       MemorySnapshot(label: "end of \(r.phases[6].name)", time: end, ranges: ranges(min(memory, max(bootAccepted, touch + 1536 * mib)), workload: touch))]
        // Series: step-like byte counts, 200 points each.
        let n = 200
        var acceptedBy: [(String, (Double) -> Double)] = [
            ("accepted_bytes.firmware", { t in min(1, t / r.phases[0].end) * Double(fwAccepted) }),
            ("accepted_bytes.kernel_boot", { t in t < r.phases[2].start ? 0 : min(1, (t - r.phases[2].start) / (bootEnd - r.phases[2].start)) * Double(bootAccepted - fwAccepted) }),
        ]
        acceptedBy.append(("accepted_bytes.workload", { t in t < r.phases[6].start ? 0 : min(1, (t - r.phases[6].start) / (end - r.phases[6].start)) * Double(max(0, Int64(min(memory, touch + 1536 * mib)) - Int64(bootAccepted))) }))
        var totals = [Double](repeating: 0, count: n + 1)
        for (name, f) in acceptedBy {
            var pts: [TimeSeries.Point] = []
            for i in 0...n { let tt = end * Double(i) / Double(n); pts.append(.init(time: tt, value: f(tt).rounded())); totals[i] += f(tt).rounded() }
            r.series.append(TimeSeries(name: name, unit: "bytes", points: pts))
        }
        r.series.append(TimeSeries(name: "unaccepted_bytes", unit: "bytes", points: (0...n).map { i in .init(time: end * Double(i) / Double(n), value: Double(memory) - totals[i]) }))
        r.series.append(TimeSeries(name: "host_committed_private_bytes", unit: "bytes", points: (0...n).map { i in .init(time: end * Double(i) / Double(n), value: totals[i]) }))
        r.series.append(TimeSeries(name: "host_committed_shared_bytes", unit: "bytes", points: (0...n).map { i in .init(time: end * Double(i) / Double(n), value: Double(end * Double(i) / Double(n) > r.phases[2].start ? 2 * mib : 0)) }))
        r.series.append(TimeSeries(name: "accept_calls_per_s", unit: "per_second", points: (0...n).map { i in
            let tt = end * Double(i) / Double(n)
            let inAccept = tt < r.phases[0].end || (tt > r.phases[2].start && tt < bootEnd) || tt > r.phases[6].start
            return .init(time: tt, value: inAccept ? 250_000 + Double((i * 7919) % 50_000) : 0)
        }))
        // Lanes: the BSP runs firmware, stub and early kernel alone; then every vCPU initialises memmap and touches memory.
        for v in 0..<vcpus {
            var spans: [VCPULane.Span] = []
            if v == 0 {
                spans.append(.init(start: 0, end: r.phases[0].end, label: "firmware accept", acceptedBytes: fwAccepted))
                spans.append(.init(start: r.phases[1].start, end: r.phases[1].end, label: "efi_stub"))
                spans.append(.init(start: r.phases[2].start, end: r.phases[2].end, label: "kernel accept", acceptedBytes: bootAccepted - fwAccepted))
            }
            spans.append(.init(start: r.phases[3].start, end: r.phases[3].end - Double(v) * 0.002, label: "deferred memmap init"))
            let w = r.phases[6]
            let share = (Double(w.end - w.start) / Double(vcpus))
            let each = UInt64(max(0, Int64(min(memory, touch + 1536 * mib)) - Int64(bootAccepted))) / UInt64(vcpus)
            spans.append(.init(start: w.start + Double(v) * share * 0.1, end: w.end - Double(vcpus - v) * share * 0.05, label: "accept on fault", acceptedBytes: each))
            r.lanes.append(VCPULane(vcpu: v, spans: spans))
        }
        // Latency: log buckets from 1 µs to 100 ms; lazy pays accept_page() on first touch, eager does not.
        let w6 = r.phases[6].name
        let bounds = (0...25).map { 1e-6 * pow10(Double($0) / 5) }
        func dist(_ mode: String, center: Double, spread: Double, tail: Double) -> LatencyDistribution {
            var buckets = [UInt64](repeating: 0, count: bounds.count - 1)
            for i in buckets.indices {
                let x = log10(bounds[i] * 1.26)
                let body = 100_000 * exp(-((x - log10(center)) * (x - log10(center))) / (2 * spread * spread))
                let t = x > log10(center) ? tail * 100_000 * exp(-(x - log10(center)) * 2) : 0
                buckets[i] = UInt64(body + t)
            }
            let total = buckets.reduce(0, +)
            func q(_ p: Double) -> Double {
                var c: UInt64 = 0
                for i in buckets.indices { c += buckets[i]; if Double(c) >= p * Double(total) { return bounds[i + 1] } }
                return bounds.last!
            }
            let maxB = buckets.lastIndex { $0 > 0 } ?? 0
            return LatencyDistribution(phase: w6, mode: mode, allocations: total, p50: q(0.5), p99: q(0.99), max: bounds[maxB + 1], bucketBounds: bounds, buckets: buckets)
        }
        r.latencies = [dist("lazy", center: 2.2e-4, spread: 0.25, tail: 0.05), dist("eager", center: 2.5e-6, spread: 0.15, tail: 0.001)]
        return r
    }

    static func pow10(_ x: Double) -> Double { exp(x * log(10)) }
    static func log10(_ x: Double) -> Double { log(x) / log(10) }
}
