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
        o += Self.inferenceText(inf)
        return o
    }

    /// The inference lines.
    static func inferenceText(_ inf: HostInference) -> String {
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
        o += ", \(f[3]) first touched after the boot\(inf.recordsDropped > 0 ? " (at least)" : "")\n"
        return o
    }

    /// The JSON object, nil without a host trace.
    public var hostTraceJSON: JSON? {
        guard let (t, inf) = tracedHost else { return nil }
        var exits: [(String, JSON)] = []
        for k in HostTraceKind.allCases where t.exits(k) > 0 { exits.append((k.rawValue, .uint(t.exits(k)))) }
        var seen: [(String, JSON)] = PageLevel.allCases.map { ($0.description, .uint(inf.seenByLevel[$0] ?? 0)) }
        seen.append(("access", .uint(inf.seenByAccess)))
        return .object([
            ("records", .uint(UInt64(t.records.count) + t.dropped)), ("dropped", .uint(t.dropped)), ("exits", .object(exits)),
            ("accepted_bytes", .uint(inf.acceptedBytes)), ("seen_bytes", .uint(inf.seenBytes)), ("seen_bytes_by", .object(seen)),
            ("unseen_bytes", .uint(inf.unseenBytes)), ("guest_accept_calls", .uint(inf.guestCalls)),
            ("guest_accept_calls_seen", .uint(inf.guestCallsSeen)), ("seen_after_boot_bytes", .uint(inf.seenAfter)),
            ("first_exit", inf.span.map { .double($0.lowerBound) } ?? .null), ("last_exit", inf.span.map { .double($0.upperBound) } ?? .null),
        ])
    }
}
