import KVM
import MemoryModel
public import Simulation

/// The host trace's summary in the boot report (`boot --host-trace`,
/// issue 18 §5): what the host saw and what it can infer.
extension BootResult {
    /// The end of the boot (the workload's start), in virtual seconds.
    var bootEnd: Double { times.totalBoot }

    /// The trace and its inference, from the TDX or the SNP host model.
    var tracedHost: (trace: HostTrace, inference: HostInference)? {
        if let vm = host, let t = vm.hostTrace, let inf = vm.hostInference(after: bootEnd) { return (t, inf) }
        if let vm = snpHost, let t = vm.hostTrace, let inf = vm.hostInference(after: bootEnd) { return (t, inf) }
        return nil
    }

    /// The text lines, empty without a host trace.
    /// - Complexity: as `TDXVM.hostInference(after:)` or `SNPVM.hostInference(after:)`.
    public var hostTraceText: String {
        guard let (t, inf) = tracedHost else { return "" }
        return HostTraceReport.text(t, inf, afterBoot: true)
    }

    /// The JSON object, nil without a host trace.
    public var hostTraceJSON: JSON? {
        guard let (t, inf) = tracedHost else { return nil }
        return HostTraceReport.json(t, inf, afterBoot: true)
    }
}

/// The host trace's lines and JSON object, for a boot (`boot --host-trace`)
/// and a host scenario (`host --host-trace`, a scenario file's host step
/// with `host-trace:`). A host scenario has no boot: its lines leave out
/// the memory first touched after it.
enum HostTraceReport {
    /// `Host trace:` and `Host inference:` lines.
    /// - Complexity: O(kinds × levels).
    static func text(_ t: HostTrace, _ inf: HostInference, afterBoot: Bool) -> String {
        var o = "\nHost trace (what KVM sees of the guest's memory use): \(UInt64(t.records.count) + t.dropped) records"
        if t.dropped > 0 { o += " (\(t.dropped) dropped from the middle)" }
        var kinds: [String] = []
        for k in HostTraceKind.allCases where t.exits(k) > 0 {
            let levels = PageLevel.allCases.filter { t.exits(k, level: $0) > 0 }.map { "\(t.exits(k, level: $0)) at \($0)" }
            if k == .acceptExit {
                kinds.append("\(t.exits(k)) accept exits (\(levels.joined(separator: ", ")))")
            } else if !levels.isEmpty {
                // SNP page-state changes: KVM_HC_MAP_GPA_RANGE exits by entry size.
                kinds.append("\(t.exits(k)) \(k.rawValue) (\(levels.joined(separator: ", ")))")
            } else {
                kinds.append("\(t.exits(k)) \(k.rawValue)")
            }
        }
        o += "; " + (kinds.isEmpty ? "no exits" : kinds.joined(separator: ", ")) + "\n"
        o += inferenceText(inf, afterBoot: afterBoot)
        return o
    }

    /// The `Host inference:` line.
    static func inferenceText(_ inf: HostInference, afterBoot: Bool) -> String {
        func pct(_ a: UInt64, _ b: UInt64) -> String {
            guard b > 0 else { return "-" }
            let tenths = (1000 * Double(a) / Double(b)).rounded()
            return "\(Int64(tenths) / 10).\(Int64(tenths) % 10)%"
        }
        // Every size of the line in one unit (ByteCount.formatInOneUnit).
        let seenLevels = PageLevel.allCases.reversed().filter { (inf.seenByLevel[$0] ?? 0) > 0 }
        let access = inf.seenByAccess > 0 ? [inf.seenByAccess] : []
        let sizes = [inf.seenBytes, inf.acceptedBytes, inf.unseenBytes, inf.seenAfter] + seenLevels.map { inf.seenByLevel[$0]! } + access
        let f = ByteCount.formatInOneUnit(sizes)
        let levels = seenLevels.enumerated().map { "\(f[4 + $0.offset]) at \($0.element)" } + (access.isEmpty ? [] : ["\(f.last!) by access"])
        var o = "Host inference: first touch seen for \(f[0]) of \(f[1]) accepted "
            + "(\(pct(inf.seenBytes, inf.acceptedBytes)); \(levels.isEmpty ? "none" : levels.joined(separator: ", "))), "
            + "unseen \(f[2]) (added at build or mapped before the accept); "
        o += "\(inf.guestCallsSeen) of \(inf.guestCalls) guest accept calls exited"
        if let s = inf.span { o += "; exits from \(format6(s.lowerBound)) s to \(format6(s.upperBound)) s" }
        if afterBoot { o += ", \(f[3]) first touched after the boot\(inf.recordsDropped > 0 ? " (at least)" : "")" }
        return o + "\n"
    }

