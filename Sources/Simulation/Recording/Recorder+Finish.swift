import CostModel
package import GuestKernel

extension Recorder {
    /// The record: series built from the rows and downsampled, lanes bounded.
    /// - Complexity: O(rows × columns).
    package func finish() -> RunRecord {
        var r = record
        r.series = series()
        r.lanes = rawLanes.enumerated().compactMap { cpu, spans in
            spans.isEmpty ? nil : VCPULane(vcpu: cpu, spans: Self.bound(spans))
        }
        r.latencies = latencies
        return r
    }

    /// Every series: each column over the rows where it has a value,
    /// downsampled; then the per-second rates of the counters, computed
    /// over the kept points (so they average over what was dropped).
    func series() -> [TimeSeries] {
        var out: [TimeSeries] = []
        func column(_ i: Int) -> [TimeSeries.Point] {
            var pts: [TimeSeries.Point] = []
            for (t, row) in zip(times, rows) where !row[i].isNaN { pts.append(.init(time: t, value: row[i])) }
            return TimeSeries.downsample(pts, keeping: boundaries)
        }
        for c in Recorder.Column.allCases {
            // An actor that accepted nothing in a run that has no such actor (no kexec) is left out.
            if c == .kexecLoad || c == .nextKernel, !isKexec { continue }
            if Recorder.Column.hostOnly.contains(c), !isHostRun { continue }
            out.append(TimeSeries(name: c.name, unit: c.unit, points: column(c.rawValue)))
        }
        for (c, name) in [(Recorder.Column.acceptCalls, "accept_calls_per_s"), (.exits, "exits_per_s")] {
            out.append(TimeSeries(name: name, unit: "per_second", points: Self.rate(column(c.rawValue))))
        }
        for cpu in 0..<vcpus {
            out.append(TimeSeries(name: "accepted_bytes", unit: "bytes", vcpu: cpu, points: column(Recorder.vcpuColumn(cpu, 0))))
            let calls = column(Recorder.vcpuColumn(cpu, 1)), exits = column(Recorder.vcpuColumn(cpu, 2))
            out.append(TimeSeries(name: "accept_calls", unit: "count", vcpu: cpu, points: calls))
            out.append(TimeSeries(name: "accept_calls_per_s", unit: "per_second", vcpu: cpu, points: Self.rate(calls)))
            out.append(TimeSeries(name: "exits", unit: "count", vcpu: cpu, points: exits))
            out.append(TimeSeries(name: "exits_per_s", unit: "per_second", vcpu: cpu, points: Self.rate(exits)))
        }
        return out
    }

    /// Whether the run loaded a kexec image.
    var isKexec: Bool { record.phases.contains { $0.name == "kexec_load" } }

    /// Per-second rate of a cumulative counter between consecutive points,
    /// given at the end of each interval; the first point is 0.
    static func rate(_ cumulative: [TimeSeries.Point]) -> [TimeSeries.Point] {
        guard let first = cumulative.first else { return [] }
        var out = [TimeSeries.Point(time: first.time, value: 0)]
        for (a, b) in zip(cumulative, cumulative.dropFirst()) where b.time > a.time {
            out.append(.init(time: b.time, value: (b.value - a.value) / (b.time - a.time)))
        }
        return out
    }

    /// A lane's spans, merged pairwise until at most `TimeSeries.maxPoints`
    /// remain (a long `rate=` run has a span per slice).
    static func bound(_ spans: [VCPULane.Span]) -> [VCPULane.Span] {
        var s = spans
        while s.count > TimeSeries.maxPoints {
            var merged: [VCPULane.Span] = []
            merged.reserveCapacity(s.count / 2 + 1)
            var i = 0
            while i < s.count {
                if i + 1 < s.count {
                    let a = s[i], b = s[i + 1]
                    merged.append(.init(start: a.start, end: b.end, label: a.label == b.label ? a.label : a.label + ", " + b.label,
                                        acceptedBytes: a.acceptedBytes + b.acceptedBytes))
                    i += 2
                } else { merged.append(s[i]); i += 1 }
            }
            s = merged
        }
        return s
    }

    // MARK: Allocation latency

    /// Closes the allocation-latency measurement of workload phase `phase`
    /// from what the kernel's allocator recorded since the last reset.
    func closeLatency(phase: String, lazy: Bool) {
        guard let k = kernel else { return }
        latencies.append(LatencyDistribution(phase: phase, mode: lazy ? "lazy" : "eager", stalls: k.allocationStalls))
        k.allocationStalls.reset()
    }
}

extension TimeSeries {
    /// At most `maxPoints` of `points` (sorted by time): the first, the last
    /// and those at `boundaries` always, the rest evenly spaced by index.
    /// - Complexity: O(points).
    public static func downsample(_ points: [Point], keeping boundaries: Set<Double>, maxPoints: Int = maxPoints) -> [Point] {
        guard points.count > maxPoints else { return points }
        let last = points.count - 1
        var must = [0]
        for i in 1..<last where boundaries.contains(points[i].time) { must.append(i) }
        must.append(last)
        if must.count >= maxPoints {
            // More boundaries than room: keep the first, the last and boundaries evenly.
            let keep = (0..<maxPoints).map { must[$0 * (must.count - 1) / (maxPoints - 1)] }
            return keep.map { points[$0] }
        }
        let room = maxPoints - must.count
        var keep = Set(must)
        for j in 0..<room { keep.insert(1 + j * (last - 1) / max(1, room)) }
        // Collisions with `must` leave the result smaller, never larger.
        return keep.sorted().prefix(maxPoints).map { points[$0] }
    }
}

extension LatencyDistribution {
    /// Log-spaced bucket bounds in seconds: 0, then 100 ns to 100 s at
    /// three bounds a decade (1, 2, 5), then +infinity. Bucket 0 holds the
    /// allocations that paid nothing.
    public static let standardBounds: [Double] = {
        var b: [Double] = [0]
        var decade = 1e-7
        while decade < 100 {
            for m in [1.0, 2.0, 5.0] { b.append(decade * m) }
            decade *= 10
        }
        b.append(100)
        b.append(.infinity)
        return b
    }()

    /// The distribution of `stalls`: `allocations` order-0 allocations of
    /// which those in `stalls.stalls` paid that many picoseconds extra and
    /// the rest nothing. Percentiles are exact (nearest rank).
    /// - Complexity: O(s log s) for s stalls, independent of the allocations.
    package init(phase: String, mode: String, stalls s: AllocationStalls) {
        let paid = s.stalls.map { Double($0) / 1e12 }.sorted()
        let total = Swift.max(s.allocations, UInt64(paid.count))
        let zeros = total - UInt64(paid.count)
        func percentile(_ p: Double) -> Double {
            guard total > 0 else { return 0 }
            let rank = UInt64((p * Double(total)).rounded(.up))
            let r = Swift.max(1, Swift.min(total, rank))
            return r <= zeros ? 0 : paid[Int(r - zeros - 1)]
        }
        let bounds = Self.standardBounds
        var buckets = Array(repeating: UInt64(0), count: bounds.count - 1)
        buckets[0] = zeros
        for x in paid {
            // The last bound not above x.
            var i = 0
            while i + 1 < bounds.count - 1, bounds[i + 1] <= x { i += 1 }
            buckets[i] += 1
        }
        self.init(phase: phase, mode: mode, allocations: total, p50: percentile(0.5), p99: percentile(0.99),
                  max: paid.last ?? 0, bucketBounds: bounds, buckets: buckets)
    }
}
