public import Simulation

/// A `RunRecord` in the Chrome trace event format (the JSON object form:
/// `{"traceEvents": [...], "displayTimeUnit": "ms"}`), as Perfetto's UI
/// and chrome://tracing open it. One process, the run; its threads are the
/// tracks: `phases` (complete `X` events, one per phase, and an instant
/// `i` event per memory snapshot) and one `vCPU N` track per lane
/// (complete events, one per span, the accepted bytes in `args`). Each
/// series is a counter (`C` events, the value in `args`), per-vCPU series
/// named with their vCPU. Named with `process_name`/`thread_name` metadata
/// (`M`) and ordered with `thread_sort_index`. Timestamps (`ts`, `dur`) are
/// microseconds of virtual time, in increasing order on each track.
public enum ChromeTrace {
    /// The thread id of the phases track; vCPU `n` is `vcpuBase + n`.
    static let phasesTid: UInt64 = 1
    static let vcpuBase: UInt64 = 100

    /// The trace of `record` for a run called `name`.
    /// - Complexity: O(phases + spans + points + snapshots), sorted per track: O(n log n).
    public static func json(_ record: RunRecord, name: String) -> String { json([(name, record)]) }

    /// The trace of several records (a kexec's two kernels, a scenario
    /// file's boot and steps), each its own process (`pid` 1, 2, ...), since
    /// each kernel's times start at its own reset.
    public static func json(_ records: [(String, RunRecord)]) -> String {
        var events: [JSON] = []
        for (k, (name, record)) in records.enumerated() { events += self.events(record, name: name, pid: UInt64(k + 1)) }
        return JSON.object([("traceEvents", .array(events)), ("displayTimeUnit", .string("ms"))]).serialized(pretty: false) + "\n"
    }

    static func events(_ record: RunRecord, name: String, pid: UInt64) -> [JSON] {
        var events: [JSON] = []
        func meta(_ what: String, tid: UInt64, _ args: [(String, JSON)]) -> JSON {
            .object([("name", .string(what)), ("ph", .string("M")), ("pid", .uint(pid)), ("tid", .uint(tid)), ("args", .object(args))])
        }
        events.append(meta("process_name", tid: 0, [("name", .string(name))]))
        events.append(meta("thread_name", tid: phasesTid, [("name", .string("phases"))]))
        events.append(meta("thread_sort_index", tid: phasesTid, [("sort_index", .int(-1))]))
        // Phases and snapshots, in time order.
        var phaseTrack: [(Double, JSON)] = record.phases.map { p in
            (p.start, complete(p.name, cat: "phase", pid: pid, tid: phasesTid, start: p.start, end: p.end, args: []))
        }
        for s in record.snapshots {
            phaseTrack.append((s.time, .object([("name", .string("snapshot: " + s.label)), ("cat", .string("snapshot")), ("ph", .string("i")),
                                                 ("s", .string("t")), ("ts", .double(micro(s.time))), ("pid", .uint(pid)), ("tid", .uint(phasesTid)),
                                                 ("args", .object([("ranges", .uint(UInt64(s.ranges.count)))]))])))
        }
        events += stableSorted(phaseTrack)
        for lane in record.lanes.sorted(by: { $0.vcpu < $1.vcpu }) {
            let tid = vcpuBase + UInt64(max(lane.vcpu, 0))
            events.append(meta("thread_name", tid: tid, [("name", .string(lane.vcpu == 0 ? "vCPU 0 (BSP)" : "vCPU \(lane.vcpu)"))]))
            events.append(meta("thread_sort_index", tid: tid, [("sort_index", .uint(UInt64(max(lane.vcpu, 0))))]))
            events += stableSorted(lane.spans.map { s in
                (s.start, complete(s.label, cat: "vcpu", pid: pid, tid: tid, start: s.start, end: s.end, args: [("accepted_bytes", .uint(s.acceptedBytes))]))
            })
        }
        for s in record.series {
            let name = s.vcpu.map { "\(s.name) vCPU \($0)" } ?? s.name
            events += stableSorted(s.points.map { p in
                (p.time, .object([("name", .string(name)), ("cat", .string(s.unit)), ("ph", .string("C")), ("ts", .double(micro(p.time))),
                                  ("pid", .uint(pid)), ("tid", .uint(0)), ("args", .object([("value", value(p.value))]))]))
            })
        }
        return events
    }

    static func micro(_ seconds: Double) -> Double { max(seconds, 0) * 1_000_000 }

    /// Whole numbers as integers (bytes of a 64 TiB guest do not fit the six-decimal form).
    static func value(_ v: Double) -> JSON {
        if v >= 0, v < 1.8e19, v == v.rounded() { return .uint(UInt64(v)) }
        if v < 0, v > -9.2e18, v == v.rounded() { return .int(Int64(v)) }
        return abs(v) < 1e12 ? .double(v) : .uint(UInt64(max(0, min(v, 1.8e19))))
    }

    static func complete(_ name: String, cat: String, pid: UInt64, tid: UInt64, start: Double, end: Double, args: [(String, JSON)]) -> JSON {
        .object([("name", .string(name)), ("cat", .string(cat)), ("ph", .string("X")), ("ts", .double(micro(start))),
                 ("dur", .double(micro(max(end, start)) - micro(start))), ("pid", .uint(pid)), ("tid", .uint(tid)), ("args", .object(args))])
    }

    /// Sorted by time, ties kept in their given order.
    static func stableSorted(_ xs: [(Double, JSON)]) -> [JSON] {
        xs.enumerated().sorted { a, b in a.element.0 != b.element.0 ? a.element.0 < b.element.0 : a.offset < b.offset }.map(\.element.1)
    }
}