    /// The `host_trace` JSON object (`seen_after_boot_bytes` for a boot only).
    static func json(_ t: HostTrace, _ inf: HostInference, afterBoot: Bool) -> JSON {
        var exits: [(String, JSON)] = []
        for k in HostTraceKind.allCases where t.exits(k) > 0 { exits.append((k.rawValue, .uint(t.exits(k)))) }
        var seen: [(String, JSON)] = PageLevel.allCases.map { ($0.description, .uint(inf.seenByLevel[$0] ?? 0)) }
        seen.append(("access", .uint(inf.seenByAccess)))
        var fields: [(String, JSON)] = [
            ("records", .uint(UInt64(t.records.count) + t.dropped)), ("dropped", .uint(t.dropped)), ("exits", .object(exits)),
            ("accepted_bytes", .uint(inf.acceptedBytes)), ("seen_bytes", .uint(inf.seenBytes)), ("seen_bytes_by", .object(seen)),
            ("unseen_bytes", .uint(inf.unseenBytes)), ("guest_accept_calls", .uint(inf.guestCalls)),
            ("guest_accept_calls_seen", .uint(inf.guestCallsSeen)),
        ]
        if afterBoot { fields.append(("seen_after_boot_bytes", .uint(inf.seenAfter))) }
        fields.append(("first_exit", inf.span.map { JSON.double($0.lowerBound) } ?? JSON.null))
        fields.append(("last_exit", inf.span.map { JSON.double($0.upperBound) } ?? JSON.null))
        return .object(fields)
    }
}

extension HostRun {
    /// The host trace and its inference (nil without `--host-trace`): a
    /// host scenario has no boot, so nothing is "after" it.
    var tracedHost: (trace: HostTrace, inference: HostInference)? {
        guard let t = vm.hostTrace, let inf = vm.hostInference(after: .infinity) else { return nil }
        return (t, inf)
    }

    /// `Host trace:` and `Host inference:` lines, empty without a trace.
    /// - Complexity: as `TDXVM.hostInference(after:)`.
    public var hostTraceText: String { tracedHost.map { HostTraceReport.text($0.trace, $0.inference, afterBoot: false) } ?? "" }

    /// The `host_trace` object, nil without a trace.
    public var hostTraceJSON: JSON? { tracedHost.map { HostTraceReport.json($0.trace, $0.inference, afterBoot: false) } }
}

extension SNPHostRun {
    /// As `HostRun.tracedHost`, on the SNP host.
    var tracedHost: (trace: HostTrace, inference: HostInference)? {
        guard let t = vm.hostTrace, let inf = vm.hostInference(after: .infinity) else { return nil }
        return (t, inf)
    }

    /// `Host trace:` and `Host inference:` lines, empty without a trace.
    /// - Complexity: as `SNPVM.hostInference(after:)`.
    public var hostTraceText: String { tracedHost.map { HostTraceReport.text($0.trace, $0.inference, afterBoot: false) } ?? "" }

    /// The `host_trace` object, nil without a trace.
    public var hostTraceJSON: JSON? { tracedHost.map { HostTraceReport.json($0.trace, $0.inference, afterBoot: false) } }
}
